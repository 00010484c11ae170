// Loss recovery of one TCP connection, the sending side: the SACK
// scoreboard (RFC 2018, RFC 6675), fast retransmit and NewReno recovery
// (RFC 5681, RFC 6582) with limited transmit (RFC 3042), the response to a
// retransmission timeout (RFC 6298 §5.5-5.7, go-back-N around what the
// guest SACKed), RTT sampling with Karn's rule, and the resend after a
// path MTU drop. The window arithmetic is congestion.ts (NewReno) and the
// RTO rtt.ts (RttEstimator); this is when they are told, and what goes
// again.
import { ACK, FIN, type TcpSegment } from "./segment.ts";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from "./seq.ts";
import { TcpState } from "./state.ts";
import type { TcpConnection } from "./connection.ts";

/** A range of sequence space the guest has SACKed (RFC 2018), above SND.UNA. */
interface SackRange {
  start: number;
  end: number;
}

export class LossRecovery {
  /** The scoreboard: what the guest holds above SND.UNA, in order, at most 64 ranges. */
  readonly sacked: SackRange[] = [];
  /** Duplicate ACKs in a row. */
  dupAcks = 0;
  /** Fast recovery under way (RFC 6582), until SND.UNA passes recoverSeq. */
  inRecovery = false;
  /** "recover" (RFC 6582): SND.MAX when recovery or the last timeout began. */
  recoverSeq = 0;
  /** Highest sequence retransmitted during this recovery (skip holes already resent). */
  highRxt = 0;
  /** Karn's algorithm when timestamps are off: one timed segment at a time. */
  rttSeq = -1;
  rttStart = 0;
  /** When the last retransmission timeout fired, in whole ms (-Infinity: never). */
  lastRtoAt = -Infinity;

  constructor(private readonly c: TcpConnection) {}

  /** A new connection sends from `iss` on: nothing to recover yet. */
  start(iss: number): void {
    this.recoverSeq = iss;
  }

  /**
   * Limited transmit (RFC 3042): each of the first two duplicate ACKs
   * lets one new segment out beyond cwnd, so a small flight still draws
   * the three duplicates fast retransmit needs. New data only: not while
   * resending after a timeout (SND.UNA still below "recover"). Returns
   * the bytes allowed beyond cwnd.
   */
  limitedTransmit(): number {
    const c = this.c;
    if (!this.inRecovery && this.dupAcks > 0 && this.dupAcks < 3 && seqGe(c.sndUna, this.recoverSeq)) {
      return this.dupAcks * c.sender.segmentPayloadMax();
    }
    return 0;
  }

  /** A data segment went out at `seq`: time it if it is new and nothing is timed (Karn, without timestamps). */
  sent(seq: number, now: number): void {
    const c = this.c;
    if (this.rttSeq < 0 && !c.tsOk && seqGe(seq, c.sndMax)) {
      this.rttSeq = seq;
      this.rttStart = now;
    }
  }

  /** An ACK advanced SND.UNA to `ack`: an RTT sample, from the echoed timestamp, else Karn's timed segment. */
  sampleRtt(seg: TcpSegment, ack: number, now: number): void {
    const c = this.c;
    if (c.tsOk && seg.options.hasTimestamps && seg.options.tsEcr !== 0) {
      // An echo from before our last timeout is Karn's ambiguity again: a
      // receiver answers a retransmission of data it already holds with
      // the old TS.Recent (RFC 7323 §4.3), so the "RTT" spans the whole
      // loss episode. One such sample once inflated the RTO to 25 s.
      // The echoed segment left at now - rtt (a difference of our own
      // timestamps); that is compared with the timeout as real time: in
      // timestamp space, modulo 2^32, a timeout more than 2^31 ms ago
      // read as one in the future and rejected every sample.
      const rtt = seqDiff(c.tsNow(now), seg.options.tsEcr);
      if (rtt >= 0 && Math.floor(now) - rtt >= this.lastRtoAt) c.rtt.sample(rtt);
    } else if (this.rttSeq >= 0 && seqGt(ack, this.rttSeq)) {
      c.rtt.sample(now - this.rttStart);
      this.rttSeq = -1;
    }
  }

  /**
   * After SND.UNA advanced by `acked` to `ack` (`flightBefore` in flight
   * before): the scoreboard, and the congestion window or the recovery
   * under way (a partial ACK resends the next hole).
   */
  onAck(ack: number, acked: number, flightBefore: number, now: number): void {
    const c = this.c;
    this.pruneSacks();
    this.dupAcks = 0;
    if (this.inRecovery) {
      if (seqGe(ack, this.recoverSeq)) {
        this.inRecovery = false;
        c.cc.exitRecovery(c.inFlight);
      } else {
        // Partial ACK: the next hole is lost too (RFC 6582 §3.2).
        c.cc.partialAck(acked);
        this.retransmitHole(now);
      }
    } else {
      c.cc.onAck(Math.min(acked, flightBefore || acked));
      // Keep "recover" just behind SND.UNA once passed, so the test in
      // duplicateAck() never meets a value 2^31 behind (sequence wrap).
      if (seqGt(ack, this.recoverSeq)) this.recoverSeq = ack;
    }
  }

  /**
   * The retransmission timer expired with data in flight (RFC 5681 §3.1,
   * RFC 6298 §5.5-5.7): back off, collapse the window and resend from
   * SND.UNA (go-back-N, skipping what the guest SACKed).
   */
  onTimeout(now: number): void {
    const c = this.c;
    c.rtt.timedOut();
    c.cc.onTimeout(c.inFlight);
    this.lastRtoAt = Math.floor(now);
    this.inRecovery = false;
    this.dupAcks = 0;
    this.rttSeq = -1;
    this.sacked.length = 0; // RFC 6675 §5.1: SACK information may be reneged
    this.highRxt = c.sndUna;
    this.recoverSeq = c.sndMax; // RFC 6582 §3.2 step 4
    const dataEnd = seqAdd(c.sndUna, c.sendBuf.length);
    if (c.finSent && c.sndUna === dataEnd) {
      c.out.sendControl(c, FIN | ACK, dataEnd, now);
    } else {
      c.sndNxt = c.sndUna;
      if (c.finSent) {
        // output() re-sends data; our FIN follows once the data is through.
        c.finSent = false;
      }
      c.sender.output(now);
    }
  }

  duplicateAck(now: number): void {
    const c = this.c;
    this.dupAcks++;
    if (this.inRecovery) {
      // With SACK, a duplicate ACK may clock out the retransmission of the
      // next hole the scoreboard shows lost (RFC 6675 NextSeg rule 1)
      // instead of one hole per partial ACK, i.e. per round trip.
      if (c.sackOk && this.retransmitNextLost(now)) return;
      c.cc.inflate();
      return;
    }
    // Not after a timeout until everything sent before it is acknowledged
    // (RFC 6582 §3.2 step 1): the duplicates of our go-back-N resends
    // would start a spurious recovery.
    if (seqLt(c.sndUna, this.recoverSeq)) return;
    // Three duplicates, or SACK showing more than (DupThresh - 1) * SMSS
    // bytes above the hole (RFC 6675 §4 "IsLost"), start fast retransmit.
    if (this.dupAcks === 3 || (this.dupAcks < 3 && this.sackedBytesAbove() > 2 * c.sendMss)) {
      this.inRecovery = true;
      this.recoverSeq = c.sndMax;
      this.highRxt = c.sndUna;
      c.cc.enterRecovery(c.inFlight);
      this.retransmitHole(now);
      c.timers.rtxAt = now + c.rtt.rto;
      c.timers.reschedule();
    }
  }

  // --- SACK scoreboard (what the guest holds above SND.UNA) ---

  noteSacks(seg: TcpSegment): void {
    const c = this.c;
    const o = seg.options;
    for (let i = 0; i < o.sackCount; i++) {
      let s = o.sackBlocks[2 * i]!;
      let e = o.sackBlocks[2 * i + 1]!;
      // Ignore blocks outside what we sent (D-SACK below SND.UNA, lies above SND.MAX).
      if (!seqLt(s, e) || seqLe(e, c.sndUna) || seqGt(e, c.sndMax)) continue;
      if (seqLt(s, c.sndUna)) s = c.sndUna;
      this.addSack(s, e);
    }
  }

  addSack(s: number, e: number): void {
    const r = this.sacked;
    let i = 0;
    while (i < r.length && seqLt(r[i]!.end, s)) i++;
    // Merge every range that touches [s, e).
    let j = i;
    while (j < r.length && seqLe(r[j]!.start, e)) {
      if (seqLt(r[j]!.start, s)) s = r[j]!.start;
      if (seqGt(r[j]!.end, e)) e = r[j]!.end;
      j++;
    }
    if (r.length - (j - i) >= 64 && j === i) return; // bounded scoreboard
    r.splice(i, j - i, { start: s, end: e });
  }

  pruneSacks(): void {
    const c = this.c;
    const r = this.sacked;
    let k = 0;
    while (k < r.length && seqLe(r[k]!.end, c.sndUna)) k++;
    if (k > 0) r.splice(0, k);
    if (r.length > 0 && seqLt(r[0]!.start, c.sndUna)) r[0]!.start = c.sndUna;
  }

  sackedBytesAbove(): number {
    let n = 0;
    for (const x of this.sacked) n += seqDiff(x.end, x.start);
    return n;
  }

  /**
   * During SACK recovery: retransmits the next hole at or after
   * max(SND.UNA, HighRxt) if it is lost by RFC 6675's IsLost (more than
   * (DupThresh - 1) * SMSS bytes SACKed above it). Returns whether it did.
   */
  retransmitNextLost(now: number): boolean {
    const c = this.c;
    let s = seqMax(c.sndUna, this.highRxt);
    for (const x of this.sacked) {
      if (seqLe(x.start, s) && seqLt(s, x.end)) s = x.end;
    }
    let above = 0;
    for (const x of this.sacked) if (seqGt(x.start, s)) above += seqDiff(x.end, x.start);
    if (above <= 2 * c.sendMss) return false;
    this.retransmitHole(now);
    return true;
  }

  /**
   * Retransmits the first un-SACKed segment at or after max(SND.UNA,
   * HighRxt): the hole the guest is waiting for.
   */
  retransmitHole(now: number): void {
    const c = this.c;
    let s = seqMax(c.sndUna, this.highRxt);
    for (const x of this.sacked) {
      if (seqLe(x.start, s) && seqLt(s, x.end)) s = x.end;
    }
    const dataEnd = seqAdd(c.sndUna, c.sendBuf.length);
    if (!seqLt(s, seqMin(dataEnd, c.sndMax))) {
      // Nothing but possibly our FIN is outstanding.
      if (c.finSent && s === dataEnd && seqGt(c.sndMax, dataEnd)) {
        c.out.sendControl(c, FIN | ACK, dataEnd, now);
      }
      return;
    }
    let len = Math.min(c.sender.segmentPayloadMax(), seqDiff(seqMin(dataEnd, c.sndMax), s));
    for (const x of this.sacked) {
      if (seqGt(x.start, s) && seqLt(x.start, seqAdd(s, len))) len = seqDiff(x.start, s);
    }
    c.out.sendData(c, s, len, false, now);
    this.highRxt = seqAdd(s, len);
    this.rttSeq = -1; // Karn: never time a retransmission
  }

  /**
   * The path to the guest carries at most `mss` bytes of TCP payload and
   * options per segment (an ICMP "fragmentation needed" or "packet too
   * big" about one of ours, RFC 1191 §6.3, RFC 8201 §5.4): later segments
   * are cut to it, and the data in flight, lost for being too big, goes
   * again now in segments that fit. No congestion response: the loss says
   * nothing about congestion.
   */
  lowerMss(mss: number, now: number): void {
    const c = this.c;
    if (mss >= c.sendMss) return;
    c.sendMss = mss;
    c.cc.setMss(mss);
    if (c.state < TcpState.Established || !seqLt(c.sndUna, seqMin(seqAdd(c.sndUna, c.sendBuf.length), c.sndMax))) return;
    c.sndNxt = c.sndUna;
    // Our FIN follows the data again (as after a timeout).
    c.finSent = false;
    this.rttSeq = -1; // Karn: retransmissions are not timed
    c.sender.output(now);
  }
}
