// A host UDP socket on the reactor: connected (one guest flow to one host
// peer) or bound (a -L listener serving many clients). The owner is told
// when datagrams are waiting and reads them into its own buffer, one
// datagram per call, boundaries kept.
import { EAGAIN } from "../../ffi/libc.ts";
import { AF_INET6, SockAddr, bindTo, connectTo, dualStack, localAddress, recvAt, sendAt, sendToAt, udpSocket } from "../../ffi/net.ts";
import { EPOLLERR, EPOLLIN, type IoHandler, type Reactor } from "./reactor.ts";
import { sockAddrText } from "./addr.ts";
import { DialError, closeWith } from "./dial-error.ts";

export interface UdpSocketOwner {
  /** Datagrams (or an error, such as ECONNREFUSED from an ICMP reply) are waiting: recv(). */
  udpReadable(sock: UdpSocket): void;
}

/**
 * Datagrams an owner reads per readiness event; a host peer sending faster
 * than the guest takes them yields to other flows after this many
 * (readLater).
 */
export const DATAGRAMS_PER_TURN = 256;

/** Largest UDP payload (IPv4: 65507; IPv6 without jumbograms: 65527). */
const MAX_DATAGRAM = 65535;

/**
 * Every host datagram is read into this one buffer and copied once, into
 * its frame toward the guest, before the next read.
 */
export const datagramBuffer = new Uint8Array(new ArrayBuffer(MAX_DATAGRAM));

const scratch = new SockAddr();

export class UdpSocket implements IoHandler {
  /** Ready to read (as far as we know): set by events, cleared by EAGAIN. */
  readable = false;
  private closed = false;
  /** readLater() has a setImmediate pending. */
  private laterQueued = false;

  private constructor(
    private readonly reactor: Reactor,
    readonly fd: number,
    private readonly owner: UdpSocketOwner,
  ) {}

  /** A socket connected to `ip`:`port` (4 or 16 bytes), bound to `source` when given. */
  static connected(reactor: Reactor, ip: Uint8Array, port: number, source: Uint8Array | null, owner: UdpSocketOwner): UdpSocket | DialError {
    const fd = udpSocket(ip.length === 4 ? 4 : 6);
    if (fd < 0) return new DialError("socket", -fd);
    if (source !== null) {
      const b = bindTo(fd, scratch.set(source, 0));
      if (b < 0) return closeWith(fd, new DialError("bind", -b));
    }
    const c = connectTo(fd, scratch.set(ip, port));
    if (c < 0) return closeWith(fd, new DialError("connect", -c));
    return UdpSocket.watch(reactor, fd, owner);
  }

  /** A socket bound to `sa` (a -L listener; an IPv6 wildcard takes IPv4 too). */
  static bound(reactor: Reactor, sa: SockAddr, owner: UdpSocketOwner): UdpSocket | DialError {
    const fd = udpSocket(sa.family === AF_INET6 ? 6 : 4);
    if (fd < 0) return new DialError("socket", -fd);
    if (sa.family === AF_INET6) dualStack(fd);
    const b = bindTo(fd, sa);
    if (b < 0) return closeWith(fd, new DialError("bind", -b));
    return UdpSocket.watch(reactor, fd, owner);
  }

  private static watch(reactor: Reactor, fd: number, owner: UdpSocketOwner): UdpSocket | DialError {
    const sock = new UdpSocket(reactor, fd, owner);
    const r = reactor.add(fd, EPOLLIN, sock);
    if (r < 0) return closeWith(fd, new DialError("socket", -r));
    return sock;
  }

  onIo(events: number): void {
    if (this.closed || (events & (EPOLLIN | EPOLLERR)) === 0) return;
    this.readable = true;
    this.owner.udpReadable(this);
  }

  /**
   * The owner stopped reading with datagrams still waiting (its
   * DATAGRAMS_PER_TURN ran out): it hears udpReadable() again from
   * setImmediate, once Bun's loop has served everyone else. Edge-triggered
   * epoll would not report them again.
   */
  readLater(): void {
    if (this.laterQueued) return;
    this.laterQueued = true;
    setImmediate(UdpSocket.readAgain, this);
  }

  private static readAgain(sock: UdpSocket): void {
    sock.laterQueued = false;
    if (!sock.closed && sock.readable) sock.owner.udpReadable(sock);
  }

  /** One datagram into buf[off, off+len): its length, or -errno (-EAGAIN: none waiting). */
  recv(buf: Uint8Array, off: number, len: number): number {
    const n = recvAt(this.fd, buf, off, len, null);
    if (n === -EAGAIN) this.readable = false;
    return n;
  }

  /** recv(), with the sender's address in `from`. */
  recvFrom(buf: Uint8Array, off: number, len: number, from: SockAddr): number {
    const n = recvAt(this.fd, buf, off, len, from);
    if (n === -EAGAIN) this.readable = false;
    return n;
  }

  /** Sends buf[off, off+len) to the connected peer: bytes sent or -errno. */
  send(buf: Uint8Array, off: number, len: number): number {
    return sendAt(this.fd, buf, off, len);
  }

  /** Sends buf[off, off+len) to `to`: bytes sent or -errno. */
  sendTo(buf: Uint8Array, off: number, len: number, to: SockAddr): number {
    return sendToAt(this.fd, buf, off, len, to);
  }

  /** The socket's own address, Go-style; "" if unknown. */
  localText(): string {
    return localAddress(this.fd, scratch) < 0 ? "" : sockAddrText(scratch);
  }

  /** The bound port (0 if unknown). */
  localPort(): number {
    return localAddress(this.fd, scratch) < 0 ? 0 : scratch.port;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reactor.close(this.fd);
  }
}
