// One guest TCP connection spliced to one host socket (contract §8), with
// backpressure both ways and half-close and reset carried across:
//
//   guest -> host  in-order bytes go to socket.write() straight from the
//                  frame; what the kernel does not take stays in the
//                  connection's receive buffer (shrinking the window we
//                  advertise) until the socket drains.
//   host -> guest  socket data goes into the connection's send buffer; the
//                  socket is paused while the buffer is full and resumed
//                  when the guest's ACKs free it.
//   FIN            guest FIN -> shutdown(SHUT_WR) once the receive buffer
//                  is flushed; host FIN -> our FIN after the send buffer.
//   RST            guest RST -> the host socket is reset (SO_LINGER 0);
//                  host reset or error -> RST to the guest.
//
// The same splice serves routed flows and both kinds of forwards; only who
// started the flow ("local" in the log's error summary) differs.
import type { Socket, SocketHandler } from "bun";
import type { CloseReason, TcpConnection, TcpHandler } from "../stack/tcp/connection.ts";
import { SpliceErrors } from "./splice-errors.ts";
import type { StackRuntime } from "./runtime.ts";
import { formatHostPort } from "../cli/goaddr.ts";

/** contract §8.3: keepalive idle/interval while both directions are open, and after one ended. */
const KEEPALIVE_MS = 125_000;
const KEEPALIVE_HALF_CLOSED_MS = 5_000;

/**
 * Keepalive on host sockets (contract §8.3), set by a sweep every
 * SWEEP_MS rather than at connect: it costs four setsockopt calls, and most
 * connections end long before a 125 s keepalive could matter. A socket is
 * configured at most SWEEP_MS late, and switched to the half-closed 5 s
 * setting at the next sweep after a direction ends. (The guest side's
 * keepalive is ours and changes at once.)
 */
export class HostKeepalive {
  static readonly SWEEP_MS = 10_000;
  private readonly live = new Set<TcpSplice>();
  private timer: ReturnType<typeof setInterval> | null = null;

  add(s: TcpSplice): void {
    this.live.add(s);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), HostKeepalive.SWEEP_MS);
      this.timer.unref?.();
    }
  }

  remove(s: TcpSplice): void {
    this.live.delete(s);
    if (this.live.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private sweep(): void {
    for (const s of this.live) s.applyHostKeepalive();
  }
}

export interface SpliceOwner {
  /** Both sides are closed: log the "done" line and forget the splice. */
  spliceDone(splice: TcpSplice): void;
}

export class TcpSplice implements TcpHandler {
  sock: Socket<TcpSplice> | null = null;
  readonly errors = new SpliceErrors();
  /** The host socket's addresses, Go-style, captured at open when logging (for log lines). */
  hostLocal = "";
  hostRemote = "";
  /** The keepalive idle time the host socket has (0: none yet). */
  private hostKeepaliveMs = 0;
  private guestEnded = false;
  private hostEnded = false;
  private hostShut = false;
  private guestGone = false;
  private hostGone = false;
  private reported = false;
  private halfClosed = false;
  /** We reset the host socket ourselves: its close is not the peer's EOF. */
  private hostReset = false;
  /** Set by whoever dials: runs once the host socket is connected. */
  onHostOpen: ((splice: TcpSplice) => void) | null = null;
  /** Set by whoever dials: the host connect failed. */
  onConnectError: ((splice: TcpSplice, err: NodeJS.ErrnoException) => void) | null = null;

  /** The guest side; set by bindGuest() before any event can arrive. */
  conn!: TcpConnection;
  /** The guest completed its handshake (for -L: the dial succeeded). */
  established = false;
  /** Set by whoever dials toward the guest (-L): the handshake completed. */
  onGuestEstablished: ((splice: TcpSplice) => void) | null = null;

  constructor(
    private readonly rt: StackRuntime,
    /** The guest started the flow (routing, -R); false for -L. */
    readonly guestIsLocal: boolean,
    private readonly owner: SpliceOwner,
    private readonly keepalive: HostKeepalive,
    /** Log lines will name the host socket's addresses: read them at open. */
    private readonly wantAddresses: boolean,
  ) {}

  bindGuest(conn: TcpConnection): void {
    this.conn = conn;
    conn.handler = this;
  }

  get guestClosed(): boolean {
    return this.guestGone;
  }

  /**
   * The host socket is connected (or accepted): start splicing. Bun sets
   * TCP_NODELAY on its sockets, as Go's net package does, so there is
   * nothing to set here; keepalive comes with the next sweep.
   */
  attachHost(sock: Socket<TcpSplice>): void {
    this.sock = sock;
    sock.data = this;
    // Each of these getters is a getsockname/getpeername call.
    if (this.wantAddresses) {
      this.hostLocal = formatHostPort(sock.localAddress, sock.localPort);
      this.hostRemote = formatHostPort(sock.remoteAddress, sock.remotePort);
    }
    this.keepalive.add(this);
    if (this.guestGone) {
      sock.terminate();
      return;
    }
    if (this.conn.rcvBuf.length > 0) this.flushToHost();
  }

  // --- guest side (TcpHandler) ---

  onEstablished(_conn: TcpConnection): void {
    this.established = true;
    this.onGuestEstablished?.(this);
  }

  onData(_conn: TcpConnection, buf: Uint8Array, off: number, len: number): number {
    const s = this.sock;
    if (s === null || this.hostShut) return 0;
    const n = s.write(buf, off, len);
    if (n < 0) {
      this.hostWriteFailed();
      return len;
    }
    return n;
  }

  onReadable(_conn: TcpConnection): void {
    // Bytes the socket refused wait in the receive buffer; "drain" flushes them.
  }

  onPeerFin(_conn: TcpConnection): void {
    this.guestEnded = true;
    if (this.guestIsLocal) this.errors.stopL2R("EOF", null);
    else this.errors.stopR2L("EOF", null);
    this.shortenKeepalive();
    if (this.conn.rcvBuf.length === 0) this.shutHost();
  }

  onSendSpace(_conn: TcpConnection): void {
    this.sock?.resume();
  }

  onClosed(_conn: TcpConnection, reason: CloseReason): void {
    this.guestGone = true;
    const s = this.sock;
    switch (reason) {
      case "closed":
        // Both FINs are through. Guest bytes the socket has not taken yet
        // stay in the receive buffer: flush them, then our FIN follows
        // (flushToHost shuts the socket once the buffer is empty), and Bun
        // closes the socket once both directions are shut.
        if (s !== null && !this.hostGone) {
          if (this.conn.rcvBuf.length > 0) this.flushToHost();
          else this.shutHost();
        }
        break;
      case "aborted":
        break; // we reset the guest because the host side failed
      default: {
        const text = reason === "reset" ? "connection reset by peer" : reason === "timeout" ? "connection timed out" : "connection was refused";
        if (this.guestIsLocal) this.errors.stopL2R(text, null);
        else this.errors.stopR2L(text, null);
        this.resetHost();
      }
    }
    this.maybeDone();
  }

  // --- host side (socket events, via hostSocketHandlers) ---

  hostData(data: Uint8Array): void {
    const c = this.conn;
    if (this.guestGone) return;
    c.send(data, 0, data.length, this.rt.now());
    if (c.sendRoom === 0) this.sock?.pause();
    this.rt.afterActivity();
  }

  hostDrain(): void {
    this.flushToHost();
  }

  hostEnd(): void {
    if (this.hostEnded) return;
    this.hostEnded = true;
    if (this.guestIsLocal) this.errors.stopR2L("EOF", null);
    else this.errors.stopL2R("EOF", null);
    this.shortenKeepalive();
    if (!this.guestGone) {
      this.conn.shutdownWrite(this.rt.now());
      this.rt.afterActivity();
    }
  }

  hostError(err: Error): void {
    this.recordHostReadError(goSocketError(err, this));
  }

  hostClose(err: Error | undefined): void {
    this.hostGone = true;
    if (err !== undefined) {
      this.recordHostReadError(goSocketError(err, this));
      if (!this.guestGone) {
        this.conn.abort(this.rt.now(), "aborted");
        this.rt.afterActivity();
      }
    } else if (!this.hostReset) {
      // Bun reports a FIN that arrives after our own shutdown as a plain close.
      this.hostEnd();
    }
    this.maybeDone();
  }

  // --- internals ---

  private recordHostReadError(text: string): void {
    if (this.guestIsLocal) this.errors.stopR2L(text, null);
    else this.errors.stopL2R(text, null);
  }

  /** Writes what the receive buffer holds; the window reopens as it empties. */
  private flushToHost(): void {
    const s = this.sock;
    const rb = this.conn.rcvBuf;
    if (s === null) return;
    while (rb.length > 0) {
      const n = rb.front();
      const w = s.write(rb.frontBuf, rb.frontOff, n);
      if (w < 0) {
        this.hostWriteFailed();
        return;
      }
      if (w > 0) this.conn.consumed(w);
      if (w < n) break;
    }
    if (rb.length === 0 && this.guestEnded) this.shutHost();
    this.rt.afterActivity();
  }

  private shutHost(): void {
    if (this.hostShut || this.sock === null || this.hostGone) return;
    this.hostShut = true;
    this.sock.shutdown();
  }

  private hostWriteFailed(): void {
    const text = `write tcp ${this.hostLocal}->${this.hostRemote}: write: broken pipe`;
    if (this.guestIsLocal) this.errors.stopL2R(null, text);
    else this.errors.stopR2L(null, text);
    if (!this.guestGone) this.conn.abort(this.rt.now(), "aborted");
    this.resetHost();
    this.rt.afterActivity();
  }

  /** Resets the host socket (SO_LINGER 0 then close: the peer sees a RST). */
  private resetHost(): void {
    if (this.sock === null || this.hostGone || this.hostReset) return;
    this.hostReset = true;
    this.sock.terminate();
  }

  /** contract §8.3: once one direction has ended, both sides get 5 s / 2 probes. */
  private shortenKeepalive(): void {
    if (this.halfClosed) return;
    this.halfClosed = true;
    this.conn.setKeepalive(KEEPALIVE_HALF_CLOSED_MS, KEEPALIVE_HALF_CLOSED_MS, 2, 3 * KEEPALIVE_HALF_CLOSED_MS, this.rt.now());
  }

  /** Called by the keepalive sweep: brings the host socket's keepalive up to date. */
  applyHostKeepalive(): void {
    const want = this.halfClosed ? KEEPALIVE_HALF_CLOSED_MS : KEEPALIVE_MS;
    if (this.sock === null || this.hostGone || want === this.hostKeepaliveMs) return;
    this.hostKeepaliveMs = want;
    this.sock.setKeepAlive(true, want);
  }

  private maybeDone(): void {
    if (this.reported || !this.guestGone || !(this.hostGone || this.sock === null)) return;
    this.reported = true;
    this.keepalive.remove(this);
    this.owner.spliceDone(this);
  }

  /** The host socket never came (dial failed): the splice ends with the guest side. */
  hostNeverConnected(): void {
    this.hostGone = true;
  }
}

/** Go-flavoured text of a socket error, for the error summary. */
function goSocketError(err: Error, s: TcpSplice): string {
  const code = (err as NodeJS.ErrnoException).code;
  const what: Record<string, string> = {
    ECONNRESET: "connection reset by peer",
    ETIMEDOUT: "connection timed out",
    EPIPE: "broken pipe",
    ECONNREFUSED: "connection refused",
    EHOSTUNREACH: "no route to host",
    ENETUNREACH: "network is unreachable",
  };
  const text = (code && what[code]) ?? err.message;
  return `read tcp ${s.hostLocal}->${s.hostRemote}: read: ${text}`;
}

/** One handler object for every spliced host socket: no closure per flow. */
export const hostSocketHandlers: SocketHandler<TcpSplice> = {
  binaryType: "uint8array",
  open(s) {
    const splice = s.data;
    splice.attachHost(s);
    splice.onHostOpen?.(splice);
  },
  connectError(s, e) {
    const splice = s.data;
    splice.hostNeverConnected();
    splice.onConnectError?.(splice, e as NodeJS.ErrnoException);
  },
  data(s, d) {
    s.data.hostData(d);
  },
  drain(s) {
    s.data.hostDrain();
  },
  end(s) {
    s.data.hostEnd();
  },
  error(s, e) {
    s.data.hostError(e);
  },
  close(s, e) {
    s.data.hostClose(e);
  },
};
