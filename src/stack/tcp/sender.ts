// The sending side of one TCP connection: what to send now (the windows,
// sender silly window avoidance, the place of our FIN, segment sizes), the
// ACKs (immediate, delayed, rate-limited) and the receive window we
// advertise in every segment. The connection holds the state; this reads
// and moves it.
import { RTO_MAX_MS } from "./rtt.ts";
import { ACK, FIN } from "./segment.ts";
import { seqAdd, seqDiff, seqGt, seqLt, seqMax } from "./seq.ts";
import { NO_DEADLINE, TcpState } from "./state.ts";
import type { TcpConnection } from "./connection.ts";

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

export class TcpSender {
  /** Last time output() sent anything (idle restart of cwnd; -1: never, cwnd is still initial). */
  lastSendAt = -1;

  /** When the last rate-limited ACK went out (limitedAck). */
  limitedAckAt = -Infinity;

  constructor(private readonly c: TcpConnection) {}

  /** The receive buffer's size: the configured one, or less when the budget cannot give that much storage. */
  private rcvBufLimit(): number {
    const c = this.c;
    return Math.min(c.cfg.rcvBuf, c.rcvBuf.reachable);
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
  currentWindow(): number {
    const c = this.c;
    const offered = Math.max(seqDiff(c.rcvAdvEdge, c.rcvNxt), 0);
    const limit = this.rcvBufLimit();
    const free = limit - c.rcvBuf.length;
    return free - offered >= Math.min(limit >>> 1, c.rcvMss) ? free : offered;
  }

  /** The 16-bit window field a segment sent now carries (scaled down, RFC 7323 §2.3). */
  windowFieldValue(): number {
    const c = this.c;
    return Math.min(65535, Math.floor(this.currentWindow() / 2 ** c.rcvShift));
  }

  /** The 16-bit window field for an outgoing segment; records the edge. */
  windowField(): number {
    const c = this.c;
    if (c.rcvBuf.reachable < c.cfg.rcvBuf) c.account.refused();
    const field = this.windowFieldValue();
    const edge = seqAdd(c.rcvNxt, field * 2 ** c.rcvShift);
    if (seqGt(edge, c.rcvAdvEdge) || c.state <= TcpState.SynReceived) c.rcvAdvEdge = edge;
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
    const c = this.c;
    const w = Math.min(65535, Math.max(0, this.rcvBufLimit() - c.rcvBuf.length));
    c.rcvAdvEdge = seqAdd(c.rcvNxt, w);
    return w;
  }

  /** Bookkeeping for every segment carrying an ACK that the layer sends. */
  noteAckSent(): void {
    const c = this.c;
    c.lastAckSent = c.rcvNxt;
    c.ackDue = 0;
    c.ackNow = false;
    c.timers.delAckAt = NO_DEADLINE;
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
    const c = this.c;
    let opts = c.tsOk ? 12 : 0;
    if (c.sackOk && !c.ooo.isEmpty) opts += 4 + 8 * c.ooo.blockCount(c.sackBlockMax);
    return c.sendMss - opts;
  }

  /**
   * Sends new data (and our FIN) as far as the windows allow. `force`:
   * the override timeout of silly window avoidance expired, send what
   * the window takes even if it is small.
   */
  output(now: number, force = false): void {
    const c = this.c;
    const s = c.state;
    if (s !== TcpState.Established && s !== TcpState.CloseWait && s !== TcpState.FinWait1 && s !== TcpState.Closing && s !== TcpState.LastAck) {
      return;
    }
    const dataEnd = seqAdd(c.sndUna, c.sendBuf.length);
    // Nothing in flight and nothing sent for longer than an RTO: restart
    // cwnd from the initial window before sending (RFC 5681 §4.1).
    if (this.lastSendAt >= 0 && c.sndMax === c.sndUna && seqLt(c.sndNxt, dataEnd) && now - this.lastSendAt > c.rtt.rto) {
      c.cc.restartAfterIdle();
    }
    const cwnd = c.cc.cwnd + c.recovery.limitedTransmit();
    const wndLimit = Math.min(cwnd, c.sndWnd);
    const limit = seqAdd(c.sndUna, wndLimit);
    const maxSeg = c.out.maxSegmentPayload(c);
    const full = this.segmentPayloadMax();
    let sent = false;
    while (seqLt(c.sndNxt, dataEnd)) {
      const room = seqDiff(limit, c.sndNxt);
      if (room <= 0) break;
      const avail = seqDiff(dataEnd, c.sndNxt);
      const len = Math.min(avail, room, maxSeg);
      // Sender-side silly window avoidance (RFC 9293 §3.8.6.2.1, RFC 1122
      // §4.2.3.4): send a full segment ("full" is the MSS less our
      // options), or all the queued data, or at least half the largest
      // window the guest has offered (Fs = 1/2). Else wait for an ACK to
      // open more or, with nothing in flight to bring one, for the
      // override timeout (the persist timer, below). No Nagle: we relay a
      // host socket whose sender chose its own (a TCP_NODELAY there must
      // stay one), and our reads already coalesce what it wrote.
      if (len < full && len < avail && len < c.maxSndWnd / 2 && !force) break;
      const last = seqAdd(c.sndNxt, len) === dataEnd;
      c.out.sendData(c, c.sndNxt, len, last, now);
      c.recovery.sent(c.sndNxt, now);
      c.sndNxt = seqAdd(c.sndNxt, len);
      if (seqGt(c.sndNxt, c.sndMax)) c.sndMax = c.sndNxt;
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
    if (c.finWaiting && c.sndNxt === dataEnd && seqLt(dataEnd, seqAdd(c.sndUna, c.sndWnd))) {
      c.finSent = true;
      c.finSeq = dataEnd;
      c.out.sendControl(c, FIN | ACK, dataEnd, now);
      c.sndNxt = seqAdd(dataEnd, 1);
      c.sndMax = seqMax(c.sndMax, c.sndNxt);
      if (c.state === TcpState.Established) c.state = TcpState.FinWait1;
      else if (c.state === TcpState.CloseWait) c.state = TcpState.LastAck;
      sent = true;
    }
    if (sent) {
      this.lastSendAt = now;
      if (c.timers.firstUnackedAt < 0) c.timers.firstUnackedAt = now;
      if (c.timers.rtxAt === NO_DEADLINE) c.timers.rtxAt = now + c.rtt.rto;
      c.timers.persistAt = NO_DEADLINE;
    } else if ((seqLt(c.sndNxt, dataEnd) || c.finWaiting) && c.timers.rtxAt === NO_DEADLINE && c.timers.persistAt === NO_DEADLINE) {
      // Data (or our FIN) waiting and nothing in flight to bring an ACK:
      // behind a zero window, probe (RFC 9293 §3.8.6.1); behind one too
      // small to use, send anyway when the timer expires (RFC 1122's
      // override timeout).
      c.timers.persistAt = now + Math.min(RTO_MAX_MS, c.rtt.rto * 2 ** c.timers.persistBackoff);
    }
    c.timers.reschedule();
  }

  sendAck(now: number): void {
    const c = this.c;
    c.out.sendControl(c, ACK, this.ackSeq(), now);
  }

  /**
   * An ACK answering a segment that may be a blind attack (a challenge
   * ACK, RFC 5961 §3-5) or a bare segment outside the window, at most one
   * per LIMITED_ACK_INTERVAL_MS (§7) for both together, so that a flood
   * of forged segments draws no flood of ACKs, and no ACK loop runs.
   * `dropReason` counts the ACKs held back.
   */
  limitedAck(now: number, dropReason: string): void {
    const c = this.c;
    if (now - this.limitedAckAt < LIMITED_ACK_INTERVAL_MS) {
      c.out.countDrop(dropReason);
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
  ackSeq(): number {
    const c = this.c;
    // Before ESTABLISHED only our SYN is out (SND.NXT = ISS+1), and in a
    // simultaneous open SND.WND is not known yet.
    if (c.state < TcpState.Established) return c.sndMax;
    const edge = seqAdd(c.sndUna, c.sndWnd);
    return seqGt(c.sndMax, edge) ? edge : c.sndMax;
  }

  /**
   * Sends the ACK owed for received data: immediately when due, else after
   * the delayed-ACK timeout (RFC 1122 §4.2.3.2), hoping to ride on data.
   */
  flushAck(now: number): void {
    const c = this.c;
    if (c.state === TcpState.Closed || c.state === TcpState.SynPending || c.state === TcpState.SynSent) return;
    if (c.ackNow) {
      this.sendAck(now);
    } else if (c.ackDue > 0) {
      c.timers.delayAck(now);
    }
  }
}
