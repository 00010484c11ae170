// The timers of one TCP connection: retransmission (and the SYN retries),
// persist (zero-window probes and the silly-window override), keepalive,
// TIME-WAIT, the delayed ACK, the user timeout, and the release of emptied
// buffers. Each is an absolute deadline in ms (NO_DEADLINE when off); the
// earliest is the connection's `deadline`, on which the layer's timer heap
// is keyed, and `onTimer` runs whichever are due.
import { RTO_MAX_MS } from "./rtt.ts";
import { ACK, SYN } from "./segment.ts";
import { seqAdd, seqGt } from "./seq.ts";
import { NO_DEADLINE, TcpState } from "./state.ts";
import type { TcpConnection } from "./connection.ts";

/**
 * SYN-ACK transmissions while more than half of maxSynReceived
 * connections are SYN-RECEIVED: a flood of SYNs whose sender never
 * completes the handshake frees its places after about 3 s instead of
 * 63 s (as Linux prunes its SYN queue faster once it is half full).
 */
const SYNACK_TRIES_UNDER_PRESSURE = 2;

/**
 * How long an emptied send or receive buffer keeps its grown storage.
 * Freeing it at once made a bulk transfer, whose buffers empty and refill
 * every few round trips, allocate them again each time (a megabyte of
 * garbage per cycle); an idle connection still gives it back within a
 * second.
 */
const TRIM_DELAY_MS = 1000;

export class TcpTimers {
  /** Time the oldest unacknowledged byte was first sent (user timeout). */
  firstUnackedAt = -1;
  /** Last time any segment arrived from the guest. */
  lastRecvAt = 0;
  // --- timers (absolute ms; Infinity when off) ---
  rtxAt = NO_DEADLINE;
  delAckAt = NO_DEADLINE;
  persistAt = NO_DEADLINE;
  persistBackoff = 0;
  /** When the first window probe the guest has not answered went out (-1: none yet). */
  probeSince = -1;
  keepAt = NO_DEADLINE;
  keepProbes = 0;
  timeWaitAt = NO_DEADLINE;
  /** When to give back the storage of emptied buffers (TRIM_DELAY_MS). */
  trimAt = NO_DEADLINE;
  // Keepalive and user timeout: from the config, changeable per connection.
  keepIdleMs: number;
  keepIntvlMs: number;
  keepCnt: number;
  userTimeoutMs: number;

  constructor(private readonly c: TcpConnection) {
    const cfg = c.cfg;
    this.keepIdleMs = cfg.keepIdleMs;
    this.keepIntvlMs = cfg.keepIntvlMs;
    this.keepCnt = cfg.keepCnt;
    this.userTimeoutMs = cfg.userTimeoutMs;
  }

  /** TcpConnection.setKeepalive. */
  setKeepalive(idleMs: number, intvlMs: number, count: number, userTimeoutMs: number, now: number): void {
    this.keepIdleMs = idleMs;
    this.keepIntvlMs = intvlMs;
    this.keepCnt = count;
    this.userTimeoutMs = userTimeoutMs;
    if (this.keepAt !== NO_DEADLINE) {
      this.keepAt = now + idleMs;
      this.reschedule();
    }
  }

  /** TIME-WAIT entered: only its own timeout runs (and the trim of emptied buffers). */
  startTimeWait(now: number): void {
    this.rtxAt = this.persistAt = this.keepAt = this.delAckAt = NO_DEADLINE;
    this.timeWaitAt = now + this.c.cfg.timeWaitMs;
  }

  /** A FIN retransmitted into TIME-WAIT: the timeout starts again (RFC 9293 §3.10.7.4). */
  restartTimeWait(now: number): void {
    this.timeWaitAt = now + this.c.cfg.timeWaitMs;
    this.reschedule();
  }

  /** CLOSED: every timer off. */
  stopAll(): void {
    this.rtxAt = this.delAckAt = this.persistAt = this.keepAt = this.timeWaitAt = this.trimAt = NO_DEADLINE;
    this.c.deadline = NO_DEADLINE;
  }

  /** The guest's window opened: leave persist mode. */
  leavePersist(): void {
    this.persistAt = NO_DEADLINE;
    this.persistBackoff = 0;
  }

  /** An ACK is owed but not urgent: send it after the delayed-ACK timeout (RFC 1122 §4.2.3.2), unless one is set already. */
  delayAck(now: number): void {
    if (this.delAckAt !== NO_DEADLINE) return;
    this.delAckAt = now + this.c.cfg.delAckMs;
    this.reschedule();
  }

  /** Every acceptable segment from the guest: it is alive (keepalive idle time, user timeout). */
  touch(now: number): void {
    const c = this.c;
    this.keepProbes = 0;
    this.lastRecvAt = now;
    if (c.state === TcpState.TimeWait || c.state === TcpState.Closed) return;
    this.keepAt = now + this.keepIdleMs;
  }

  /** A buffer emptied: release grown storage in a while, if still empty then. */
  trimLater(now: number): void {
    const c = this.c;
    // Closed, the host has drained what a graceful close left in the
    // receive buffer: no timer (the layer has let go of us), release now.
    if (c.state === TcpState.Closed) {
      c.rcvBuf.release();
      return;
    }
    if (this.trimAt !== NO_DEADLINE) return;
    this.trimAt = now + TRIM_DELAY_MS;
    this.reschedule();
  }

  reschedule(): void {
    const c = this.c;
    const d = Math.min(this.rtxAt, this.delAckAt, this.persistAt, this.keepAt, this.timeWaitAt, this.trimAt);
    if (d !== c.deadline) {
      c.deadline = d;
      c.out.schedule(c);
    }
  }

  onTimer(now: number): void {
    const c = this.c;
    if (c.state === TcpState.Closed) return;
    if (c.openRefused) {
      c.terminate("refused");
      return;
    }
    if (now >= this.timeWaitAt) {
      c.terminate("closed");
      return;
    }
    if (now >= this.delAckAt) {
      this.delAckAt = NO_DEADLINE;
      if (c.ackDue > 0) c.sender.sendAck(now);
    }
    if (now >= this.rtxAt) this.retransmitTimeout(now);
    if (c.closed) return;
    if (now >= this.persistAt) {
      this.persistAt = NO_DEADLINE;
      if (c.sndWnd > 0) c.sender.output(now, true);
      else this.windowProbe(now);
    }
    if (now >= this.keepAt) this.keepalive(now);
    if (now >= this.trimAt) {
      this.trimAt = NO_DEADLINE;
      if (c.sendBuf.length === 0) c.sendBuf.trim();
      if (c.rcvBuf.length === 0) c.rcvBuf.trim();
    }
    if (!c.closed) this.reschedule();
  }

  retransmitTimeout(now: number): void {
    const c = this.c;
    this.rtxAt = NO_DEADLINE;
    if (c.state === TcpState.SynSent || c.state === TcpState.SynReceived) {
      // A simultaneous open's SYN-ACK is our SYN again: synRetries.
      const max = c.passive ? c.cfg.synAckRetries : c.cfg.synRetries;
      const tries = c.synReceivedCounted && c.out.synReceivedPressure ? Math.min(SYNACK_TRIES_UNDER_PRESSURE, max) : max;
      if (c.synTries >= tries) {
        c.terminate("timeout");
        return;
      }
      c.synTries++;
      c.rtt.timedOut();
      c.out.sendControl(c, c.state === TcpState.SynSent ? SYN : SYN | ACK, c.iss, now);
      this.rtxAt = now + c.rtt.rto;
      return;
    }
    if (!seqGt(c.sndMax, c.sndUna)) return;
    // TCP_USER_TIMEOUT: data unacknowledged, and the guest silent, for too long.
    if (this.firstUnackedAt >= 0 && now - Math.max(this.firstUnackedAt, this.lastRecvAt) >= this.userTimeoutMs) {
      c.abort(now, "timeout");
      return;
    }
    if (c.sndWnd === 0 && c.sendBuf.length > 0) {
      // The window closed under data in flight: probe instead (persist mode).
      c.sndNxt = c.sndUna;
      this.windowProbe(now);
      return;
    }
    c.recovery.onTimeout(now);
    this.rtxAt = now + c.rtt.rto;
  }

  /**
   * Zero-window probe (RFC 9293 §3.8.6.1): the first unacknowledged byte,
   * beyond the closed window, so the guest's ACK reports its window. Sent
   * for as long as the guest answers, with backoff capped at RTO_MAX_MS.
   * The RFC keeps the connection open only "as long as the receiving TCP
   * continues to send acknowledgments": once the probes have gone
   * unanswered for the user timeout, the guest is gone and the connection
   * is aborted (as Linux does, timing from the first unanswered probe).
   */
  windowProbe(now: number): void {
    const c = this.c;
    if (c.sndWnd > 0 || (c.sendBuf.length === 0 && !c.finWaiting)) return;
    if (this.probeSince < 0 || this.lastRecvAt >= this.probeSince) {
      // The guest spoke since the last probe (or this is the first one).
      this.probeSince = now;
    } else if (now - this.probeSince >= this.userTimeoutMs) {
      c.abort(now, "timeout");
      return;
    }
    if (c.sendBuf.length === 0) {
      // Only our FIN waits: it does not go beyond the window (output), so
      // the probe is an ACK of SND.UNA-1, outside the guest's window, which
      // it must answer with its window (as a keepalive; Linux does the same).
      c.out.sendControl(c, ACK, seqAdd(c.sndUna, -1), now);
    } else {
      if (c.sndNxt === c.sndUna) {
        c.sndNxt = seqAdd(c.sndUna, 1);
        if (seqGt(c.sndNxt, c.sndMax)) c.sndMax = c.sndNxt;
      }
      c.out.sendData(c, c.sndUna, 1, true, now);
    }
    this.persistBackoff = Math.min(this.persistBackoff + 1, 10);
    this.rtxAt = NO_DEADLINE;
    // The next probe, or the end of the user timeout if that comes first.
    this.persistAt = Math.min(now + Math.min(RTO_MAX_MS, c.rtt.rto * 2 ** this.persistBackoff), this.probeSince + this.userTimeoutMs);
  }

  keepalive(now: number): void {
    const c = this.c;
    if (c.state === TcpState.SynReceived || c.state === TcpState.TimeWait) {
      this.keepAt = NO_DEADLINE;
      return;
    }
    if (seqGt(c.sndMax, c.sndUna) || c.sendBuf.length > 0 || c.finWaiting) {
      // Not idle: data (or our FIN) is in flight or waiting for a window, and the
      // retransmission or persist timer (with the user timeout) watches
      // the guest. Keepalive probes would only add aborts of their own
      // during a long backoff; wait for idleness (as Linux does).
      this.keepProbes = 0;
      this.keepAt = now + this.keepIdleMs;
      return;
    }
    if (this.keepProbes >= this.keepCnt) {
      c.abort(now, "timeout");
      return;
    }
    // A keepalive is an ACK for SND.UNA-1 (RFC 9293 §3.8.4): the guest must answer.
    this.keepProbes++;
    c.out.sendControl(c, ACK, seqAdd(c.sndUna, -1), now);
    this.keepAt = now + this.keepIntvlMs;
  }
}
