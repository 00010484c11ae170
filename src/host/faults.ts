// Reports faults: a handler that threw, confined to its flow by whoever
// called it (the reactor, the engine, the runtime, a -L forward), which
// closed the flow or dropped the frame and called stats.fault(where, e).
// Each is a bug; the count is in /metrics
// (slirpnetstack_handler_faults_total{where="WHERE"}), and this prints a
// line for a call site at most once per REPORT_MS: the first with the
// stack trace, later ones with how many faults the quiet time hid.
import type { Stats } from "../stack/stats.ts";

/** At most one line per call site per this many ms. */
export const REPORT_MS = 60_000;

export class FaultReporter {
  /** performance.now() of each call site's last line, and the faults since. */
  private readonly last = new Map<string, { at: number; hidden: number }>();

  constructor(
    private readonly print: (line: string) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Routes stats.fault() to this reporter (and stops it rethrowing). */
  attach(stats: Stats): void {
    stats.onFault = (where, error) => this.report(where, error);
  }

  report(where: string, error: unknown): void {
    const now = this.now();
    const seen = this.last.get(where);
    if (seen !== undefined && now - seen.at < REPORT_MS) {
      seen.hidden++;
      return;
    }
    const head = `[!] Internal error in ${where}, confined to its flow: ${errorText(error)}`;
    if (seen === undefined) {
      const stack = error instanceof Error && error.stack !== undefined ? error.stack.split("\n").slice(1) : [];
      this.print([head, ...stack].join("\n"));
    } else {
      this.print(seen.hidden > 0 ? `${head}; ${seen.hidden} more since the last report` : head);
    }
    this.last.set(where, { at: now, hidden: 0 });
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
