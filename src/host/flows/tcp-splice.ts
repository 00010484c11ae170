// One guest TCP connection spliced to one host socket (docs/compatibility.md,
// Flows), with backpressure both ways and half-close and reset carried
// across:
//
//   guest -> host  in-order bytes are sent to the socket straight from the
//                  frame; what the kernel does not take stays in the
//                  connection's receive buffer (shrinking the window we
//                  advertise) until the socket is writable again.
//   host -> guest  the socket is read straight into the connection's send
//                  buffer; reading stops while the buffer is full and
//                  resumes when the guest's ACKs free it.
//   FIN            guest FIN -> shutdown(SHUT_WR) once the receive buffer
//                  is flushed; host EOF -> our FIN after the send buffer.
//                  The socket is closed once both directions ended.
//   RST            guest RST -> the host socket is reset (SO_LINGER 0);
//                  host reset or error -> RST to the guest.
//
// The same splice serves routed flows and both kinds of forwards; only who
// started the flow ("local" in the log's error summary) differs.
import { EAGAIN, errnoText } from "../../../ffi/libc.ts";
import type { CloseReason, TcpConnection, TcpHandler } from "../../stack/tcp/connection.ts";
import type { TcpSocket, TcpSocketOwner } from "../../io/tcp-socket.ts";
import { DialError } from "../../io/dial-error.ts";
import { SpliceErrors } from "./splice-errors.ts";
import type { Deferred, StackClock } from "../clock.ts";
import type { DialTarget, FlowLabels } from "./dialer.ts";

/** Keepalive idle/interval while both directions are open, and after one ended (upstream's). */
const KEEPALIVE_MS = 125_000;
const KEEPALIVE_HALF_CLOSED_MS = 5_000;

/**
 * Keepalive on host sockets (docs/compatibility.md, Timeouts and
 * keepalive), set by a sweep every SWEEP_MS rather than at connect: it
 * costs five setsockopt calls, and most connections end long before a
 * 125 s keepalive could matter. A socket is
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

/**
 * Whoever created the splice (the dialer for guest-started flows, a -L
 * forward for host-started ones) hears about its milestones here: one
 * owner object for all its splices, no closures per connection.
 */
export interface SpliceOwner {
  /** The host socket we dialed connected (guest-started flows). */
  hostOpened?(splice: TcpSplice): void;
  /** The host dial failed; the guest has not been answered yet. */
  dialFailed?(splice: TcpSplice, why: DialError): void;
  /** The guest completed its handshake (-L: the dial toward the guest succeeded). */
  guestEstablished?(splice: TcpSplice): void;
  /** Both sides are closed: log the "done" line and forget the splice. */
  spliceDone(splice: TcpSplice): void;
}

/** Host bytes read while the guest side is gone are dropped here. */
const discard = new Uint8Array(new ArrayBuffer(64 * 1024));

export class TcpSplice implements TcpHandler, TcpSocketOwner, Deferred {
  /** The connected host socket (null while dialing, and if the dial failed). */
  sock: TcpSocket | null = null;
  /** The host socket while its connect is under way: closed if the guest goes first. */
  private dialing: TcpSocket | null = null;
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
  /** A read of the host socket is queued for the end of this turn. */
  private pullQueued = false;
  /** Set by whoever dials: the peer's address for log lines. */
  dialRemote = "";
  /** Set by the dialer: where the host socket goes and how its log lines name the flow. */
  target: DialTarget | null = null;
  labels: FlowLabels | null = null;

  /** The guest side; set by bindGuest() before any event can arrive. */
  conn!: TcpConnection;
  /** The guest completed its handshake (for -L: the dial succeeded). */
  established = false;

  constructor(
    private readonly clock: StackClock,
    /** The guest started the flow (routing, -R); false for -L. */
    readonly guestIsLocal: boolean,
    private readonly owner: SpliceOwner,
    private readonly keepalive: HostKeepalive,
    /** Log lines will name the host socket's addresses: read them at open. */
    readonly wantAddresses: boolean,
  ) {}

  bindGuest(conn: TcpConnection): void {
    this.conn = conn;
    conn.handler = this;
  }

  get guestClosed(): boolean {
    return this.guestGone;
  }

  /**
   * The host socket is connected (or accepted): start splicing.
   * `remote` is the peer's address text for log lines. Keepalive comes
   * with the next sweep.
   */
  attachHost(sock: TcpSocket, remote: string): void {
    this.sock = sock;
    sock.owner = this;
    if (this.wantAddresses) {
      this.hostLocal = sock.localText();
      this.hostRemote = remote;
    }
    if (this.guestGone) {
      this.resetHost();
      return;
    }
    this.keepalive.add(this);
    if (this.conn.rcvBuf.length > 0) this.flushToHost();
    if (sock.readable) this.pullFromHost();
  }

  /** The dialer started a connect on `sock`; tcpConnected() follows. */
  dialStarted(sock: TcpSocket): void {
    this.dialing = sock;
  }

  // --- host socket events (TcpSocketOwner) ---

  tcpConnected(sock: TcpSocket, err: number): void {
    this.dialing = null;
    if (err !== 0) {
      sock.close();
      this.hostGone = true;
      this.owner.dialFailed?.(this, new DialError("connect", err));
      return;
    }
    this.attachHost(sock, this.dialRemote);
    if (!this.guestGone) this.owner.hostOpened?.(this);
  }

  tcpReadable(_sock: TcpSocket): void {
    this.pullFromHost();
  }

  tcpWritable(_sock: TcpSocket): void {
    this.flushToHost();
  }

  tcpFault(_sock: TcpSocket): void {
    this.fault();
  }

  // --- guest side (TcpHandler) ---

  onEstablished(conn: TcpConnection): void {
    this.established = true;
    this.owner.guestEstablished?.(this);
    // The host's bytes that came during the handshake are read now (the
    // connection took none before it).
    this.onSendSpace(conn);
  }

  onData(_conn: TcpConnection, buf: Uint8Array, off: number, len: number): number {
    const s = this.sock;
    if (s === null || this.hostShut || this.hostGone || !s.writable) return 0;
    const n = s.write(buf, off, len);
    if (n < 0) {
      this.hostWriteFailed(-n);
      return len;
    }
    return n;
  }

  onReadable(_conn: TcpConnection): void {
    // Bytes the socket refused wait in the receive buffer; writability flushes them.
  }

  onPeerFin(_conn: TcpConnection): void {
    this.guestEnded = true;
    if (this.guestIsLocal) this.errors.stopL2R("EOF", null);
    else this.errors.stopR2L("EOF", null);
    this.shortenKeepalive();
    if (this.conn.rcvBuf.length === 0) this.shutHost();
  }

  onSendSpace(_conn: TcpConnection): void {
    // Called while the engine processes an ACK: read at the end of the turn.
    if (this.sock?.readable && !this.pullQueued) {
      this.pullQueued = true;
      this.clock.defer(this);
    }
  }

  runDeferred(): void {
    this.pullQueued = false;
    this.pullFromHost();
  }

  deferredFault(): void {
    this.fault();
  }

  onClosed(_conn: TcpConnection, reason: CloseReason): void {
    this.guestGone = true;
    if (this.dialing !== null) {
      // The guest gave up (RST, or its handshake timed out) before the host
      // answered: nobody is left to splice to, so the connect is abandoned
      // instead of holding the fd until the kernel gives up on it.
      this.dialing.close();
      this.dialing = null;
      this.hostGone = true;
    }
    switch (reason) {
      case "closed":
        // Both FINs are through. Guest bytes the socket has not taken yet
        // stay in the receive buffer: flush them, then our FIN follows
        // (flushToHost shuts the socket once the buffer is empty); the
        // socket closes at the host's EOF.
        if (this.sock !== null && !this.hostGone) {
          if (this.conn.rcvBuf.length > 0) this.flushToHost();
          else this.shutHost();
          if (this.sock.readable) this.pullFromHost();
        }
        break;
      case "aborted":
        // We reset the guest: the host side failed, the exit cut it, or
        // the engine confined a throw of ours to this flow. The host peer
        // gets a RST too (nothing when its socket is already gone).
        this.resetHost();
        break;
      default: {
        const text = reason === "reset" ? "connection reset by peer" : reason === "timeout" ? "connection timed out" : "connection was refused";
        if (this.guestIsLocal) this.errors.stopL2R(text, null);
        else this.errors.stopR2L(text, null);
        this.resetHost();
      }
    }
    this.maybeDone();
  }

  /**
   * One of our handlers threw (a bug, already reported): the flow's state
   * cannot be trusted, so RST toward both peers (a cut stream must not
   * look complete) and forget it.
   */
  private fault(): void {
    const text = "internal error";
    if (this.guestIsLocal) this.errors.stopL2R(text, null);
    else this.errors.stopR2L(text, null);
    if (this.dialing !== null) {
      this.dialing.reset();
      this.dialing = null;
      this.hostGone = true;
    }
    this.resetHost();
    if (!this.guestGone) this.conn.abort(this.clock.now(), "aborted");
    this.clock.afterActivity();
    this.maybeDone();
  }

  /** Exit: RST toward both peers (the stream is not complete, or bytes would be lost). */
  cut(now: number): void {
    this.resetHost();
    this.conn.abort(now, "aborted");
  }

  // --- internals ---

  /**
   * Reads the host socket straight into the connection's send buffer while
   * it has room; stops at EAGAIN, EOF, an error, or a full buffer (resumed
   * by onSendSpace).
   */
  private pullFromHost(): void {
    const s = this.sock;
    if (s === null) return;
    const c = this.conn;
    const now = this.clock.now();
    let moved = false;
    while (s.readable && !this.hostEnded && !this.hostGone) {
      let n: number;
      if (this.guestGone) {
        n = s.read(discard, 0, discard.length);
      } else {
        const span = c.reserveSend();
        if (span === 0) break;
        n = s.read(c.sendBuf.backBuf, c.sendBuf.backOff, span);
        if (n > 0) {
          c.commitSend(n, now);
          moved = true;
        }
      }
      if (n > 0) continue;
      if (n === 0) this.hostEnd();
      else if (n !== -EAGAIN) this.hostReadFailed(-n);
      break;
    }
    if (moved) this.clock.afterActivity();
  }

  /** The host sent its FIN. */
  private hostEnd(): void {
    this.hostEnded = true;
    if (this.guestIsLocal) this.errors.stopR2L("EOF", null);
    else this.errors.stopL2R("EOF", null);
    this.shortenKeepalive();
    if (!this.guestGone) {
      this.conn.shutdownWrite(this.clock.now());
      this.clock.afterActivity();
    }
    if (this.hostShut) this.closeHost();
  }

  private hostReadFailed(err: number): void {
    const text = `read tcp ${this.hostLocal}->${this.hostRemote}: read: ${errnoText(err)}`;
    if (this.guestIsLocal) this.errors.stopR2L(text, null);
    else this.errors.stopL2R(text, null);
    if (!this.guestGone) {
      this.conn.abort(this.clock.now(), "aborted");
      this.clock.afterActivity();
    }
    this.closeHost();
  }

  /** Writes what the receive buffer holds; the window reopens as it empties. */
  private flushToHost(): void {
    const s = this.sock;
    if (s === null || this.hostShut || this.hostGone) return;
    const rb = this.conn.rcvBuf;
    while (rb.length > 0 && s.writable) {
      const n = rb.front();
      const w = s.write(rb.frontBuf, rb.frontOff, n);
      if (w < 0) {
        this.hostWriteFailed(-w);
        return;
      }
      if (w > 0) this.conn.consumed(w, this.clock.now());
      if (w < n) break;
    }
    if (rb.length === 0 && this.guestEnded) this.shutHost();
    this.clock.afterActivity();
  }

  private shutHost(): void {
    if (this.hostShut || this.sock === null || this.hostGone) return;
    this.hostShut = true;
    this.sock.shutdownWrite();
    if (this.hostEnded) this.closeHost();
  }

  private hostWriteFailed(err: number): void {
    const text = `write tcp ${this.hostLocal}->${this.hostRemote}: write: ${errnoText(err)}`;
    if (this.guestIsLocal) this.errors.stopL2R(null, text);
    else this.errors.stopR2L(null, text);
    if (!this.guestGone) this.conn.abort(this.clock.now(), "aborted");
    this.resetHost();
    this.clock.afterActivity();
  }

  /** Both directions ended (or the socket failed): close it. */
  private closeHost(): void {
    if (this.sock === null || this.hostGone) return;
    this.hostGone = true;
    this.sock.close();
    this.maybeDone();
  }

  /** Resets the host socket (SO_LINGER 0 then close: the peer sees a RST). */
  private resetHost(): void {
    if (this.sock === null || this.hostGone) return;
    this.hostGone = true;
    this.sock.reset();
    this.maybeDone();
  }

  /** Once one direction has ended, both sides get 5 s / 2 probes, as upstream. */
  private shortenKeepalive(): void {
    if (this.halfClosed) return;
    this.halfClosed = true;
    this.conn.setKeepalive(KEEPALIVE_HALF_CLOSED_MS, KEEPALIVE_HALF_CLOSED_MS, 2, 3 * KEEPALIVE_HALF_CLOSED_MS, this.clock.now());
  }

  /** Called by the keepalive sweep: brings the host socket's keepalive up to date. */
  applyHostKeepalive(): void {
    const want = this.halfClosed ? KEEPALIVE_HALF_CLOSED_MS : KEEPALIVE_MS;
    if (this.sock === null || this.hostGone || want === this.hostKeepaliveMs) return;
    this.hostKeepaliveMs = want;
    const count = this.halfClosed ? 2 : 4;
    // TCP_USER_TIMEOUT = idle + interval * count (125 + 4 * 125 s; 5 + 2 * 5 s).
    this.sock.setKeepalive(want / 1000, count, want * (1 + count));
  }

  private maybeDone(): void {
    if (this.reported || !this.guestGone || !(this.hostGone || this.sock === null)) return;
    this.reported = true;
    this.keepalive.remove(this);
    this.owner.spliceDone(this);
  }
}
