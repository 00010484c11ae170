// Segment arrival on one TCP connection (RFC 9293 §3.10.7): the
// handshake replies of SYN-SENT, PAWS, the acceptability test and the trim
// to the window, the RST and SYN checks (RFC 5961), ACK processing (SND.UNA,
// the window update, RTT samples and loss recovery through LossRecovery),
// data into the receive buffer or the out-of-order assembler, and the FIN.
// The connection holds the state; this reads and moves it.
import { ACK, FIN, RST, SYN, type TcpSegment } from "./segment.ts";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from "./seq.ts";
import { NO_DEADLINE, TcpState } from "./state.ts";
import type { TcpConnection } from "./connection.ts";

export class TcpInput {
  /** A FIN that arrived beyond a hole: processed once RCV.NXT reaches it. */
  pendingFinSeq = -1;
  private deliverBound: ((data: Uint8Array, off: number, len: number) => void) | null = null;

  constructor(private readonly c: TcpConnection) {}

  input(seg: TcpSegment, now: number): void {
    const c = this.c;
    switch (c.state) {
      case TcpState.SynPending:
        // Retransmitted SYNs while the host connect() is pending start
        // nothing new; a RST from the guest cancels it.
        if (seg.flags & RST && (seg.seq === c.irs || seg.seq === c.rcvNxt)) c.terminate("reset");
        return;
      case TcpState.SynSent:
        this.inputSynSent(seg, now);
        return;
      case TcpState.Closed:
        return;
      case TcpState.SynReceived:
        // The guest did not hear our SYN-ACK and sent its SYN again.
        if (seg.flags & SYN && !(seg.flags & ACK) && seg.seq === c.irs) {
          c.out.sendControl(c, SYN | ACK, c.iss, now);
          return;
        }
        break;
    }

    // PAWS (RFC 7323 §5): a segment with an older timestamp is a duplicate.
    if (c.tsOk && !seg.badOptions && seg.options.hasTimestamps && !(seg.flags & RST)) {
      if (seqLt(seg.options.tsVal, c.tsRecent)) {
        c.sender.sendAck(now);
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
        if (seg.seqLen === 0) c.sender.limitedAck(now, "tcp-oow-ack-limit");
        else c.sender.sendAck(now);
      }
      if (c.state === TcpState.TimeWait && seg.flags & FIN && !(seg.flags & RST)) {
        // The guest did not get our ACK of its FIN: acknowledge it again
        // (above) and restart the TIME-WAIT timeout (RFC 9293 §3.10.7.4).
        c.timers.restartTimeWait(now);
      }
      return;
    }
    c.timers.touch(now);
    let seq = seg.seq;
    let off = seg.payloadOff;
    let len = seg.payloadLen;
    let flags = seg.flags;
    if (flags & SYN) {
      // RFC 5961 §4: a SYN in a synchronized state gets a challenge ACK.
      c.sender.limitedAck(now, "tcp-challenge-ack-limit");
      return;
    }
    if (seqLt(seq, c.rcvNxt)) {
      const dup = seqDiff(c.rcvNxt, seq);
      if (dup >= len) {
        // All payload is old; a FIN may still be new.
        if (flags & FIN && dup > len) flags &= ~FIN;
        off += len;
        len = 0;
      } else {
        off += dup;
        len -= dup;
      }
      seq = c.rcvNxt;
    }
    const wndEnd = seqAdd(c.rcvNxt, Math.max(c.sender.currentWindow(), 0));
    if (len > 0 && seqGt(seqAdd(seq, len), wndEnd)) {
      const cut = seqDiff(seqAdd(seq, len), wndEnd);
      len = Math.max(0, len - cut);
      flags &= ~FIN; // the FIN is beyond the window too
      // The guest overran our window: tell it where the edge is now
      // rather than after the delayed-ACK timeout.
      c.ackNow = true;
    }

    // 2. RST (RFC 5961 §3): exact match resets, in-window gets a challenge.
    if (flags & RST) {
      if (seg.seq === c.rcvNxt) c.terminate(c.state === TcpState.SynReceived && c.passive ? "refused" : "reset");
      else c.sender.limitedAck(now, "tcp-challenge-ack-limit");
      return;
    }

    // 3. ACK.
    if (!(flags & ACK)) return;
    if (!this.processAck(seg, now)) return;

    // 4. Timestamps: remember the guest's TSval when c segment covers
    //    the last ACK we sent (RFC 7323 §4.3). Only now that the segment
    //    has passed every check: a TSval from a segment we then drop (no
    //    ACK bit, an ACK of data never sent) would be echoed and, if it
    //    were far ahead, make PAWS reject all the guest's real segments.
    if (c.tsOk && seg.options.hasTimestamps && seqLe(seg.seq, c.lastAckSent)) {
      c.tsRecent = seg.options.tsVal;
    }

    // 5. Payload.
    if (len > 0 && this.canReceive()) this.receiveData(seq, seg.buf, off, len, now);

    // 6. FIN.
    if (flags & FIN && this.canReceive()) {
      const finSeq = seqAdd(seq, len);
      if (finSeq === c.rcvNxt) this.receiveFin(now);
      else if (seqGt(finSeq, c.rcvNxt)) {
        this.pendingFinSeq = finSeq;
        // Out of order: a bare FIN gets its duplicate ACK here; with data,
        // receiveData already sent one (a second would count as another
        // duplicate at the sender).
        if (len === 0) c.ackNow = true;
      }
    }

    if (!c.closed) {
      c.sender.output(now);
      if (c.ackNow || c.ackDue > 0) c.out.markDirty(c);
    }
  }

  private inputSynSent(seg: TcpSegment, now: number): void {
    const c = this.c;
    const f = seg.flags;
    if (f & ACK && (seqLe(seg.ack, c.iss) || seqGt(seg.ack, c.sndMax))) {
      if (!(f & RST)) c.out.sendControl(c, RST, seg.ack, now);
      return;
    }
    if (f & RST) {
      if (f & ACK) c.terminate("refused");
      return;
    }
    if (!(f & SYN)) return;
    c.irs = seg.seq;
    c.rcvNxt = seqAdd(seg.seq, 1);
    // Our SYN's window was recorded against RCV.NXT = 0 (IRS unknown then):
    // anchor the same window on the real RCV.NXT.
    c.sender.synWindowField();
    c.negotiate(seg, true);
    if (c.tsOk) c.tsRecent = seg.options.tsVal;
    if (f & ACK) {
      c.sndUna = seg.ack;
      c.sndWnd = seg.window; // unscaled in a SYN
      c.sndWl1 = seg.seq;
      c.sndWl2 = seg.ack;
      c.maxSndWnd = c.sndWnd;
      c.timers.rtxAt = NO_DEADLINE;
      if (c.synTries === 1) c.rtt.sample(now - c.synSentAt);
      else c.rtt.synTimedOut();
      c.state = TcpState.Established;
      c.timers.touch(now);
      c.sender.sendAck(now);
      c.handler?.onEstablished(c);
      c.sender.output(now);
    } else {
      // Simultaneous open (RFC 9293 §3.5, figure 8).
      c.state = TcpState.SynReceived;
      c.out.sendControl(c, SYN | ACK, c.iss, now);
    }
    c.timers.reschedule();
  }

  /** RFC 9293 §3.10.7.4 table: is any part of the segment inside the window? */
  private acceptable(seg: TcpSegment): boolean {
    const c = this.c;
    const wnd = c.sender.currentWindow();
    const len = seg.seqLen;
    if (len === 0) {
      // RCV.NXT =< SEG.SEQ =< RCV.NXT+RCV.WND: one more than RFC 9293's
      // "<", as Linux: a peer that filled our window exactly sends its
      // bare ACKs at the right edge, and rejecting them (while a hole is
      // open) would throw away its acknowledgments. Nothing is accepted
      // into the window by c: the segment carries no data.
      return seqGe(seg.seq, c.rcvNxt) && seqLe(seg.seq, seqAdd(c.rcvNxt, wnd));
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
    if (wnd === 0) return seg.seq === c.rcvNxt;
    const last = seqAdd(seg.seq, len - 1);
    const end = seqAdd(c.rcvNxt, wnd);
    return (seqGe(seg.seq, c.rcvNxt) && seqLt(seg.seq, end)) || (seqGe(last, c.rcvNxt) && seqLt(last, end));
  }

  private canReceive(): boolean {
    const c = this.c;
    const s = c.state;
    return s === TcpState.Established || s === TcpState.FinWait1 || s === TcpState.FinWait2 || s === TcpState.SynReceived;
  }

  /** Processes the ACK field. Returns false when the segment must be dropped. */
  private processAck(seg: TcpSegment, now: number): boolean {
    const c = this.c;
    const ack = seg.ack;
    if (c.state === TcpState.SynReceived) {
      if (seqLe(ack, c.sndUna) || seqGt(ack, c.sndMax)) {
        c.out.sendControl(c, RST, ack, now);
        return false;
      }
      c.state = TcpState.Established;
      c.leaveSynReceived();
      c.sndWnd = seg.window * 2 ** c.sndShift;
      c.sndWl1 = seg.seq;
      c.sndWl2 = ack;
      c.maxSndWnd = Math.max(c.maxSndWnd, c.sndWnd);
      c.sndUna = ack;
      c.timers.rtxAt = NO_DEADLINE;
      if (c.synTries === 1) c.rtt.sample(now - c.synSentAt);
      else c.rtt.synTimedOut();
      c.handler?.onEstablished(c);
    }

    // RFC 5961 §5.2: an ACK of something never sent, or too far in the
    // past, is answered (a challenge ACK) and the segment dropped.
    if (seqGt(ack, c.sndMax) || seqLt(ack, seqAdd(c.sndUna, -Math.max(c.maxSndWnd, 65535)))) {
      c.sender.limitedAck(now, "tcp-challenge-ack-limit");
      return false;
    }

    const wnd = seg.window * 2 ** c.sndShift;
    if (!seg.badOptions && c.sackOk && seg.options.sackCount > 0) c.recovery.noteSacks(seg);

    if (seqGt(ack, c.sndUna)) {
      this.ackAdvanced(seg, ack, now);
    } else if (
      ack === c.sndUna &&
      seg.payloadLen === 0 &&
      !(seg.flags & (SYN | FIN)) &&
      wnd === c.sndWnd &&
      // A closed window is not loss: these are the answers to our window
      // probes, whose byte sits beyond the window. Counting them made the
      // third probe answer "fast retransmit" the probe byte.
      wnd !== 0 &&
      seqGt(c.sndMax, c.sndUna)
    ) {
      c.recovery.duplicateAck(now);
    }

    // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule), only from an
    // ACK at or past SND.UNA: the window is relative to SEG.ACK, and an
    // older ACK (reordered, on a newer data segment) would overstate it.
    if (seqGe(ack, c.sndUna) && (seqLt(c.sndWl1, seg.seq) || (c.sndWl1 === seg.seq && seqLe(c.sndWl2, ack)))) {
      const opened = c.sndWnd === 0 && wnd > 0;
      c.sndWnd = wnd;
      c.sndWl1 = seg.seq;
      c.sndWl2 = ack;
      if (wnd > c.maxSndWnd) c.maxSndWnd = wnd;
      if (opened) {
        // Leave persist mode; an unaccepted probe byte is sent again normally.
        c.timers.leavePersist();
        if (seqGt(c.sndNxt, c.sndUna) && c.timers.rtxAt === NO_DEADLINE) c.sndNxt = c.sndUna;
      }
    }
    return !c.closed;
  }

  private ackAdvanced(seg: TcpSegment, ack: number, now: number): void {
    const c = this.c;
    const acked = seqDiff(ack, c.sndUna);
    // Our FIN occupies the last sequence number: it is not buffer data.
    const finAcked = c.finSeq >= 0 && seqGt(ack, c.finSeq);
    const dataAcked = Math.min(acked - (finAcked ? 1 : 0), c.sendBuf.length);
    const flightBefore = c.inFlight;

    c.recovery.sampleRtt(seg, ack, now);

    if (dataAcked > 0) c.sendBuf.consume(dataAcked);
    c.sndUna = ack;
    if (seqLt(c.sndNxt, c.sndUna)) c.sndNxt = c.sndUna;
    c.timers.firstUnackedAt = seqGt(c.sndMax, c.sndUna) ? now : -1;
    c.recovery.onAck(ack, acked, flightBefore, now);

    // Restart or stop the retransmission timer (RFC 6298 §5.2, 5.3).
    if (seqGt(c.sndMax, c.sndUna)) c.timers.rtxAt = now + c.rtt.rto;
    else c.timers.rtxAt = NO_DEADLINE;
    if (c.state !== TcpState.SynReceived) c.synTries = 0;

    if (finAcked) {
      switch (c.state) {
        case TcpState.FinWait1:
          c.state = TcpState.FinWait2;
          break;
        case TcpState.Closing:
          this.enterTimeWait(now);
          break;
        case TcpState.LastAck:
          c.terminate("closed");
          return;
      }
    }
    if (dataAcked > 0 && c.sendBuf.length <= c.cfg.sndBuf >>> 1) {
      if (c.sendBuf.length === 0 && c.sendBuf.grown) c.timers.trimLater(now);
      c.handler?.onSendSpace(c);
    }
    c.timers.reschedule();
  }

  private receiveData(seq: number, buf: Uint8Array, off: number, len: number, now: number): void {
    const c = this.c;
    if (seq !== c.rcvNxt) {
      // Out of order: keep it inside the window and ask for the hole at once
      // with our SACK blocks (RFC 5681 §4.2: immediate duplicate ACK).
      const wnd = c.sender.currentWindow();
      if (!c.ooo.add(seq, buf, off, len, c.rcvNxt, seqAdd(c.rcvNxt, wnd))) c.out.countDrop("tcp-ooo-full");
      // One duplicate ACK per out-of-order segment, sent now rather than
      // coalesced at the end of the batch: the sender counts duplicate
      // ACKs (three start fast retransmit), and a whole batch of segments
      // past a hole folded into one ACK left it waiting for its RTO.
      c.sender.sendAck(now);
      return;
    }
    // The host side may close or abort the connection from onData: from
    // then on nothing is delivered, queued or acknowledged.
    const kept = this.deliver(buf, off, len, false);
    if (c.closed) return;
    c.rcvNxt = seqAdd(c.rcvNxt, kept);
    if (kept < len) {
      // The budget had no storage for the rest: dropped inside the window
      // (as Linux drops what its memory limits refuse); the guest sends
      // it again. Tell it at once where we are.
      c.out.countDrop("tcp-rcv-budget");
      c.ackNow = true;
      return;
    }
    if (!c.ooo.isEmpty) {
      // A hole filled: hand over what queued behind it, and ACK at once.
      c.rcvNxt = c.ooo.drain(c.rcvNxt, this.deliverCallback());
      if (c.closed) return;
      c.ackNow = true;
    }
    if (this.pendingFinSeq >= 0 && this.pendingFinSeq === c.rcvNxt) {
      this.pendingFinSeq = -1;
      this.receiveFin(now);
    }
    c.ackDue++;
    // RFC 5681 §4.2 / RFC 1122: ACK at least every second full segment.
    if (c.ackDue >= 2 || len >= 2 * c.rcvMss) c.ackNow = true;
  }

  /**
   * deliver() as a callback for the reassembly queue, made the first time
   * a hole fills rather than for every connection. (In its own method: a
   * function that contains an arrow function using `c` gets a scope
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
    const c = this.c;
    let taken = 0;
    if (c.rcvBuf.length === 0 && c.handler !== null) {
      taken = c.handler.onData(c, buf, off, len);
      // Aborted from onData (its host write failed): the bytes go nowhere.
      if (taken >= len || c.closed) return len;
    }
    const rb = c.rcvBuf;
    const keep = all ? len - taken : Math.min(len - taken, Math.max(0, rb.reachable - rb.length));
    rb.push(buf, off + taken, keep);
    if (keep < len - taken) c.account.refused();
    if (keep > 0) c.handler?.onReadable(c);
    return taken + keep;
  }

  private receiveFin(now: number): void {
    const c = this.c;
    if (c.finReceived) return;
    c.finReceived = true;
    c.rcvNxt = seqAdd(c.rcvNxt, 1);
    switch (c.state) {
      case TcpState.SynReceived:
      case TcpState.Established:
        // The host side usually closes right after hearing of c FIN:
        // a delayed ACK lets our own FIN carry it, one segment instead of
        // two (RFC 1122 §4.2.3.2 allows the delay for any segment).
        c.state = TcpState.CloseWait;
        c.ackDue++;
        break;
      case TcpState.FinWait1:
        // Our FIN not yet acknowledged: simultaneous close.
        c.state = TcpState.Closing;
        c.ackNow = true;
        break;
      case TcpState.FinWait2:
        // The host hears of the FIN first, then of the close (entering
        // TIME-WAIT reports onClosed): onPeerFin after onClosed reached a
        // host side that had already released the flow.
        c.ackNow = true;
        c.handler?.onPeerFin(c);
        if (c.state === TcpState.FinWait2) this.enterTimeWait(now);
        return;
    }
    c.handler?.onPeerFin(c);
  }

  private enterTimeWait(now: number): void {
    const c = this.c;
    c.state = TcpState.TimeWait;
    c.timers.startTimeWait(now);
    c.releaseBuffers();
    c.notifyClosed("closed");
    c.out.enteredTimeWait(c);
    c.timers.reschedule();
  }
}
