// A listening TCP socket on the reactor (a -L forward). Connections are
// accepted as they arrive, each handed over as a non-blocking fd with the
// client's address: no getpeername per connection.
import { EAGAIN, EINTR } from "../../ffi/libc.ts";
import { AF_INET6, SockAddr, acceptFrom, bindTo, dualStack, listenOn, localAddress, reuseAddress, tcpSocket } from "../../ffi/net.ts";
import { EPOLLIN, type IoHandler, type Reactor } from "./reactor.ts";
import { DialError, closeWith } from "./dial-error.ts";

/** Pending connections the kernel may queue (it caps this at net.core.somaxconn). */
const BACKLOG = 4096;
/**
 * After accept() failed (out of fds, say) or the owner threw, when to try
 * again: the waiting connections raise no new event by themselves.
 */
const RETRY_MS = 100;

export interface TcpListenerOwner {
  /** A new connection: `fd` is non-blocking, `peer` holds the client's address until the next accept. */
  tcpAccepted(fd: number, peer: SockAddr): void;
  /** accept() failed for a reason other than "nothing waiting" (EMFILE, ENOBUFS, ...). */
  tcpAcceptFailed(errno: number): void;
}

export class TcpListener implements IoHandler {
  private readonly peer = new SockAddr();
  private closed = false;
  private retry: ReturnType<typeof setTimeout> | null = null;

  private constructor(
    private readonly reactor: Reactor,
    readonly fd: number,
    /** The port it listens on (the kernel's pick when asked for 0). */
    readonly port: number,
    private readonly owner: TcpListenerOwner,
  ) {}

  /** Listens on `sa` (an IPv6 wildcard takes IPv4 too), as Go's net.Listen does. */
  static listen(reactor: Reactor, sa: SockAddr, owner: TcpListenerOwner): TcpListener | DialError {
    const v6 = sa.family === AF_INET6;
    const fd = tcpSocket(v6 ? 6 : 4);
    if (fd < 0) return new DialError("socket", -fd);
    reuseAddress(fd);
    if (v6) dualStack(fd);
    let r = bindTo(fd, sa);
    if (r < 0) return closeWith(fd, new DialError("bind", -r));
    r = listenOn(fd, BACKLOG);
    if (r < 0) return closeWith(fd, new DialError("listen", -r));
    const bound = new SockAddr();
    const port = localAddress(fd, bound) < 0 ? sa.port : bound.port;
    const l = new TcpListener(reactor, fd, port, owner);
    r = reactor.add(fd, EPOLLIN, l);
    if (r < 0) return closeWith(fd, new DialError("listen", -r));
    return l;
  }

  onIo(_events: number): void {
    while (!this.closed) {
      const fd = acceptFrom(this.fd, this.peer);
      if (fd >= 0) {
        this.owner.tcpAccepted(fd, this.peer);
        continue;
      }
      if (fd === -EINTR) continue;
      if (fd !== -EAGAIN) {
        this.owner.tcpAcceptFailed(-fd);
        this.retryLater();
      }
      return;
    }
  }

  /**
   * The owner threw while taking a connection: the listener stays, and
   * accepting resumes after RETRY_MS (connections already waiting raise no
   * new event by themselves).
   */
  onFault(_error: unknown): void {
    this.retryLater();
  }

  private retryLater(): void {
    this.retry ??= setTimeout(this.retryNow, RETRY_MS);
  }

  private readonly retryNow = (): void => {
    this.retry = null;
    if (!this.closed) this.reactor.call(this.fd, this, EPOLLIN);
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    this.reactor.close(this.fd);
  }
}
