// Reports faults: a handler that threw, confined to its flow by whoever
// called it (the reactor, the engine, the clock edge, a -L forward), which
// closed the flow or dropped the frame and called stats.fault(where, e).
// Each is a bug; the count is in /metrics
// (slirpnetstack_handler_faults_total{where="WHERE"}), and this prints a
// line for a call site at most once a minute: the first with the
// stack trace, later ones with how many faults the quiet time hid.
import type { Stats } from "../../stack/stats.ts";
import { QuietPeriods } from "./quiet-periods.ts";

export class FaultReporter {
  private readonly quiet: QuietPeriods;

  constructor(
    private readonly print: (line: string) => void,
    now?: () => number,
  ) {
    this.quiet = new QuietPeriods(now);
  }

  /** Routes stats.fault() to this reporter (and stops it rethrowing). */
  attach(stats: Stats): void {
    stats.onFault = (where, error) => this.report(where, error);
  }

  report(where: string, error: unknown): void {
    const pass = this.quiet.pass(where);
    if (pass === null) return;
    const head = `[!] Internal error in ${where}, confined to its flow: ${errorText(error)}`;
    if (pass.first) {
      const stack = error instanceof Error && error.stack !== undefined ? error.stack.split("\n").slice(1) : [];
      this.print([head, ...stack].join("\n"));
    } else {
      this.print(pass.hidden > 0 ? `${head}; ${pass.hidden} more since the last report` : head);
    }
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
