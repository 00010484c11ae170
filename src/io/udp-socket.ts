// A host datagram socket on the reactor, unconnected: a UDP socket for one
// guest endpoint's mapping, sending to every host peer that guest endpoint
// talks to (src/host/flows/udp-nat.ts), or a -L listener serving many clients;
// or an ICMP echo socket for one guest ping (src/host/flows/echo-forwarder.ts).
// The owner is told when datagrams are waiting and reads them into its own
// buffer, one datagram per call, boundaries kept.
import { EAGAIN } from "../../ffi/libc.ts";
import { AF_INET6, SockAddr, bindTo, dualStack, echoSocket, localAddress, recvAt, sendToAt, udpSocket } from "../../ffi/net.ts";
import { QueuedError, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, enableRecvErr, readErrorQueue } from "../../ffi/udp-errors.ts";
import { EPOLLERR, EPOLLIN, type IoHandler, type Reactor } from "./reactor.ts";
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
const ANY4 = new Uint8Array(4);
const ANY6 = new Uint8Array(16);
const queued = new QueuedError();

/** ICMP "destination unreachable" codes that end a flow (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1). */
const HARD_UNREACH_V4 = (1 << 2) | (1 << 3) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 13) | (1 << 14) | (1 << 15);
/** ICMPv6 "destination unreachable" codes that end a flow (RFC 4443 §3.1). */
const HARD_UNREACH_V6 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6);

/**
 * Whether an ICMP error is one Linux reports to a connected UDP socket
 * (without IP_RECVERR): protocol or port unreachable, administratively
 * prohibited and the like, and parameter problems. Transient ones (no
 * route, host unreachable, time exceeded, too big) are not: a connected
 * socket never saw them, and the flow goes on.
 */
export function hardError(e: QueuedError): boolean {
  if (e.origin === SO_EE_ORIGIN_ICMP) return (e.type === 3 && ((HARD_UNREACH_V4 >> e.code) & 1) === 1) || e.type === 12;
  if (e.origin === SO_EE_ORIGIN_ICMP6) return (e.type === 1 && ((HARD_UNREACH_V6 >> e.code) & 1) === 1) || e.type === 4;
  return false;
}

export class UdpSocket implements IoHandler {
  /** Ready to read (as far as we know): set by events, cleared by EAGAIN. */
  readable = false;
  /** EPOLLERR was reported: ICMP errors may wait on the error queue (readError). */
  errorQueued = false;
  private closed = false;
  /** readLater() has a setImmediate pending. */
  private laterQueued = false;

  private constructor(
    private readonly reactor: Reactor,
    readonly fd: number,
    private readonly owner: UdpSocketOwner,
  ) {}

  /**
   * An unconnected socket of `family` bound to `source` (or the wildcard)
   * and an ephemeral port, with ICMP errors on its error queue.
   */
  static unconnected(reactor: Reactor, family: 4 | 6, source: Uint8Array | null, owner: UdpSocketOwner): UdpSocket | DialError {
    const fd = udpSocket(family);
    if (fd < 0) return new DialError("socket", -fd);
    const e = enableRecvErr(fd, family);
    if (e < 0) return closeWith(fd, new DialError("socket", -e));
    const b = bindTo(fd, scratch.set(source ?? (family === 4 ? ANY4 : ANY6), 0));
    if (b < 0) return closeWith(fd, new DialError("bind", -b));
    return UdpSocket.watch(reactor, fd, owner);
  }

  /**
   * An ICMP echo socket of `family` with ICMP errors on its error queue
   * (socket: EACCES when the process's groups are not in
   * net.ipv4.ping_group_range).
   */
  static echo(reactor: Reactor, family: 4 | 6, owner: UdpSocketOwner): UdpSocket | DialError {
    const fd = echoSocket(family);
    if (fd < 0) return new DialError("socket", -fd);
    const e = enableRecvErr(fd, family);
    if (e < 0) return closeWith(fd, new DialError("socket", -e));
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
    if ((events & EPOLLERR) !== 0) this.errorQueued = true;
    this.owner.udpReadable(this);
  }

  /**
   * The owner threw (a bug, already reported) while handling one datagram:
   * that datagram is lost, but the socket may serve many flows, so it
   * stays; what is still queued is read in the next turn.
   */
  onFault(_error: unknown): void {
    if (!this.closed && this.readable) this.readLater();
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
    if (!sock.closed && sock.readable) sock.reactor.call(sock.fd, sock, EPOLLIN);
  }

  /** One datagram into buf[off, off+len), the sender's address in `from`: its length, or -errno (-EAGAIN: none waiting). */
  recvFrom(buf: Uint8Array, off: number, len: number, from: SockAddr): number {
    const n = recvAt(this.fd, buf, off, len, from);
    if (n === -EAGAIN) this.readable = false;
    return n;
  }

  /** Sends buf[off, off+len) to `to`: bytes sent or -errno. */
  sendTo(buf: Uint8Array, off: number, len: number, to: SockAddr): number {
    return sendToAt(this.fd, buf, off, len, to);
  }

  /**
   * Takes one ICMP error off the error queue, the destination it was about
   * into `to`: the error (a record reused by every call; hardError() says
   * whether it ends a flow), or null once the queue is empty or unreadable.
   */
  readError(to: SockAddr): QueuedError | null {
    const r = readErrorQueue(this.fd, to, queued);
    if (r < 0) {
      this.errorQueued = false;
      return null;
    }
    return queued;
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
