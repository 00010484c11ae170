// A host TCP connection on the reactor: a non-blocking socket whose owner
// (a splice) is told when it connected, became readable or writable, and
// which reads and writes straight between the socket and the owner's
// buffers (one kernel copy, no JavaScript buffer in between).
//
// Readiness is edge-triggered: `readable` / `writable` stay true from the
// event until a call returns EAGAIN, so an owner that stopped reading for
// its own reasons (the guest's window is full) resumes by just reading
// again. A read that returns less than asked also clears `readable`: the
// receive queue was empty at that moment, and every later arrival raises a
// new event, so the read that would only say EAGAIN is skipped. Except once
// the peer's FIN or an error has been signalled: then reading goes on until
// it returns EOF or the error.
import { EAGAIN, ECONNREFUSED, EINPROGRESS } from "../../ffi/libc.ts";
import { closeFd, readFd } from "../../ffi/sys.ts";
import {
  SockAddr,
  bindTo,
  connectTo,
  localAddress,
  resetAndClose,
  sendAt,
  setTcpKeepalive,
  shutdownWrite,
  socketError,
  tcpSocket,
} from "../../ffi/net.ts";
import { EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, type IoHandler, type Reactor } from "./reactor.ts";
import { sockAddrText } from "./addr.ts";
import { DialError, closeWith } from "./dial-error.ts";

const READ_EVENTS = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
const WRITE_EVENTS = EPOLLOUT | EPOLLHUP | EPOLLERR;

export interface TcpSocketOwner {
  /** A dial finished: `err` is 0 (connected) or the errno (ECONNREFUSED, ...). */
  tcpConnected(sock: TcpSocket, err: number): void;
  /** Data, EOF or an error is waiting: read(). */
  tcpReadable(sock: TcpSocket): void;
  /** Send space opened (or an error is waiting): write(). */
  tcpWritable(sock: TcpSocket): void;
  /**
   * One of the calls above threw (a bug, already reported) and the socket
   * has been reset: end whatever the socket was paired with.
   */
  tcpFault(sock: TcpSocket): void;
}

/** Scratch address for dial and getsockname (single-threaded, used within one call). */
const scratch = new SockAddr();

export class TcpSocket implements IoHandler {
  /** Ready to read (as far as we know): set by events, cleared by EAGAIN. */
  readable = false;
  /** Ready to write: set by events, cleared by EAGAIN. */
  writable = false;
  private connecting: boolean;
  private closed = false;
  /** An event said the peer shut down or the socket failed: read until EOF or the error. */
  private hangup = false;

  private constructor(
    private readonly reactor: Reactor,
    readonly fd: number,
    public owner: TcpSocketOwner,
    connecting: boolean,
  ) {
    this.connecting = connecting;
  }

  /**
   * Starts a connect to `ip` (4 or 16 bytes) port `port`, from `source`
   * when given. The outcome arrives as owner.tcpConnected(); an error
   * known at once (no route, a source address we do not have) is returned.
   */
  static dial(reactor: Reactor, ip: Uint8Array, port: number, source: Uint8Array | null, owner: TcpSocketOwner): TcpSocket | DialError {
    const fd = tcpSocket(ip.length === 4 ? 4 : 6);
    if (fd < 0) return new DialError("socket", -fd);
    if (source !== null) {
      const b = bindTo(fd, scratch.set(source, 0));
      if (b < 0) return closeWith(fd, new DialError("bind", -b));
    }
    const sock = new TcpSocket(reactor, fd, owner, true);
    // Watched before connect(), so the completion cannot slip past.
    const r = reactor.add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, sock);
    if (r < 0) return closeWith(fd, new DialError("socket", -r));
    const c = connectTo(fd, scratch.set(ip, port));
    if (c < 0 && c !== -EINPROGRESS) {
      reactor.remove(fd);
      return closeWith(fd, new DialError("connect", -c));
    }
    return sock;
  }

  /** Takes over an accepted, non-blocking connection; null (fd closed) if it cannot be watched. */
  static adopt(reactor: Reactor, fd: number, owner: TcpSocketOwner): TcpSocket | null {
    const sock = new TcpSocket(reactor, fd, owner, false);
    if (reactor.add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, sock) < 0) {
      closeFd(fd);
      return null;
    }
    return sock;
  }

  onIo(events: number): void {
    if (this.closed) return;
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) this.hangup = true;
    if (this.connecting) {
      if ((events & WRITE_EVENTS) === 0) return;
      this.connecting = false;
      // Writable without an error is a completed connect; only a failure
      // needs SO_ERROR to say which.
      const err = (events & (EPOLLERR | EPOLLHUP)) === 0 ? 0 : socketError(this.fd) || ECONNREFUSED;
      this.writable = err === 0;
      this.owner.tcpConnected(this, err);
      if (err !== 0 || this.closed) return;
    } else if ((events & WRITE_EVENTS) !== 0) {
      this.writable = true;
      this.owner.tcpWritable(this);
      if (this.closed) return;
    }
    if ((events & READ_EVENTS) !== 0) {
      this.readable = true;
      this.owner.tcpReadable(this);
    }
  }

  /** The owner threw from an event: the peer gets a RST, and the owner is told. */
  onFault(_error: unknown): void {
    this.reset();
    this.owner.tcpFault(this);
  }

  /** Reads into buf[off, off+len): bytes read, 0 at EOF, or -errno (-EAGAIN: nothing now). */
  read(buf: Uint8Array, off: number, len: number): number {
    const n = readFd(this.fd, buf, off, len);
    if (n >= 0) {
      if (n < len && !this.hangup) this.readable = false;
    } else if (n === -EAGAIN) this.readable = false;
    return n;
  }

  /** Writes buf[off, off+len): bytes taken (0 when the socket is full), or -errno. */
  write(buf: Uint8Array, off: number, len: number): number {
    const n = sendAt(this.fd, buf, off, len);
    if (n !== -EAGAIN) return n;
    this.writable = false;
    return 0;
  }

  /** Our FIN: no more writes. */
  shutdownWrite(): void {
    shutdownWrite(this.fd);
  }

  /** The socket's own address, Go-style ("127.0.0.1:40000"); "" if unknown. */
  localText(): string {
    return localAddress(this.fd, scratch) < 0 ? "" : sockAddrText(scratch);
  }

  /** Keepalive and user timeout (docs/compatibility.md, Timeouts and keepalive). */
  setKeepalive(idleS: number, count: number, userTimeoutMs: number): void {
    setTcpKeepalive(this.fd, idleS, count, userTimeoutMs);
  }

  /** Closes (a FIN follows if not sent yet). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reactor.close(this.fd);
  }

  /** Closes with a RST to the peer. */
  reset(): void {
    if (this.closed) return;
    this.closed = true;
    this.reactor.remove(this.fd);
    resetAndClose(this.fd);
  }
}
