// Host sockets through libc (socket(7), ip(7), ipv6(7), tcp(7)): creating
// them with the options every host socket of ours gets, struct sockaddr in
// and out, the calls whose results need decoding, and the per-packet
// socket calls (send, recvfrom, sendto) on a span of a buffer, whose
// address is taken at the call (ptr(buf, off): no subarray per packet).
//
// Functions return a non-negative result or -errno unless they say
// otherwise: on the data path a failed call is an event of the flow (a
// refused connect, a reset peer), not an exception.
import { ptr } from "bun:ffi";
import { libc, errno } from "./libc.ts";

export const AF_INET = 2;
export const AF_INET6 = 10;
const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_ERROR = 4;
const SO_KEEPALIVE = 9;
const SO_LINGER = 13;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;
const TCP_USER_TIMEOUT = 18;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;

/** send(2) flag: a write to a closed peer returns EPIPE instead of raising SIGPIPE. */
export const MSG_NOSIGNAL = 0x4000;
const SHUT_WR = 1;

const SOCKADDR_IN_LEN = 16;
const SOCKADDR_IN6_LEN = 28;

/**
 * One struct sockaddr_in or sockaddr_in6, reused: filled before bind,
 * connect and sendto, and by accept, recvfrom and getsockname. Ports and
 * addresses are in network order inside; the accessors hide that.
 */
export class SockAddr {
  readonly bytes = new Uint8Array(new ArrayBuffer(SOCKADDR_IN6_LEN));
  private readonly view = new DataView(this.bytes.buffer);
  /** socklen_t in/out for the calls that fill the address. */
  readonly lenBuf = new Uint32Array(new ArrayBuffer(4));
  /** Bytes in use (16 for IPv4, 28 for IPv6). */
  len = 0;

  /** `ip` is 4 bytes (IPv4) or 16 bytes (IPv6). */
  set(ip: Uint8Array, port: number): this {
    this.bytes.fill(0);
    if (ip.length === 4) {
      this.view.setUint16(0, AF_INET, true);
      this.view.setUint16(2, port, false);
      this.bytes.set(ip, 4);
      this.len = SOCKADDR_IN_LEN;
    } else {
      this.view.setUint16(0, AF_INET6, true);
      this.view.setUint16(2, port, false);
      this.bytes.set(ip, 8);
      this.len = SOCKADDR_IN6_LEN;
    }
    return this;
  }

  copyFrom(other: SockAddr): this {
    this.bytes.set(other.bytes);
    this.len = other.len;
    return this;
  }

  /** Before a call that fills the address: the room it may use. */
  prepareFill(): void {
    this.lenBuf[0] = SOCKADDR_IN6_LEN;
  }

  /** After such a call. */
  filled(): void {
    this.len = this.lenBuf[0]!;
  }

  get family(): number {
    return this.view.getUint16(0, true);
  }

  get port(): number {
    return this.view.getUint16(2, false);
  }

  /** IPv4 address as a number (family AF_INET). */
  get v4(): number {
    return this.view.getUint32(4, false);
  }

  /** Offset of the IPv6 address in `bytes` (family AF_INET6). */
  static readonly V6_OFF = 8;
}

/** A non-blocking, close-on-exec socket of family 4 or 6. */
function openSocket(family: 4 | 6, type: number): number {
  const fd = libc.socket(family === 4 ? AF_INET : AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno() : fd;
}

const intOpt = new Int32Array(new ArrayBuffer(8));
const intOptBytes = new Uint8Array(intOpt.buffer);

function setInt(fd: number, level: number, name: number, value: number): number {
  intOpt[0] = value;
  return libc.setsockopt(fd, level, name, intOptBytes, 4) < 0 ? -errno() : 0;
}

/**
 * A TCP socket for a host connection. TCP_NODELAY as Go's net package sets
 * it: the guest's segments are already sized by its own stack, and
 * delaying them here only adds latency.
 */
export function tcpSocket(family: 4 | 6): number {
  const fd = openSocket(family, SOCK_STREAM);
  if (fd < 0) return fd;
  setInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  return fd;
}

export function udpSocket(family: 4 | 6): number {
  return openSocket(family, SOCK_DGRAM);
}

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;

/**
 * An unprivileged ICMP echo socket (icmp(7) "ping socket"): datagrams are
 * ICMP echo messages, whose identifier the kernel replaces with the
 * socket's own and whose checksum it fills; it hands back only the echo
 * replies and errors that match that identifier. Allowed when one of the
 * process's groups is in net.ipv4.ping_group_range of the socket's network
 * namespace (the range governs IPv6 too): -EACCES otherwise.
 */
export function echoSocket(family: 4 | 6): number {
  const fd = libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
  return fd < 0 ? -errno() : fd;
}

/** SO_REUSEADDR, as Go sets on listeners: a restart need not wait out TIME_WAIT. */
export function reuseAddress(fd: number): number {
  return setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
}

/** IPV6_V6ONLY off: an IPv6 wildcard listener takes IPv4 too (as v4-mapped addresses). */
export function dualStack(fd: number): number {
  return setInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
}

export function listenOn(fd: number, backlog: number): number {
  return libc.listen(fd, backlog) < 0 ? -errno() : 0;
}

export function bindTo(fd: number, sa: SockAddr): number {
  return libc.bind(fd, sa.bytes, sa.len) < 0 ? -errno() : 0;
}

/** 0, or -errno; -EINPROGRESS for a TCP connect under way. */
export function connectTo(fd: number, sa: SockAddr): number {
  return libc.connect(fd, sa.bytes, sa.len) < 0 ? -errno() : 0;
}

/** An accepted connection (non-blocking, close-on-exec) with the peer in `sa`, or -errno. */
export function acceptFrom(fd: number, sa: SockAddr): number {
  sa.prepareFill();
  const c = libc.accept4(fd, sa.bytes, sa.lenBuf, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) return -errno();
  sa.filled();
  return c;
}

/** The socket's own address into `sa`; 0 or -errno. */
export function localAddress(fd: number, sa: SockAddr): number {
  sa.prepareFill();
  if (libc.getsockname(fd, sa.bytes, sa.lenBuf) < 0) return -errno();
  sa.filled();
  return 0;
}

const errBuf = new Int32Array(new ArrayBuffer(8));
const errBytes = new Uint8Array(errBuf.buffer);
const errLen = new Uint32Array(new ArrayBuffer(4));

/**
 * SO_ERROR: the outcome of a non-blocking connect, as a positive errno (0:
 * connected; the errno of getsockopt itself if that fails). Reading it
 * clears it.
 */
export function socketError(fd: number): number {
  errLen[0] = 4;
  if (libc.getsockopt(fd, SOL_SOCKET, SO_ERROR, errBytes, errLen) < 0) return errno();
  return errBuf[0]!;
}

const linger = new Int32Array(new ArrayBuffer(8));
linger[0] = 1; // l_onoff
linger[1] = 0; // l_linger: close() sends RST and drops unsent data
const lingerBytes = new Uint8Array(linger.buffer);

/** Closes with a RST to the peer instead of a FIN (no result: the fd is gone either way). */
export function resetAndClose(fd: number): void {
  libc.setsockopt(fd, SOL_SOCKET, SO_LINGER, lingerBytes, 8);
  libc.close(fd);
}

/**
 * TCP keepalive (tcp(7)): probes after `idleS` of silence, every
 * `idleS`, `count` of them; TCP_USER_TIMEOUT bounds how long sent data
 * may stay unacknowledged. Returns 0 or the first -errno.
 */
export function setTcpKeepalive(fd: number, idleS: number, count: number, userTimeoutMs: number): number {
  return (
    setInt(fd, SOL_SOCKET, SO_KEEPALIVE, 1) ||
    setInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idleS) ||
    setInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, idleS) ||
    setInt(fd, IPPROTO_TCP, TCP_KEEPCNT, count) ||
    setInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, userTimeoutMs)
  );
}

export function shutdownWrite(fd: number): number {
  return libc.shutdown(fd, SHUT_WR) < 0 ? -errno() : 0;
}

/** send(2) of buf[off, off+len) to the connected peer, never raising SIGPIPE: bytes taken or -errno. */
export function sendAt(fd: number, buf: Uint8Array, off: number, len: number): number {
  const n = libc.send(fd, len > 0 ? ptr(buf, off) : null, len, MSG_NOSIGNAL) as number;
  return n >= 0 ? n : -errno();
}

/** send(2) flag: this call does not block, whatever O_NONBLOCK says on a description other processes share. */
const MSG_DONTWAIT = 0x40;

/** send(2) of buf[off, off+len) that neither blocks nor raises SIGPIPE: bytes taken or -errno (EAGAIN when full). */
export function sendNoWait(fd: number, buf: Uint8Array, off: number, len: number): number {
  const n = libc.send(fd, len > 0 ? ptr(buf, off) : null, len, MSG_NOSIGNAL | MSG_DONTWAIT) as number;
  return n >= 0 ? n : -errno();
}

/** sendto(2) of buf[off, off+len) to `to`: bytes sent or -errno. */
export function sendToAt(fd: number, buf: Uint8Array, off: number, len: number, to: SockAddr): number {
  const n = libc.sendto(fd, len > 0 ? ptr(buf, off) : null, len, MSG_NOSIGNAL, to.bytes, to.len) as number;
  return n >= 0 ? n : -errno();
}

/** recvfrom(2) of one datagram into buf[off, off+len), the sender into `from` when given: its length or -errno. */
export function recvAt(fd: number, buf: Uint8Array, off: number, len: number, from: SockAddr | null): number {
  if (from === null) {
    const n = libc.recvfrom(fd, ptr(buf, off), len, 0, null, null) as number;
    return n >= 0 ? n : -errno();
  }
  from.prepareFill();
  const n = libc.recvfrom(fd, ptr(buf, off), len, 0, from.bytes, from.lenBuf) as number;
  if (n < 0) return -errno();
  from.filled();
  return n;
}
