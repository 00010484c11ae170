// The one logger. Every line the process prints goes through here, in
// upstream's formats (scripts read them line by line); the only lines of
// our own say how many lines were lost and why.
//
// Logging never holds up the data path. stdout and stderr may be a pipe
// whose reader stalls, a terminal stopped with Ctrl-S, or journald's
// socket; a blocking write(2) there would stop every flow, and a guest can
// cause per-flow lines at line rate (a connect to a closed port costs it
// nothing). So:
//
// - Writes never block. O_NONBLOCK cannot simply be set on fd 1 or 2: the
//   flag belongs to the open file description, which is shared with
//   whoever else holds it (the parent shell, run mode's command on the same
//   terminal), and their writes would then fail with EAGAIN. A pipe, FIFO
//   or terminal is instead opened anew through /proc/self/fd/N: on Linux
//   that gives a new description of the same pipe or terminal, whose
//   O_NONBLOCK is ours alone. A socket cannot be opened that way (ENXIO);
//   send(MSG_DONTWAIT) does not block whatever the shared flags say. A
//   regular file never blocks for long and is written as it is. (The
//   other way, poll(POLLOUT) before each write of at most PIPE_BUF bytes,
//   is not safe: POLLOUT on a pipe means room for a page, but another
//   writer of the same pipe can take it between our poll and our write,
//   and a terminal reports POLLOUT with less room than a line.)
// - A line that cannot be written at once waits in a queue of QUEUE_BYTES.
//   When the queue is full, lines are dropped and counted; once it has
//   drained, a line says how many were dropped.
// - The queue is retried from a timer, armed only while it holds bytes,
//   first after RETRY_MIN_MS and backing off to RETRY_MAX_MS while the
//   reader does not move. (Not from the reactor: O_ASYNC on a terminal
//   sends SIGIO to the terminal's foreground process group, not to us.)
// - When the process exits, the queues get up to EXIT_FLUSH_MS to drain:
//   the closing line and the error line before an exit are not lost.
// - Per-flow lines are rate-limited per kind (token buckets of
//   BURST_LINES, refilled at LINES_PER_SECOND); what a kind's limit held
//   back is summed up in one line SUMMARY_MS after the first held line.
//   -quiet hides them all, and the listen lines.
// Lost lines are counted in Stats ("log-dropped", "log-suppressed").
//
// Two lines per connection by default, so a line is encoded into one reused
// buffer and written with write(2) directly: no Buffer per line, no trip
// through node:fs (measured: 0.7 -> 0.4 µs per line).
import { constants, fstatSync } from "node:fs";
import { sendNoWait } from "../../../ffi/net.ts";
import { EAGAIN, EINTR, FdWriter, O_NONBLOCK, openPath } from "../../../ffi/sys.ts";
import type { Stats } from "../../stack/stats.ts";

/** Bytes of lines that may wait for a stalled reader (the pipe itself holds 64 KiB more). */
export const QUEUE_BYTES = 64 * 1024;
const RETRY_MIN_MS = 10;
const RETRY_MAX_MS = 1000;
const EXIT_FLUSH_MS = 1000;
/** How long an exit waits between tries of a stalled output. */
const EXIT_RETRY_MS = 5;
/** Linux's PIPE_BUF: a pipe takes a write of at most this many bytes whole or not at all (POSIX write(2)). */
const PIPE_BUF = 4096;

/** Kinds of per-flow lines; each kind has its own rate limit. */
export type FlowKind = "conn-new" | "conn-done" | "dial-error" | "dns-error" | "local-fwd-error";
const FLOW_KINDS: readonly FlowKind[] = ["conn-new", "conn-done", "dial-error", "dns-error", "local-fwd-error"];
/** Lines of one kind printed at once before the limit holds them back. */
export const BURST_LINES = 1000;
/** Lines of one kind printed per second, on average, after a burst. */
export const LINES_PER_SECOND = 100;
export const SUMMARY_MS = 1000;

const encoder = new TextEncoder();

/** One output (stdout or stderr): writes that never block, and their queue. */
export class LineSink {
  /** Where lost lines are counted, once the stack has its Stats. */
  stats: Stats | null = null;
  private opened = false;
  /** The fd written: a private non-blocking description of `target`, or `target` itself. */
  private fd = -1;
  private socket = false;
  private writer: FdWriter | null = null;
  // 4 KiB and more: outside the moving heap, so FdWriter can keep its address.
  private line = new Uint8Array(new ArrayBuffer(4096));
  private readonly queue: Uint8Array;
  private head = 0;
  private tail = 0;
  /** Lines dropped for lack of room since the last notice. */
  private dropped = 0;
  /** Bytes written so far: a retry that moved nothing backs off. */
  private written = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private retryMs = RETRY_MIN_MS;

  constructor(
    private readonly target: number,
    capacity = QUEUE_BYTES,
  ) {
    this.queue = new Uint8Array(new ArrayBuffer(capacity));
  }

  /** Bytes waiting for the reader. */
  get queued(): number {
    return this.tail - this.head;
  }

  /** Writes one line (a newline is added) now, or queues it, or drops it. */
  write(text: string): void {
    if (!this.opened) this.open();
    if (this.dropped > 0 && this.head === this.tail) this.reportDropped();
    this.emit(this.encode(text));
  }

  /**
   * Writes what the queue holds, as far as the reader takes it; true when
   * nothing waits. Each write is whole lines of at most PIPE_BUF bytes,
   * which a pipe takes whole or not at all: stdout and stderr are often
   * the same pipe, and a partial write would let the other sink's next
   * line land inside one of ours.
   */
  flush(): boolean {
    while (this.head < this.tail) {
      const n = this.put(this.queue, this.head, this.wholeLines());
      if (n > 0) {
        this.head += n;
        this.written += n;
      } else if (n === -EAGAIN || n === 0) {
        return false;
      } else {
        // EPIPE and friends: nobody will read what waits.
        for (let i = this.head; i < this.tail; i++) if (this.queue[i] === 10) this.stats?.bump("log-dropped");
        this.head = this.tail;
        this.dropped = 0;
      }
    }
    this.head = this.tail = 0;
    if (this.dropped > 0) this.reportDropped();
    return this.head === this.tail;
  }

  /** Bytes from the head of the queue up to its last newline within PIPE_BUF; all of it if it holds none there (a longer line). */
  private wholeLines(): number {
    const len = this.tail - this.head;
    if (len <= PIPE_BUF) return len; // the queue holds only whole lines, or a line's unwritten rest
    for (let i = this.head + PIPE_BUF - 1; i >= this.head; i--) if (this.queue[i] === 10) return i + 1 - this.head;
    return len;
  }

  /** Keeps writing until the queue is empty or `until` (performance.now()) has passed; for exit. */
  drain(until: number): void {
    while (!this.flush() && performance.now() < until) Bun.sleepSync(EXIT_RETRY_MS);
  }

  private open(): void {
    this.opened = true;
    let socket: boolean;
    let stream: boolean;
    try {
      const st = fstatSync(this.target);
      socket = st.isSocket();
      stream = st.isFIFO() || st.isCharacterDevice();
    } catch {
      return; // not open: lines go nowhere, as with a closed fd
    }
    this.fd = this.target;
    this.socket = socket;
    if (stream) {
      try {
        this.fd = openPath(`/proc/self/fd/${this.target}`, constants.O_WRONLY | O_NONBLOCK | constants.O_NOCTTY);
      } catch {
        // A pipe without a reader (writes fail with EPIPE anyway), or no
        // /proc: the shared description, as it is.
      }
    }
    this.writer = new FdWriter(this.fd);
  }

  /** Encodes text and a newline into the line buffer; returns the length. */
  private encode(text: string): number {
    // UTF-8 needs at most 3 bytes per UTF-16 unit, plus the newline.
    const need = text.length * 3 + 1;
    if (need > this.line.length) this.line = new Uint8Array(new ArrayBuffer(Math.max(need, this.line.length * 2)));
    const len = encoder.encodeInto(text, this.line).written;
    this.line[len] = 10;
    return len + 1;
  }

  /**
   * The encoded line: written now if nothing waits (its unwritten rest
   * queued), else queued behind. Once a line did not fit, lines are dropped
   * until the queue has drained, so the notice stands where the gap is.
   */
  private emit(len: number): void {
    if (this.head !== this.tail) {
      if (this.dropped > 0 || len > this.queue.length - (this.tail - this.head)) this.drop();
      else this.append(0, len);
      return;
    }
    if (len > this.queue.length) {
      this.drop(); // longer than the queue could ever hold (none of ours is near)
      return;
    }
    const n = this.put(this.line, 0, len);
    if (n === len) return;
    if (n < 0 && n !== -EAGAIN) {
      this.stats?.bump("log-dropped"); // EPIPE and friends: nobody reads
      return;
    }
    // A partial write leaves the rest of the line at the head of the queue.
    this.append(n < 0 ? 0 : n, len);
  }

  private drop(): void {
    this.dropped++;
    this.stats?.bump("log-dropped");
  }

  /** Queues line[from, to); the caller checked the room. */
  private append(from: number, to: number): void {
    const len = to - from;
    if (this.tail + len > this.queue.length) {
      this.queue.copyWithin(0, this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
    }
    this.queue.set(this.line.subarray(from, to), this.tail);
    this.tail += len;
    if (this.timer === null) this.arm();
  }

  private reportDropped(): void {
    const n = this.dropped;
    this.dropped = 0;
    this.emit(this.encode(`[!] Log output not writable: dropped ${n} lines`));
  }

  private put(buf: Uint8Array, off: number, len: number): number {
    if (this.writer === null) return len; // no output: nothing to wait for
    for (;;) {
      const n = this.socket ? sendNoWait(this.fd, buf, off, len) : this.writer.write(buf, off, len);
      if (n !== -EINTR) return n;
    }
  }

  private arm(): void {
    this.timer = setTimeout(this.retry, this.retryMs);
    this.timer.unref();
  }

  private readonly retry = (): void => {
    this.timer = null;
    const before = this.written;
    if (this.flush()) {
      this.retryMs = RETRY_MIN_MS;
      return;
    }
    this.retryMs = this.written > before ? RETRY_MIN_MS : Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.arm();
  };
}

/** A token bucket: BURST_LINES at once, LINES_PER_SECOND after. */
class RateLimit {
  private tokens = BURST_LINES;
  /** Lines held back since the last summary. */
  suppressed = 0;

  constructor(private at: number) {}

  take(now: number): boolean {
    this.tokens = Math.min(BURST_LINES, this.tokens + ((now - this.at) * LINES_PER_SECOND) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

const stdoutSink = new LineSink(1);
const stderrSink = new LineSink(2);

export interface LoggerOptions {
  /** Defaults: fd 1 and fd 2. */
  stdout?: LineSink;
  stderr?: LineSink;
  /** Milliseconds, for the rate limits; default performance.now. */
  now?: () => number;
  /** Hide the lifecycle lines too (run mode is silent unless -quiet=false). */
  silent?: boolean;
}

/** Loggers with held-back lines not yet summed up: an exit sums them up. */
const unsummarized = new Set<Logger>();

export class Logger {
  private readonly stdout: LineSink;
  private readonly stderr: LineSink;
  private readonly now: () => number;
  private readonly limits = new Map<FlowKind, RateLimit>();
  private stats: Stats | null = null;
  private summaryTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly silent: boolean;

  constructor(
    /** -quiet hides the startup listen lines and all per-flow lines. */
    readonly quiet: boolean,
    opts: LoggerOptions = {},
  ) {
    this.stdout = opts.stdout ?? stdoutSink;
    this.stderr = opts.stderr ?? stderrSink;
    this.now = opts.now ?? (() => performance.now());
    this.silent = opts.silent ?? false;
    const t = this.now();
    for (const k of FLOW_KINDS) this.limits.set(k, new RateLimit(t));
  }

  /** Counts lines dropped and suppressed from now on in `stats` (for /metrics). */
  countIn(stats: Stats): void {
    this.stats = stats;
    this.stdout.stats = stats;
    this.stderr.stats = stats;
  }

  /** stderr, always printed (errors, and what must be seen even in run mode). */
  err(line: string): void {
    this.stderr.write(line);
  }

  /** stderr, lifecycle lines ("started", "closing", metrics): hidden only when silent. */
  status(line: string): void {
    if (!this.silent) this.stderr.write(line);
  }

  /** stdout, hidden by -quiet: the listen lines of -L and -R at startup. */
  listen(line: string): void {
    if (!this.quiet) this.stdout.write(line);
  }

  /** stdout, hidden by -quiet and rate-limited per kind: a line about one flow. */
  flow(kind: FlowKind, line: string): void {
    if (this.quiet) return;
    const limit = this.limits.get(kind)!;
    if (limit.take(this.now())) {
      this.stdout.write(line);
      return;
    }
    limit.suppressed++;
    this.stats?.bump("log-suppressed");
    if (this.summaryTimer === null) {
      this.summaryTimer = setTimeout(this.summarize, SUMMARY_MS);
      this.summaryTimer.unref();
      unsummarized.add(this);
    }
  }

  /** One line per kind whose limit held lines back since the last summary. */
  readonly summarize = (): void => {
    if (this.summaryTimer !== null) clearTimeout(this.summaryTimer);
    this.summaryTimer = null;
    unsummarized.delete(this);
    for (const [kind, limit] of this.limits) {
      if (limit.suppressed === 0) continue;
      this.stdout.write(`[ ] Log rate limit: suppressed ${limit.suppressed} ${kind} lines`);
      limit.suppressed = 0;
    }
  };
}

process.on("exit", () => {
  for (const l of unsummarized) l.summarize();
  const until = performance.now() + EXIT_FLUSH_MS;
  stdoutSink.drain(until);
  stderrSink.drain(until);
});
