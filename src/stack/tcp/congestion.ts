// Congestion control toward the guest: NewReno (RFC 5681, RFC 6582) with
// appropriate byte counting (RFC 3465, L = 2), an initial window of up to
// ten segments (RFC 6928) and a restart after idle (RFC 5681 §4.1).
//
// Why it matters on a local tap: a write() into the tap runs the guest's
// receive path, which queues into a per-CPU backlog of limited size
// (netdev_max_backlog). Blasting a whole send buffer at once overflows it
// and the guest drops; a congestion window paces us to what it absorbs.

/** RFC 6928's initial window: min(10*MSS, max(2*MSS, 14600)) bytes. */
export function initialWindow(mss: number): number {
  return Math.min(10 * mss, Math.max(2 * mss, 14600));
}

export class NewReno {
  cwnd: number;
  ssthresh = 0x7fffffff;
  /** Bytes acked since the last increase, in congestion avoidance. */
  private acked = 0;

  constructor(private mss: number) {
    this.cwnd = initialWindow(mss);
  }

  /** The handshake fixed the MSS: start from the initial window for it. */
  start(mss: number): void {
    this.mss = mss;
    this.cwnd = initialWindow(mss);
  }

  /** The MSS fell mid-connection: later increases count in the new size; cwnd keeps its bytes. */
  setMss(mss: number): void {
    this.mss = mss;
  }

  /**
   * Nothing sent for longer than an RTO (RFC 5681 §4.1): the ACK clock
   * is gone, so at most the restart window (the initial window) goes out.
   */
  restartAfterIdle(): void {
    this.cwnd = Math.min(this.cwnd, initialWindow(this.mss));
  }

  /** New data acknowledged outside recovery. */
  onAck(bytes: number): void {
    if (this.cwnd < this.ssthresh) {
      this.cwnd += Math.min(bytes, 2 * this.mss);
      return;
    }
    this.acked += bytes;
    if (this.acked >= this.cwnd) {
      this.acked -= this.cwnd;
      this.cwnd += this.mss;
    }
  }

  /** Loss detected by duplicate ACKs or SACK: enter fast recovery. */
  enterRecovery(flight: number): void {
    this.ssthresh = Math.max(flight >>> 1, 2 * this.mss);
    this.cwnd = this.ssthresh + 3 * this.mss;
    this.acked = 0;
  }

  /** Another duplicate ACK during recovery: one more segment has left. */
  inflate(): void {
    this.cwnd += this.mss;
  }

  /** A partial ACK during recovery (RFC 6582 §3.2 step 5). */
  partialAck(bytes: number): void {
    this.cwnd = Math.max(this.cwnd - bytes + this.mss, this.mss);
  }

  /** A full ACK ends recovery. */
  exitRecovery(flight: number): void {
    this.cwnd = Math.min(this.ssthresh, Math.max(flight, this.mss) + this.mss);
  }

  /** Retransmission timeout (RFC 5681 §3.1, equation 4): restart from one segment. */
  onTimeout(flight: number): void {
    this.ssthresh = Math.max(flight >>> 1, 2 * this.mss);
    this.cwnd = this.mss;
    this.acked = 0;
  }
}
