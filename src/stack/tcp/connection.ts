// One TCP connection with the guest: the RFC 9293 state machine, sans-I/O.
//
// The connection is driven by three things only: segments from the guest
// (`input`), calls from the host side (`accept`, `send`, `shutdownWrite`,
// `abort`, `consumed`), and time (`onTimer`). It emits segments and
// registers deadlines through its TcpOutput (the layer), and reports to the host side
// through a TcpHandler. It never touches a socket, a clock or a timer.
//
// Naming follows RFC 9293: SND.UNA (sndUna), SND.NXT (sndNxt), SND.WND
// (sndWnd), RCV.NXT (rcvNxt)... "local" is our end of the connection (the
// address the guest talks to, or the address we spoof for -L), "remote" is
// the guest.
import { ByteRing } from "./byte-ring.ts";
import { Assembler } from "./assembler.ts";
import { BudgetAccount } from "./budget.ts";
import { NewReno } from "./congestion.ts";
import { RttEstimator, RTO_MAX_MS } from "./rtt.ts";
import { ACK, FIN, RST, SYN, type TcpSegment } from "./segment.ts";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from "./seq.ts";
import type { FlowTuple } from "../flow-key.ts";
import type { TcpOutput } from "./output.ts";
import { LossRecovery } from "./recovery.ts";
import { TcpTimers } from "./timers.ts";
import { NO_DEADLINE, TcpState, STATE_NAMES, shiftFor, type CloseReason, type TcpConfig, type TcpHandler } from "./state.ts";

export { TcpState, STATE_NAMES, DEFAULT_TCP_CONFIG, shiftFor, type CloseReason, type TcpConfig, type TcpHandler } from "./state.ts";


/**
 * Challenge ACKs (RFC 5961 §7) and ACKs answering bare segments outside
 * the window: one per connection per this interval, the per-socket limit
 * of Linux (net.ipv4.tcp_invalid_ratelimit). There is no budget shared
 * between connections: a global counter is the side channel of
 * CVE-2016-5696 (an off-path attacker tells from the missing ACKs that it
 * spent the budget on a connection that exists), and each of these ACKs
 * answers one received segment, so there is no amplification to cap.
 */
const LIMITED_ACK_INTERVAL_MS = 500;


export class TcpConnection implements FlowTuple {
  // --- identity (set by the layer) ---
  readonly family: 4 | 6;
  /** Our address as seen by the guest: uint32 for IPv4. */
  readonly localV4: number;
  readonly remoteV4: number;
  /** 16 bytes each for IPv6 (null for IPv4). */
  readonly localV6: Uint8Array | null;
  readonly remoteV6: Uint8Array | null;
  readonly localPort: number;
  readonly remotePort: number;
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
  private sndWl1 = 0;
  private sndWl2 = 0;
  /** Largest window the guest ever offered (RFC 5961 ACK acceptance). */
  private maxSndWnd = 0;
  /** Shift applied to windows the guest advertises. */
  sndShift = 0;
  /** Bytes from SND.UNA on: sent-but-unacknowledged, then unsent. */
  readonly sendBuf: ByteRing;
  /** Host closed its side: send FIN after the buffered data. */
  private finQueued = false;
  /** SND.NXT is past our FIN (cleared when go-back-N rewinds before it). */
  finSent = false;
  /** Sequence number of our FIN once first sent (-1 before). */
  private finSeq = -1;
  /** Payload bytes per segment toward the guest (its MSS, capped by our MTU). */
  sendMss = 536;

  // --- receive side ---
  irs = 0;
  rcvNxt = 0;
  /** Right edge of the window we last advertised (never moved left, RFC 7323 §2.4). */
  private rcvAdvEdge = 0;
  /** Shift applied to windows we advertise. */
  rcvShift = 0;
  /** In-order guest bytes the host has not taken yet. */
  readonly rcvBuf: ByteRing;
  readonly ooo: Assembler;
  /** This connection's share of the TCP buffer budget (all three buffers). */
  readonly account: BudgetAccount;
  /** A FIN that arrived beyond a hole: processed once RCV.NXT reaches it. */
  private pendingFinSeq = -1;
  private finReceived = false;
  /** Our MSS as advertised in the SYN(-ACK). */
  rcvMss = 536;

  // --- options ---
  sackOk = false;
  tsOk = false;
  /** Added to our millisecond clock in TSval (RFC 7323 §7.1); set by the layer. */
  tsOffset = 0;
  private tsRecent = 0;
  private lastAckSent = 0;
  /** When the last rate-limited ACK went out (limitedAck). */
  private limitedAckAt = -Infinity;

  // --- loss recovery and congestion ---
  readonly rtt = new RttEstimator();
  readonly cc: NewReno;
  synTries = 0;
  /** When our SYN or SYN-ACK was first sent (first RTT sample). */
  private synSentAt = 0;
  /** Last time output() sent anything (idle restart of cwnd; -1: never, cwnd is still initial). */
  private lastSendAt = -1;

  // --- ACK scheduling ---
  /** In-order segments received and not yet acknowledged. */
  ackDue = 0;
  private ackNow = false;

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
      localV4: number;
      remoteV4: number;
      localV6: Uint8Array | null;
      remoteV6: Uint8Array | null;
      localPort: number;
      remotePort: number;
      passive: boolean;
      mss: number;
      cfg: TcpConfig;
    },
  ) {
    this.family = init.family;
    this.localV4 = init.localV4;
    this.remoteV4 = init.remoteV4;
    this.localV6 = init.localV6;
    this.remoteV6 = init.remoteV6;
    this.localPort = init.localPort;
    this.remotePort = init.remotePort;
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
  private negotiate(seg: TcpSegment, weOfferAll: boolean): void {
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
    this.output(now);
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
    this.output(now);
  }

  /** The host side has no more to send: FIN after the buffered bytes. */
  shutdownWrite(now: number): void {
    if (this.finQueued) return;
    this.finQueued = true;
    if (this.state === TcpState.SynPending) return;
    this.output(now);
  }


  /** Ends the connection with a RST (host side reset or failed). */
  abort(now: number, reason: CloseReason = "aborted"): void {
    if (this.state === TcpState.Closed) return;
    if (this.state !== TcpState.SynPending && this.state !== TcpState.TimeWait) {
      this.out.sendControl(this, RST | ACK, this.ackSeq(), now);
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
    if (seqGt(seqAdd(this.rcvNxt, this.windowFieldValue() * 2 ** this.rcvShift), this.rcvAdvEdge)) {
      this.ackNow = true;
      this.out.markDirty(this);
    }
  }

  // =====================================================================
  // Segment arrival (RFC 9293 §3.10.7)
  // =====================================================================

  input(seg: TcpSegment, now: number): void {
    switch (this.state) {
      case TcpState.SynPending:
        // Retransmitted SYNs while the host connect() is pending start
        // nothing new; a RST from the guest cancels it.
        if (seg.flags & RST && (seg.seq === this.irs || seg.seq === this.rcvNxt)) this.terminate("reset");
        return;
      case TcpState.SynSent:
        this.inputSynSent(seg, now);
        return;
      case TcpState.Closed:
        return;
      case TcpState.SynReceived:
        // The guest did not hear our SYN-ACK and sent its SYN again.
        if (seg.flags & SYN && !(seg.flags & ACK) && seg.seq === this.irs) {
          this.out.sendControl(this, SYN | ACK, this.iss, now);
          return;
        }
        break;
    }

    // PAWS (RFC 7323 §5): a segment with an older timestamp is a duplicate.
    if (this.tsOk && !seg.badOptions && seg.options.hasTimestamps && !(seg.flags & RST)) {
      if (seqLt(seg.options.tsVal, this.tsRecent)) {
        this.sendAck(now);
        return;
      }
    }

    // 1. Sequence acceptability, then trim to the window.
    if (!this.acceptable(seg)) {
      // Answered with an ACK, but a bare one (no data, SYN or FIN) at most
      // once per LIMITED_ACK_INTERVAL_MS, as Linux does
      // (tcp_oow_rate_limited): two ends that each find the other's ACKs
      // unacceptable would otherwise answer each other without end. Nor
      // does such a segment count as a sign of life (touch, below): an
      // endless exchange of them must not hold off the user timeout.
      if (!(seg.flags & RST)) {
        if (seg.seqLen === 0) this.limitedAck(now, "tcp-oow-ack-limit");
        else this.sendAck(now);
      }
      if (this.state === TcpState.TimeWait && seg.flags & FIN && !(seg.flags & RST)) {
        // The guest did not get our ACK of its FIN: acknowledge it again
        // (above) and restart the TIME-WAIT timeout (RFC 9293 §3.10.7.4).
        this.timers.restartTimeWait(now);
      }
      return;
    }
    this.timers.touch(now);
    let seq = seg.seq;
    let off = seg.payloadOff;
    let len = seg.payloadLen;
    let flags = seg.flags;
    if (flags & SYN) {
      // RFC 5961 §4: a SYN in a synchronized state gets a challenge ACK.
      this.limitedAck(now, "tcp-challenge-ack-limit");
      return;
    }
    if (seqLt(seq, this.rcvNxt)) {
      const dup = seqDiff(this.rcvNxt, seq);
      if (dup >= len) {
        // All payload is old; a FIN may still be new.
        if (flags & FIN && dup > len) flags &= ~FIN;
        off += len;
        len = 0;
      } else {
        off += dup;
        len -= dup;
      }
      seq = this.rcvNxt;
    }
    const wndEnd = seqAdd(this.rcvNxt, Math.max(this.currentWindow(), 0));
    if (len > 0 && seqGt(seqAdd(seq, len), wndEnd)) {
      const cut = seqDiff(seqAdd(seq, len), wndEnd);
      len = Math.max(0, len - cut);
      flags &= ~FIN; // the FIN is beyond the window too
      // The guest overran our window: tell it where the edge is now
      // rather than after the delayed-ACK timeout.
      this.ackNow = true;
    }

    // 2. RST (RFC 5961 §3): exact match resets, in-window gets a challenge.
    if (flags & RST) {
      if (seg.seq === this.rcvNxt) this.terminate(this.state === TcpState.SynReceived && this.passive ? "refused" : "reset");
      else this.limitedAck(now, "tcp-challenge-ack-limit");
      return;
    }

    // 3. ACK.
    if (!(flags & ACK)) return;
    if (!this.processAck(seg, now)) return;

    // 4. Timestamps: remember the guest's TSval when this segment covers
    //    the last ACK we sent (RFC 7323 §4.3). Only now that the segment
    //    has passed every check: a TSval from a segment we then drop (no
    //    ACK bit, an ACK of data never sent) would be echoed and, if it
    //    were far ahead, make PAWS reject all the guest's real segments.
    if (this.tsOk && seg.options.hasTimestamps && seqLe(seg.seq, this.lastAckSent)) {
      this.tsRecent = seg.options.tsVal;
    }

    // 5. Payload.
    if (len > 0 && this.canReceive()) this.receiveData(seq, seg.buf, off, len, now);

    // 6. FIN.
    if (flags & FIN && this.canReceive()) {
      const finSeq = seqAdd(seq, len);
      if (finSeq === this.rcvNxt) this.receiveFin(now);
      else if (seqGt(finSeq, this.rcvNxt)) {
        this.pendingFinSeq = finSeq;
        // Out of order: a bare FIN gets its duplicate ACK here; with data,
        // receiveData already sent one (a second would count as another
        // duplicate at the sender).
        if (len === 0) this.ackNow = true;
      }
    }

    if (!this.closed) {
      this.output(now);
      if (this.ackNow || this.ackDue > 0) this.out.markDirty(this);
    }
  }

  private inputSynSent(seg: TcpSegment, now: number): void {
    const f = seg.flags;
    if (f & ACK && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      if (!(f & RST)) this.out.sendControl(this, RST, seg.ack, now);
      return;
    }
    if (f & RST) {
      if (f & ACK) this.terminate("refused");
      return;
    }
    if (!(f & SYN)) return;
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    // Our SYN's window was recorded against RCV.NXT = 0 (IRS unknown then):
    // anchor the same window on the real RCV.NXT.
    this.synWindowField();
    this.negotiate(seg, true);
    if (this.tsOk) this.tsRecent = seg.options.tsVal;
    if (f & ACK) {
      this.sndUna = seg.ack;
      this.sndWnd = seg.window; // unscaled in a SYN
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.maxSndWnd = this.sndWnd;
      this.timers.rtxAt = NO_DEADLINE;
      if (this.synTries === 1) this.rtt.sample(now - this.synSentAt);
      else this.rtt.synTimedOut();
      this.state = TcpState.Established;
      this.timers.touch(now);
      this.sendAck(now);
      this.handler?.onEstablished(this);
      this.output(now);
    } else {
      // Simultaneous open (RFC 9293 §3.5, figure 8).
      this.state = TcpState.SynReceived;
      this.out.sendControl(this, SYN | ACK, this.iss, now);
    }
    this.timers.reschedule();
  }

  /** RFC 9293 §3.10.7.4 table: is any part of the segment inside the window? */
  private acceptable(seg: TcpSegment): boolean {
    const wnd = this.currentWindow();
    const len = seg.seqLen;
    if (len === 0) {
      // RCV.NXT =< SEG.SEQ =< RCV.NXT+RCV.WND: one more than RFC 9293's
      // "<", as Linux: a peer that filled our window exactly sends its
      // bare ACKs at the right edge, and rejecting them (while a hole is
      // open) would throw away its acknowledgments. Nothing is accepted
      // into the window by this: the segment carries no data.
      return seqGe(seg.seq, this.rcvNxt) && seqLe(seg.seq, seqAdd(this.rcvNxt, wnd));
    }
    // A zero window takes no data, "but special allowance should be made
    // to accept valid ACKs, URGs, and RSTs" (RFC 9293 §3.10.7.4): a
    // segment at RCV.NXT (a zero-window probe, typically) is let through
    // for its control fields; input() trims its payload to the empty
    // window and answers with an ACK. Else our data the guest acknowledges
    // on its probes would be retransmitted until our window opens. A bare
    // FIN there needs no buffer space and is taken as well (as Linux
    // does), or a guest closing while the host side is slow to read would
    // wait an RTO per try until the window opens.
    if (wnd === 0) return seg.seq === this.rcvNxt;
    const last = seqAdd(seg.seq, len - 1);
    const end = seqAdd(this.rcvNxt, wnd);
    return (seqGe(seg.seq, this.rcvNxt) && seqLt(seg.seq, end)) || (seqGe(last, this.rcvNxt) && seqLt(last, end));
  }

  private canReceive(): boolean {
    const s = this.state;
    return s === TcpState.Established || s === TcpState.FinWait1 || s === TcpState.FinWait2 || s === TcpState.SynReceived;
  }

  /** Processes the ACK field. Returns false when the segment must be dropped. */
  private processAck(seg: TcpSegment, now: number): boolean {
    const ack = seg.ack;
    if (this.state === TcpState.SynReceived) {
      if (seqLe(ack, this.sndUna) || seqGt(ack, this.sndMax)) {
        this.out.sendControl(this, RST, ack, now);
        return false;
      }
      this.state = TcpState.Established;
      this.leaveSynReceived();
      this.sndWnd = seg.window * 2 ** this.sndShift;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndUna = ack;
      this.timers.rtxAt = NO_DEADLINE;
      if (this.synTries === 1) this.rtt.sample(now - this.synSentAt);
      else this.rtt.synTimedOut();
      this.handler?.onEstablished(this);
    }

    // RFC 5961 §5.2: an ACK of something never sent, or too far in the
    // past, is answered (a challenge ACK) and the segment dropped.
    if (seqGt(ack, this.sndMax) || seqLt(ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 65535)))) {
      this.limitedAck(now, "tcp-challenge-ack-limit");
      return false;
    }

    const wnd = seg.window * 2 ** this.sndShift;
    if (!seg.badOptions && this.sackOk && seg.options.sackCount > 0) this.recovery.noteSacks(seg);

    if (seqGt(ack, this.sndUna)) {
      this.ackAdvanced(seg, ack, now);
    } else if (
      ack === this.sndUna &&
      seg.payloadLen === 0 &&
      !(seg.flags & (SYN | FIN)) &&
      wnd === this.sndWnd &&
      // A closed window is not loss: these are the answers to our window
      // probes, whose byte sits beyond the window. Counting them made the
      // third probe answer "fast retransmit" the probe byte.
      wnd !== 0 &&
      seqGt(this.sndMax, this.sndUna)
    ) {
      this.recovery.duplicateAck(now);
    }

    // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule), only from an
    // ACK at or past SND.UNA: the window is relative to SEG.ACK, and an
    // older ACK (reordered, on a newer data segment) would overstate it.
    if (seqGe(ack, this.sndUna) && (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack)))) {
      const opened = this.sndWnd === 0 && wnd > 0;
      this.sndWnd = wnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (opened) {
        // Leave persist mode; an unaccepted probe byte is sent again normally.
        this.timers.leavePersist();
        if (seqGt(this.sndNxt, this.sndUna) && this.timers.rtxAt === NO_DEADLINE) this.sndNxt = this.sndUna;
      }
    }
    return !this.closed;
  }

  private ackAdvanced(seg: TcpSegment, ack: number, now: number): void {
    const acked = seqDiff(ack, this.sndUna);
    // Our FIN occupies the last sequence number: it is not buffer data.
    const finAcked = this.finSeq >= 0 && seqGt(ack, this.finSeq);
    const dataAcked = Math.min(acked - (finAcked ? 1 : 0), this.sendBuf.length);
    const flightBefore = this.inFlight;

    this.recovery.sampleRtt(seg, ack, now);

    if (dataAcked > 0) this.sendBuf.consume(dataAcked);
    this.sndUna = ack;
    if (seqLt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
    this.timers.firstUnackedAt = seqGt(this.sndMax, this.sndUna) ? now : -1;
    this.recovery.onAck(ack, acked, flightBefore, now);

    // Restart or stop the retransmission timer (RFC 6298 §5.2, 5.3).
    if (seqGt(this.sndMax, this.sndUna)) this.timers.rtxAt = now + this.rtt.rto;
    else this.timers.rtxAt = NO_DEADLINE;
    if (this.state !== TcpState.SynReceived) this.synTries = 0;

    if (finAcked) {
      switch (this.state) {
        case TcpState.FinWait1:
          this.state = TcpState.FinWait2;
          break;
        case TcpState.Closing:
          this.enterTimeWait(now);
          break;
        case TcpState.LastAck:
          this.terminate("closed");
          return;
      }
    }
    if (dataAcked > 0 && this.sendBuf.length <= this.cfg.sndBuf >>> 1) {
      if (this.sendBuf.length === 0 && this.sendBuf.grown) this.timers.trimLater(now);
      this.handler?.onSendSpace(this);
    }
    this.timers.reschedule();
  }








  // --- receiving data ---

  private receiveData(seq: number, buf: Uint8Array, off: number, len: number, now: number): void {
    if (seq !== this.rcvNxt) {
      // Out of order: keep it inside the window and ask for the hole at once
      // with our SACK blocks (RFC 5681 §4.2: immediate duplicate ACK).
      const wnd = this.currentWindow();
      if (!this.ooo.add(seq, buf, off, len, this.rcvNxt, seqAdd(this.rcvNxt, wnd))) this.out.countDrop("tcp-ooo-full");
      // One duplicate ACK per out-of-order segment, sent now rather than
      // coalesced at the end of the batch: the sender counts duplicate
      // ACKs (three start fast retransmit), and a whole batch of segments
      // past a hole folded into one ACK left it waiting for its RTO.
      this.sendAck(now);
      return;
    }
    // The host side may close or abort the connection from onData: from
    // then on nothing is delivered, queued or acknowledged.
    const kept = this.deliver(buf, off, len, false);
    if (this.closed) return;
    this.rcvNxt = seqAdd(this.rcvNxt, kept);
    if (kept < len) {
      // The budget had no storage for the rest: dropped inside the window
      // (as Linux drops what its memory limits refuse); the guest sends
      // it again. Tell it at once where we are.
      this.out.countDrop("tcp-rcv-budget");
      this.ackNow = true;
      return;
    }
    if (!this.ooo.isEmpty) {
      // A hole filled: hand over what queued behind it, and ACK at once.
      this.rcvNxt = this.ooo.drain(this.rcvNxt, this.deliverCallback());
      if (this.closed) return;
      this.ackNow = true;
    }
    if (this.pendingFinSeq >= 0 && this.pendingFinSeq === this.rcvNxt) {
      this.pendingFinSeq = -1;
      this.receiveFin(now);
    }
    this.ackDue++;
    // RFC 5681 §4.2 / RFC 1122: ACK at least every second full segment.
    if (this.ackDue >= 2 || len >= 2 * this.rcvMss) this.ackNow = true;
  }

  private deliverBound: ((data: Uint8Array, off: number, len: number) => void) | null = null;

  /**
   * deliver() as a callback for the reassembly queue, made the first time
   * a hole fills rather than for every connection. (In its own method: a
   * function that contains an arrow function using `this` gets a scope
   * object on every call.)
   */
  private deliverCallback(): (data: Uint8Array, off: number, len: number) => void {
    return (this.deliverBound ??= (data, off, len) => void this.deliver(data, off, len, true));
  }

  /**
   * Hands in-order bytes to the host, buffering what it does not take.
   * Returns how many were taken or buffered: all of them when `all` (bytes
   * that were stored already, out of order), else as many as the buffer
   * budget has storage for.
   */
  private deliver(buf: Uint8Array, off: number, len: number, all: boolean): number {
    let taken = 0;
    if (this.rcvBuf.length === 0 && this.handler !== null) {
      taken = this.handler.onData(this, buf, off, len);
      // Aborted from onData (its host write failed): the bytes go nowhere.
      if (taken >= len || this.closed) return len;
    }
    const rb = this.rcvBuf;
    const keep = all ? len - taken : Math.min(len - taken, Math.max(0, rb.reachable - rb.length));
    rb.push(buf, off + taken, keep);
    if (keep < len - taken) this.account.refused();
    if (keep > 0) this.handler?.onReadable(this);
    return taken + keep;
  }

  private receiveFin(now: number): void {
    if (this.finReceived) return;
    this.finReceived = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    switch (this.state) {
      case TcpState.SynReceived:
      case TcpState.Established:
        // The host side usually closes right after hearing of this FIN:
        // a delayed ACK lets our own FIN carry it, one segment instead of
        // two (RFC 1122 §4.2.3.2 allows the delay for any segment).
        this.state = TcpState.CloseWait;
        this.ackDue++;
        break;
      case TcpState.FinWait1:
        // Our FIN not yet acknowledged: simultaneous close.
        this.state = TcpState.Closing;
        this.ackNow = true;
        break;
      case TcpState.FinWait2:
        // The host hears of the FIN first, then of the close (entering
        // TIME-WAIT reports onClosed): onPeerFin after onClosed reached a
        // host side that had already released the flow.
        this.ackNow = true;
        this.handler?.onPeerFin(this);
        if (this.state === TcpState.FinWait2) this.enterTimeWait(now);
        return;
    }
    this.handler?.onPeerFin(this);
  }

  private enterTimeWait(now: number): void {
    this.state = TcpState.TimeWait;
    this.timers.startTimeWait(now);
    this.releaseBuffers();
    this.notifyClosed("closed");
    this.out.enteredTimeWait(this);
    this.timers.reschedule();
  }

  // =====================================================================
  // Sending
  // =====================================================================

  /** The receive buffer's size: the configured one, or less when the budget cannot give that much storage. */
  private rcvBufLimit(): number {
    return Math.min(this.cfg.rcvBuf, this.rcvBuf.reachable);
  }

  /**
   * The receive window right now (RCV.WND), from two rules:
   *  - the edge already advertised never moves left (RFC 9293 §3.8.6.2.2,
   *    RFC 7323 §2.4): under budget pressure the window shrinks as data
   *    arrives and is not reopened, rather than being retracted;
   *  - receiver silly window avoidance (MUST-39, RFC 9293 §3.8.6.2.2, RFC
   *    1122 §4.2.3.3): the edge moves right only once the buffer space
   *    within the budget exceeds the window offered by at least
   *    min(half that buffer, one MSS); until then the window offered stays
   *    what it was, in every segment we send and for what we accept (a
   *    zero-window probe's byte is not taken while the window stays shut).
   */
  private currentWindow(): number {
    const offered = Math.max(seqDiff(this.rcvAdvEdge, this.rcvNxt), 0);
    const limit = this.rcvBufLimit();
    const free = limit - this.rcvBuf.length;
    return free - offered >= Math.min(limit >>> 1, this.rcvMss) ? free : offered;
  }

  /** The 16-bit window field a segment sent now carries (scaled down, RFC 7323 §2.3). */
  private windowFieldValue(): number {
    return Math.min(65535, Math.floor(this.currentWindow() / 2 ** this.rcvShift));
  }

  /** The 16-bit window field for an outgoing segment; records the edge. */
  windowField(): number {
    if (this.rcvBuf.reachable < this.cfg.rcvBuf) this.account.refused();
    const field = this.windowFieldValue();
    const edge = seqAdd(this.rcvNxt, field * 2 ** this.rcvShift);
    if (seqGt(edge, this.rcvAdvEdge) || this.state <= TcpState.SynReceived) this.rcvAdvEdge = edge;
    return field;
  }

  /**
   * The window field of our SYN or SYN-ACK, never scaled (RFC 7323 §2.2):
   * the free buffer space, and the advertised edge anchored on RCV.NXT.
   * Any edge recorded before is ignored, not kept: before the handshake it
   * is relative to an RCV.NXT that was not known yet (0), and read against
   * the real one above 2^31 it looked like a window of nearly 2^31 bytes,
   * so the SYN-ACK offered 65535 whatever the buffer.
   */
  synWindowField(): number {
    const w = Math.min(65535, Math.max(0, this.rcvBufLimit() - this.rcvBuf.length));
    this.rcvAdvEdge = seqAdd(this.rcvNxt, w);
    return w;
  }

  /** Bookkeeping for every segment carrying an ACK that the layer sends. */
  noteAckSent(): void {
    this.lastAckSent = this.rcvNxt;
    this.ackDue = 0;
    this.ackNow = false;
    this.timers.delAckAt = NO_DEADLINE;
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
   * Payload bytes per segment: the guest's MSS less the options each
   * segment carries (RFC 9293 §3.7.1, RFC 6691: the MSS counts data only),
   * the timestamps (12 bytes) and, while out-of-order data is held, the
   * SACK blocks (4 + 8 per block). Only arrivals from the guest change
   * it, so every segment of one output() and every piece the device cuts
   * from a TSO super-segment get the same size.
   */
  segmentPayloadMax(): number {
    let opts = this.tsOk ? 12 : 0;
    if (this.sackOk && !this.ooo.isEmpty) opts += 4 + 8 * this.ooo.blockCount(this.sackBlockMax);
    return this.sendMss - opts;
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
   * Sends new data (and our FIN) as far as the windows allow. `force`:
   * the override timeout of silly window avoidance expired, send what
   * the window takes even if it is small.
   */
  output(now: number, force = false): void {
    const s = this.state;
    if (s !== TcpState.Established && s !== TcpState.CloseWait && s !== TcpState.FinWait1 && s !== TcpState.Closing && s !== TcpState.LastAck) {
      return;
    }
    const dataEnd = seqAdd(this.sndUna, this.sendBuf.length);
    // Nothing in flight and nothing sent for longer than an RTO: restart
    // cwnd from the initial window before sending (RFC 5681 §4.1).
    if (this.lastSendAt >= 0 && this.sndMax === this.sndUna && seqLt(this.sndNxt, dataEnd) && now - this.lastSendAt > this.rtt.rto) {
      this.cc.restartAfterIdle();
    }
    const cwnd = this.cc.cwnd + this.recovery.limitedTransmit();
    const wndLimit = Math.min(cwnd, this.sndWnd);
    const limit = seqAdd(this.sndUna, wndLimit);
    const maxSeg = this.out.maxSegmentPayload(this);
    const full = this.segmentPayloadMax();
    let sent = false;
    while (seqLt(this.sndNxt, dataEnd)) {
      const room = seqDiff(limit, this.sndNxt);
      if (room <= 0) break;
      const avail = seqDiff(dataEnd, this.sndNxt);
      const len = Math.min(avail, room, maxSeg);
      // Sender-side silly window avoidance (RFC 9293 §3.8.6.2.1, RFC 1122
      // §4.2.3.4): send a full segment ("full" is the MSS less our
      // options), or all the queued data, or at least half the largest
      // window the guest has offered (Fs = 1/2). Else wait for an ACK to
      // open more or, with nothing in flight to bring one, for the
      // override timeout (the persist timer, below). No Nagle: we relay a
      // host socket whose sender chose its own (a TCP_NODELAY there must
      // stay one), and our reads already coalesce what it wrote.
      if (len < full && len < avail && len < this.maxSndWnd / 2 && !force) break;
      const last = seqAdd(this.sndNxt, len) === dataEnd;
      this.out.sendData(this, this.sndNxt, len, last, now);
      this.recovery.sent(this.sndNxt, now);
      this.sndNxt = seqAdd(this.sndNxt, len);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      sent = true;
    }
    // FIN once every byte has been sent, and only inside the guest's
    // window: it occupies a sequence number, which a receiver whose window
    // is zero must not accept (RFC 9293 §3.10.7.4; Linux holds its FIN
    // too). One sent there anyway may be taken or not (we and Linux take
    // a bare FIN at RCV.NXT), and our ACKs cannot tell which: they carry
    // SEG.SEQ at the right edge (ackSeq), one below the guest's RCV.NXT if
    // it took the FIN. Two ends that both did so in a simultaneous close
    // found each other's ACKs unacceptable and answered each with another,
    // without end. Behind a zero window the FIN waits for a window update,
    // drawn by probes (windowProbe).
    if (this.finWaiting && this.sndNxt === dataEnd && seqLt(dataEnd, seqAdd(this.sndUna, this.sndWnd))) {
      this.finSent = true;
      this.finSeq = dataEnd;
      this.out.sendControl(this, FIN | ACK, dataEnd, now);
      this.sndNxt = seqAdd(dataEnd, 1);
      this.sndMax = seqMax(this.sndMax, this.sndNxt);
      if (this.state === TcpState.Established) this.state = TcpState.FinWait1;
      else if (this.state === TcpState.CloseWait) this.state = TcpState.LastAck;
      sent = true;
    }
    if (sent) {
      this.lastSendAt = now;
      if (this.timers.firstUnackedAt < 0) this.timers.firstUnackedAt = now;
      if (this.timers.rtxAt === NO_DEADLINE) this.timers.rtxAt = now + this.rtt.rto;
      this.timers.persistAt = NO_DEADLINE;
    } else if ((seqLt(this.sndNxt, dataEnd) || this.finWaiting) && this.timers.rtxAt === NO_DEADLINE && this.timers.persistAt === NO_DEADLINE) {
      // Data (or our FIN) waiting and nothing in flight to bring an ACK:
      // behind a zero window, probe (RFC 9293 §3.8.6.1); behind one too
      // small to use, send anyway when the timer expires (RFC 1122's
      // override timeout).
      this.timers.persistAt = now + Math.min(RTO_MAX_MS, this.rtt.rto * 2 ** this.timers.persistBackoff);
    }
    this.timers.reschedule();
  }

  sendAck(now: number): void {
    this.out.sendControl(this, ACK, this.ackSeq(), now);
  }

  /**
   * An ACK answering a segment that may be a blind attack (a challenge
   * ACK, RFC 5961 §3-5) or a bare segment outside the window, at most one
   * per LIMITED_ACK_INTERVAL_MS (§7) for both together, so that a flood
   * of forged segments draws no flood of ACKs, and no ACK loop runs.
   * `dropReason` counts the ACKs held back.
   */
  private limitedAck(now: number, dropReason: string): void {
    if (now - this.limitedAckAt < LIMITED_ACK_INTERVAL_MS) {
      this.out.countDrop(dropReason);
      return;
    }
    this.limitedAckAt = now;
    this.sendAck(now);
  }

  /**
   * SEG.SEQ for a segment without data (ACK, RST). RFC 9293 says SND.NXT,
   * meaning the highest sequence number sent: our sndNxt is rewound by
   * go-back-N after a timeout, below what the guest may already hold, and
   * an ACK from there is unacceptable to it: it answers with an ACK of its
   * own and ignores our ACK field. With both ends rewound that is an ACK
   * war in which neither learns anything. So: SND.MAX, but never past the
   * right edge of the guest's window (a zero-window probe byte the guest
   * did not take, or a window it shrank), like Linux's tcp_acceptable_seq:
   * from SND.MAX, our ACKs would be unacceptable to a guest whose window
   * is closed, and their ACK fields lost. The cap is exact only because
   * nothing the guest may have taken lies past the edge: our FIN waits
   * for the window (output).
   */
  private ackSeq(): number {
    // Before ESTABLISHED only our SYN is out (SND.NXT = ISS+1), and in a
    // simultaneous open SND.WND is not known yet.
    if (this.state < TcpState.Established) return this.sndMax;
    const edge = seqAdd(this.sndUna, this.sndWnd);
    return seqGt(this.sndMax, edge) ? edge : this.sndMax;
  }

  /**
   * Sends the ACK owed for received data: immediately when due, else after
   * the delayed-ACK timeout (RFC 1122 §4.2.3.2), hoping to ride on data.
   */
  flushAck(now: number): void {
    if (this.state === TcpState.Closed || this.state === TcpState.SynPending || this.state === TcpState.SynSent) return;
    if (this.ackNow) {
      this.sendAck(now);
    } else if (this.ackDue > 0) {
      this.timers.delayAck(now);
    }
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

  private releaseBuffers(): void {
    this.sendBuf.release();
    this.ooo.clear();
  }

  private notifyClosed(reason: CloseReason): void {
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
  private leaveSynReceived(): void {
    if (!this.synReceivedCounted) return;
    this.synReceivedCounted = false;
    this.out.synReceivedChanged(this, -1);
  }

  /** True once the guest's FIN has been received. */
  get peerFinished(): boolean {
    return this.finReceived;
  }
}
