// One TCP connection with the guest: the RFC 9293 state machine, sans-I/O.
//
// The connection is driven by three things only: segments from the guest
// (`input`), calls from the host side (`accept`, `send`, `shutdownWrite`,
// `abort`, `consumed`), and time (`onTimer`). It emits segments and
// registers deadlines through its TcpOutput (the layer), and reports to the host side
// through a TcpHandler. It never touches a socket, a clock or a timer.
//
// This class is the state record and the calls of the layer and the host
// side; the work is done by parts holding a reference to it: TcpInput
// (segment arrival), TcpSender (what to send, ACKs, the window we
// advertise), LossRecovery and TcpTimers.
//
// Naming follows RFC 9293: SND.UNA (sndUna), SND.NXT (sndNxt), SND.WND
// (sndWnd), RCV.NXT (rcvNxt)... The two ends are "guest" (the guest's
// address and port) and "dest" (the destination the guest addressed, which
// the stack impersonates; for -L, the address we spoof toward the guest).
// They are not the -L/-R "local"/"remote" of port forwards.
import { ByteRing } from "./byte-ring.ts";
import { Assembler } from "./assembler.ts";
import { BudgetAccount } from "./budget.ts";
import { NewReno } from "./congestion.ts";
import { RttEstimator } from "./rtt.ts";
import { ACK, RST, SYN, type TcpSegment } from "./segment.ts";
import { seqAdd, seqDiff, seqGt } from "./seq.ts";
import type { FlowTuple } from "../flow-key.ts";
import type { TcpOutput } from "./output.ts";
import { TcpInput } from "./input.ts";
import { LossRecovery } from "./recovery.ts";
import { TcpSender } from "./sender.ts";
import { TcpTimers } from "./timers.ts";
import { NO_DEADLINE, TcpState, STATE_NAMES, shiftFor, type CloseReason, type TcpConfig, type TcpHandler } from "./state.ts";

export { TcpState, STATE_NAMES, DEFAULT_TCP_CONFIG, shiftFor, type CloseReason, type TcpConfig, type TcpHandler } from "./state.ts";

export class TcpConnection implements FlowTuple {
  // --- identity (set by the layer) ---
  readonly family: 4 | 6;
  /** Our address as seen by the guest: uint32 for IPv4. */
  readonly destV4: number;
  readonly guestV4: number;
  /** 16 bytes each for IPv6 (null for IPv4). */
  readonly destV6: Uint8Array | null;
  readonly guestV6: Uint8Array | null;
  readonly destPort: number;
  readonly guestPort: number;
  /** Demux chain link, owned by the layer. */
  nextInBucket: TcpConnection | null = null;
  /** The host-side owner; set before the connection can deliver events. */
  handler: TcpHandler | null = null;
  /** Free slot for the host side's bookkeeping (flow id, logging). */
  tag: unknown = null;

  state: TcpState = TcpState.Closed;
  readonly passive: boolean;

  // --- send side ---
  iss = 0;
  sndUna = 0;
  sndNxt = 0;
  /** Highest sequence number sent so far (SND.NXT before any go-back-N). */
  sndMax = 0;
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  /** Largest window the guest ever offered (RFC 5961 ACK acceptance). */
  maxSndWnd = 0;
  /** Shift applied to windows the guest advertises. */
  sndShift = 0;
  /** Bytes from SND.UNA on: sent-but-unacknowledged, then unsent. */
  readonly sendBuf: ByteRing;
  /** Host closed its side: send FIN after the buffered data. */
  finQueued = false;
  /** SND.NXT is past our FIN (cleared when go-back-N rewinds before it). */
  finSent = false;
  /** Sequence number of our FIN once first sent (-1 before). */
  finSeq = -1;
  /** Payload bytes per segment toward the guest (its MSS, capped by our MTU). */
  sendMss = 536;

  // --- receive side ---
  irs = 0;
  rcvNxt = 0;
  /** Right edge of the window we last advertised (never moved left, RFC 7323 §2.4). */
  rcvAdvEdge = 0;
  /** Shift applied to windows we advertise. */
  rcvShift = 0;
  /** In-order guest bytes the host has not taken yet. */
  readonly rcvBuf: ByteRing;
  readonly ooo: Assembler;
  /** This connection's share of the TCP buffer budget (all three buffers). */
  readonly account: BudgetAccount;
  finReceived = false;
  /** Our MSS as advertised in the SYN(-ACK). */
  rcvMss = 536;

  // --- options ---
  sackOk = false;
  tsOk = false;
  /** Added to our millisecond clock in TSval (RFC 7323 §7.1); set by the layer. */
  tsOffset = 0;
  tsRecent = 0;
  lastAckSent = 0;

  // --- loss recovery and congestion ---
  readonly rtt = new RttEstimator();
  readonly cc: NewReno;
  synTries = 0;
  /** When our SYN or SYN-ACK was first sent (first RTT sample). */
  synSentAt = 0;

  // --- ACK scheduling ---
  /** In-order segments received and not yet acknowledged. */
  ackDue = 0;
  ackNow = false;

  /** Earliest of the above: what the layer's timer heap is keyed on. */
  deadline = NO_DEADLINE;
  /** Position in the layer's timer heap (owned by the heap). */
  heapIndex = -1;
  /** Queued on the layer's list of connections to flush. */
  dirty = false;

  /** Fast retransmit and recovery, the SACK scoreboard, the response to a timeout. */
  readonly recovery: LossRecovery;
  /** Retransmission, persist, keepalive, TIME-WAIT, delayed-ACK and user timeouts. */
  readonly timers: TcpTimers;
  /** Segment arrival (RFC 9293 §3.10.7). */
  readonly arrival: TcpInput;
  /** What to send now, the ACKs, the window we advertise. */
  readonly sender: TcpSender;

  private closedNotified = false;
  /** Counted in the layer's SYN-RECEIVED connections (a passive open, from accept() to the guest's ACK). */
  synReceivedCounted = false;
  /** An active open the layer refused (connection cap): ends "refused" at its first timer. */
  openRefused = false;
  readonly cfg: TcpConfig;

  constructor(
    readonly out: TcpOutput,
    init: {
      family: 4 | 6;
      destV4: number;
      guestV4: number;
      destV6: Uint8Array | null;
      guestV6: Uint8Array | null;
      destPort: number;
      guestPort: number;
      passive: boolean;
      mss: number;
      cfg: TcpConfig;
    },
  ) {
    this.family = init.family;
    this.destV4 = init.destV4;
    this.guestV4 = init.guestV4;
    this.destV6 = init.destV6;
    this.guestV6 = init.guestV6;
    this.destPort = init.destPort;
    this.guestPort = init.guestPort;
    this.passive = init.passive;
    this.cfg = init.cfg;
    this.rcvMss = init.mss;
    this.account = new BudgetAccount(out.budget);
    this.sendBuf = new ByteRing(init.cfg.sndBuf, this.account);
    this.rcvBuf = new ByteRing(init.cfg.rcvBuf, this.account);
    this.ooo = new Assembler(this.account);
    this.cc = new NewReno(536);
    this.recovery = new LossRecovery(this);
    this.timers = new TcpTimers(this);
    this.arrival = new TcpInput(this);
    this.sender = new TcpSender(this);
  }

  /** Re-reads the state (TypeScript keeps narrowing `state` across calls that change it). */
  get closed(): boolean {
    return this.state === TcpState.Closed;
  }

  get stateName(): string {
    return STATE_NAMES[this.state]!;
  }

  /** The host closed its side and our FIN has not gone out yet (held by data or a zero window). */
  get finWaiting(): boolean {
    return this.finQueued && !this.finSent;
  }

  /** Bytes sent and not yet acknowledged (excluding SYN/FIN). */
  get inFlight(): number {
    return seqDiff(this.sndNxt, this.sndUna);
  }

  // =====================================================================
  // Opening
  // =====================================================================

  /** Passive open: record the guest's SYN and wait for the host verdict. */
  initFromSyn(seg: TcpSegment, iss: number, now: number): void {
    this.state = TcpState.SynPending;
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.negotiate(seg, true);
    this.iss = iss;
    this.sndUna = iss;
    this.sndNxt = iss;
    this.sndMax = iss;
    this.recovery.start(iss);
    this.sndWnd = seg.window; // SYN windows are never scaled (RFC 7323 §2.2)
    this.sndWl1 = seg.seq;
    this.sndWl2 = iss;
    this.maxSndWnd = this.sndWnd;
    if (this.tsOk) this.tsRecent = seg.options.tsVal;
    this.timers.touch(now);
  }

  /** The host connect() succeeded: answer the guest's SYN. */
  accept(now: number): void {
    if (this.state !== TcpState.SynPending) return;
    this.out.handshakeDone(this);
    this.state = TcpState.SynReceived;
    this.synReceivedCounted = true;
    this.out.synReceivedChanged(this, 1);
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.out.sendControl(this, SYN | ACK, this.iss, now);
    this.synTries = 1;
    this.synSentAt = now;
    this.timers.rtxAt = now + this.rtt.rto;
    this.timers.reschedule();
  }

  /**
   * An active open the layer refused (the connection cap): nothing is
   * sent, and the handler hears "refused" at the next timer run (not now:
   * the caller binds its side after the open returns).
   */
  refuseOpen(now: number): void {
    this.state = TcpState.SynSent;
    this.openRefused = true;
    this.timers.rtxAt = now;
    this.timers.reschedule();
  }

  /** Active open toward the guest (for -L): send our SYN. */
  connect(iss: number, now: number): void {
    this.state = TcpState.SynSent;
    this.iss = iss;
    this.sndUna = iss;
    this.sndNxt = seqAdd(iss, 1);
    this.sndMax = this.sndNxt;
    this.recovery.start(iss);
    // We offer every option; the guest's SYN-ACK decides what is used.
    this.rcvShift = shiftFor(this.cfg.rcvBuf);
    this.out.sendControl(this, SYN, iss, now);
    this.synTries = 1;
    this.synSentAt = now;
    this.timers.rtxAt = now + this.rtt.rto;
    this.timers.reschedule();
  }

  /** Options from the guest's SYN or SYN-ACK (RFC 7323, RFC 2018, RFC 9293 §3.7.1). */
  negotiate(seg: TcpSegment, weOfferAll: boolean): void {
    const o = seg.options;
    const bad = seg.badOptions;
    const peerMss = !bad && o.mss > 0 ? o.mss : this.family === 4 ? 536 : 1220;
    this.sendMss = Math.max(64, Math.min(peerMss, this.rcvMss));
    this.cc.start(this.sendMss);
    const ws = bad ? -1 : o.windowScale;
    if (ws >= 0 && weOfferAll) {
      this.sndShift = Math.min(ws, 14);
      this.rcvShift = shiftFor(this.cfg.rcvBuf);
    } else {
      this.sndShift = 0;
      this.rcvShift = 0;
    }
    this.sackOk = !bad && o.sackPermitted;
    this.tsOk = !bad && o.hasTimestamps;
  }

  // =====================================================================
  // Host-side calls
  // =====================================================================

  /**
   * Room in the send buffer before the host should pause: up to the
   * configured size, in storage the buffer budget allows. Under budget
   * pressure, read-ahead is also held to two of the guest's current
   * windows (at least what the buffer already has): data a guest does
   * not take would only sit in the budget the others need.
   */
  get sendRoom(): number {
    // Nothing from the host before the guest's handshake completes: until
    // then nothing can be sent, and a flood of forged SYNs to a host server
    // that talks first would otherwise fill the whole buffer budget with
    // bytes for peers that never answer. The kernel holds them meanwhile;
    // onEstablished() tells the host side to read.
    if (this.state < TcpState.Established) return 0;
    const sb = this.sendBuf;
    let cap = sb.reachable;
    if (this.account.underPressure) cap = Math.min(cap, Math.max(sb.capacity, 2 * this.sndWnd));
    if (cap < sb.softLimit && cap <= sb.length) this.account.refused();
    return Math.max(0, cap - sb.length);
  }

  /**
   * Queues host bytes for the guest and sends what the windows allow.
   * Always takes everything (the host cannot un-read); the caller pauses
   * its socket when `sendRoom` reaches 0.
   */
  send(buf: Uint8Array, off: number, len: number, now: number): void {
    if (this.finQueued || len <= 0) return;
    if (this.state >= TcpState.FinWait1 && this.state !== TcpState.CloseWait) return;
    this.sendBuf.push(buf, off, len);
    this.sender.output(now);
  }

  /**
   * Room for host bytes as one contiguous span at the back of the send
   * buffer (sendBuf.backBuf at sendBuf.backOff), for a socket read to fill
   * in place, followed by commitSend(). 0 while the buffer is full (resume
   * at onSendSpace) or once the connection takes no more data.
   */
  reserveSend(): number {
    if (this.finQueued) return 0;
    if (this.state >= TcpState.FinWait1 && this.state !== TcpState.CloseWait) return 0;
    return this.sendBuf.reserve(this.sendRoom);
  }

  /** `n` bytes were written into reserveSend()'s span: send what the windows allow. */
  commitSend(n: number, now: number): void {
    if (n <= 0) return;
    this.sendBuf.commit(n);
    this.sender.output(now);
  }

  /** The host side has no more to send: FIN after the buffered bytes. */
  shutdownWrite(now: number): void {
    if (this.finQueued) return;
    this.finQueued = true;
    if (this.state === TcpState.SynPending) return;
    this.sender.output(now);
  }

  /** Ends the connection with a RST (host side reset or failed). */
  abort(now: number, reason: CloseReason = "aborted"): void {
    if (this.state === TcpState.Closed) return;
    if (this.state !== TcpState.SynPending && this.state !== TcpState.TimeWait) {
      this.out.sendControl(this, RST | ACK, this.sender.ackSeq(), now);
    }
    this.terminate(reason);
  }

  /** The host took `n` bytes from the receive buffer: maybe open the window. */
  consumed(n: number, now: number): void {
    if (n <= 0) return;
    this.rcvBuf.consume(n);
    if (this.rcvBuf.length === 0 && this.rcvBuf.grown) this.timers.trimLater(now);
    // A window update at once when a segment would move the advertised
    // edge right (currentWindow's silly window avoidance lets it move only
    // by enough).
    if (seqGt(seqAdd(this.rcvNxt, this.sender.windowFieldValue() * 2 ** this.rcvShift), this.rcvAdvEdge)) {
      this.ackNow = true;
      this.out.markDirty(this);
    }
  }

  // =====================================================================
  // Segment arrival and options
  // =====================================================================

  /** A segment from the guest for this connection (TcpInput.input). */
  input(seg: TcpSegment, now: number): void {
    this.arrival.input(seg, now);
  }

  /**
   * Our TSval clock (RFC 7323 §5.4): milliseconds plus this connection's
   * secret offset (§7.1), wrapping at 2^32.
   */
  tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  tsRecentValue(): number {
    return this.tsRecent;
  }

  /** SACK blocks per segment: what fits in 40 bytes of options beside timestamps. */
  get sackBlockMax(): number {
    return this.tsOk ? 3 : 4;
  }

  /**
   * The path to the guest carries at most `mss` bytes of TCP payload and
   * options per segment (an ICMP "fragmentation needed" or "packet too
   * big" about one of ours): smaller segments from now on, and the flight
   * goes again (LossRecovery.lowerMss).
   */
  lowerMss(mss: number, now: number): void {
    this.recovery.lowerMss(mss, now);
  }

  /**
   * Changes keepalive and user timeout for this connection (125 s / 4
   * probes normally, 5 s / 2 probes once one direction ended, as upstream:
   * docs/compatibility.md, Timeouts and keepalive).
   */
  setKeepalive(idleMs: number, intvlMs: number, count: number, userTimeoutMs: number, now: number): void {
    this.timers.setKeepalive(idleMs, intvlMs, count, userTimeoutMs, now);
  }

  /** Runs the timers that are due (the layer's timer heap calls it at `deadline`). */
  onTimer(now: number): void {
    this.timers.onTimer(now);
  }

  // =====================================================================
  // Ending
  // =====================================================================

  releaseBuffers(): void {
    this.sendBuf.release();
    this.ooo.clear();
  }

  notifyClosed(reason: CloseReason): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.handler?.onClosed(this, reason);
  }

  /** Moves to CLOSED, tells the host side, and leaves the layer. */
  terminate(reason: CloseReason): void {
    if (this.state === TcpState.Closed) return;
    if (this.state === TcpState.SynPending) this.out.handshakeDone(this);
    this.leaveSynReceived();
    this.state = TcpState.Closed;
    this.timers.stopAll();
    this.releaseBuffers();
    // A graceful close keeps the bytes the host has not taken yet: they
    // were acknowledged to the guest, and the close can complete (our FIN
    // acknowledged in LAST-ACK) while a slow host socket still has them to
    // write. After a reset or abort they are flushed (RFC 9293 §3.10.7),
    // unless the host was already told "closed" (a RST ending TIME-WAIT).
    if (reason !== "closed" && !this.closedNotified) {
      this.rcvBuf.consume(this.rcvBuf.length);
      this.rcvBuf.trim();
    }
    this.out.remove(this);
    this.notifyClosed(reason);
  }

  /** The guest completed the handshake, or the connection ended: one SYN-RECEIVED place less. */
  leaveSynReceived(): void {
    if (!this.synReceivedCounted) return;
    this.synReceivedCounted = false;
    this.out.synReceivedChanged(this, -1);
  }

  /** True once the guest's FIN has been received. */
  get peerFinished(): boolean {
    return this.finReceived;
  }
}
