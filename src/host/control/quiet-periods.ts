// One report per key per period, for lines that could otherwise repeat at
// the rate a guest makes them (a cap that keeps biting, a handler that
// keeps throwing): the first goes out, the rest of the period is counted,
// and the next report says how many it hid.

/** The default period: one line per key per minute. */
export const REPORT_MS = 60_000;

export interface Pass {
  /** Never reported before. */
  first: boolean;
  /** Occurrences the quiet time hid since the previous report. */
  hidden: number;
}

export class QuietPeriods {
  /** performance.now() of each key's last report, and the occurrences since. */
  private readonly last = new Map<string, { at: number; hidden: number }>();

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly periodMs = REPORT_MS,
  ) {}

  /** Whether to report `key` now (and what to say about the quiet time), or null: stay quiet, counted. */
  pass(key: string): Pass | null {
    const now = this.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.at < this.periodMs) {
      seen.hidden++;
      return null;
    }
    this.last.set(key, { at: now, hidden: 0 });
    return { first: seen === undefined, hidden: seen?.hidden ?? 0 };
  }
}
