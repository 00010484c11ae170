// The one logger. Every line the contract lists (§13) is written here,
// synchronously and whole, because scripts read them line by line and the
// error paths exit right after printing (asynchronous pipe writes would be
// lost on process.exit).
import { writeSync } from "node:fs";

function writeLine(fd: 1 | 2, line: string): void {
  const bytes = Buffer.from(line + "\n", "utf8");
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") continue; // a non-blocking pipe that is full: retry
      return; // EPIPE and friends: nobody is reading; logging must not kill us
    }
  }
}

export class Logger {
  constructor(
    /** -quiet hides the startup listen lines and all per-flow lines. */
    readonly quiet: boolean,
  ) {}

  /** stderr, always printed (lifecycle and errors). */
  err(line: string): void {
    writeLine(2, line);
  }

  /** stdout, always printed (-version, lines the contract marks as printed under -quiet). */
  out(line: string): void {
    writeLine(1, line);
  }

  /** stdout, hidden by -quiet (listen lines, per-flow lines). */
  flow(line: string): void {
    if (!this.quiet) writeLine(1, line);
  }
}
