// Retransmission timeout (RFC 6298): SRTT and RTTVAR from RTT samples,
// RTO = SRTT + max(G, 4·RTTVAR), clamped, doubled on each timeout (§5.5)
// and restored by the next valid sample.
//
// The minimum is 200 ms rather than RFC 6298's 1 s, as Linux does: the
// guest link is a local tap with microsecond RTTs, and a 1 s floor would
// make every tail loss cost a second.

export const RTO_MIN_MS = 200;
export const RTO_MAX_MS = 60_000;
/** Before any sample (RFC 6298 §2.1). */
export const RTO_INITIAL_MS = 1000;
/** The RTO for data after a SYN or SYN-ACK timed out and gave no sample (RFC 6298 §5.7). */
export const RTO_AFTER_SYN_TIMEOUT_MS = 3000;
/** Clock granularity G: we keep milliseconds. */
const GRANULARITY_MS = 1;

export class RttEstimator {
  srtt = 0;
  rttvar = 0;
  private hasSample = false;
  /** Current RTO before backoff. */
  private base = RTO_INITIAL_MS;
  /** Number of consecutive timeouts (exponential backoff). */
  backoff = 0;

  get rto(): number {
    return Math.min(RTO_MAX_MS, this.base * 2 ** this.backoff);
  }

  sample(rttMs: number): void {
    const r = Math.max(rttMs, 0);
    if (!this.hasSample) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.hasSample = true;
    } else {
      // alpha = 1/8, beta = 1/4 (§2.3)
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.base = Math.min(RTO_MAX_MS, Math.max(RTO_MIN_MS, this.srtt + Math.max(GRANULARITY_MS, 4 * this.rttvar)));
    this.backoff = 0;
  }

  /**
   * The handshake completed after our SYN or SYN-ACK had to be
   * retransmitted, so it gave no sample (Karn): data starts with an RTO of
   * 3 s, not the backed-off handshake value (§5.7, a MUST).
   */
  synTimedOut(): void {
    this.base = RTO_AFTER_SYN_TIMEOUT_MS;
    this.backoff = 0;
  }

  /** A retransmission timer expired: back off (§5.5). */
  timedOut(): void {
    if (this.rto < RTO_MAX_MS) this.backoff++;
  }
}
