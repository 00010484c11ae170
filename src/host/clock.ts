// The edge between the sans-I/O engine and the real world's clock: it
// reads the time once per batch of frames, feeds the engine, and keeps the
// one real timer armed for the engine's next deadline. Host-side code calls
// `afterActivity()` whenever it drove the engine (sent data, closed a
// flow) so deferred work is flushed and new deadlines are honoured.
//
// Deferred work and polls run host and engine code outside any reactor
// look, so a throw there is confined here: a deferred task that throws
// closes its flow (deferredFault), a poll that throws is counted and the
// poll retried after POLL_RETRY_MS, so time keeps moving for everyone else.
import type { FrameReceiver, RxMeta } from "../stack/device.ts";
import type { Stack } from "../stack/stack.ts";
import type { Stats } from "../stack/stats.ts";

/** Something else on the frame path that needs time (the fault injector). */
export interface Pollable {
  poll(now: number): number;
}

/** Host work that must not run inside the engine's own processing. */
export interface Deferred {
  runDeferred(): void;
  /** runDeferred() threw (a bug, already reported): close the flow, RST toward both peers. */
  deferredFault(): void;
}

/** After a poll threw, when to poll again (its deadline is unknown). */
const POLL_RETRY_MS = 100;

export class StackClock implements FrameReceiver {
  private stack: Stack | null = null;
  private stats: Stats | null = null;
  private readonly pollables: Pollable[] = [];
  private batchNow = -1;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private pollQueued = false;
  private stopped = false;
  private deferred: Deferred[] = [];
  private spare: Deferred[] = [];

  /** `stats` counts what throws in deferred work and polls. */
  attach(stack: Stack, stats: Stats): void {
    this.stack = stack;
    this.stats = stats;
  }

  addPollable(p: Pollable): void {
    this.pollables.push(p);
  }

  /** The current time in ms, as the engine sees it. */
  now(): number {
    return this.batchNow >= 0 ? this.batchNow : performance.now();
  }

  receive(buf: Uint8Array, off: number, len: number, meta: RxMeta): void {
    if (this.batchNow < 0) this.batchNow = performance.now();
    this.stack!.input(buf, off, len, meta, this.batchNow);
  }

  batchEnd(): void {
    const now = this.batchNow >= 0 ? this.batchNow : performance.now();
    this.batchNow = -1;
    this.pollAt(now);
  }

  /** Host code drove the engine: poll once at the end of this turn. */
  afterActivity(): void {
    if (this.pollQueued || this.stopped) return;
    this.pollQueued = true;
    queueMicrotask(this.queuedPoll);
  }

  /**
   * Runs `d.runDeferred()` at the end of this turn, before the engine's
   * poll: for host work an engine callback asks for (read more host data
   * now that the guest freed buffer space) that would otherwise re-enter
   * the connection in the middle of processing a segment.
   */
  defer(d: Deferred): void {
    this.deferred.push(d);
    this.afterActivity();
  }

  /** Runs what afterActivity() queued, now (before the reactor waits). */
  readonly settle = (): void => {
    if (this.pollQueued) this.queuedPoll();
  };

  private readonly queuedPoll = (): void => {
    if (!this.pollQueued) return; // settle() got there first
    this.pollQueued = false;
    if (this.stopped) return;
    while (this.deferred.length > 0) {
      const run = this.deferred;
      this.deferred = this.spare;
      for (const d of run) {
        try {
          d.runDeferred();
        } catch (e) {
          this.deferredFailed(d, e);
        }
      }
      run.length = 0;
      this.spare = run;
    }
    this.pollAt(performance.now());
  };

  private readonly timerFired = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    if (!this.stopped) this.pollAt(performance.now());
  };

  private deferredFailed(d: Deferred, error: unknown): void {
    this.stats!.fault("deferred", error);
    try {
      d.deferredFault();
    } catch (e) {
      this.stats!.fault("deferred", e);
    }
  }

  private pollAt(now: number): void {
    let next: number;
    try {
      next = this.stack!.poll(now);
      for (const p of this.pollables) next = Math.min(next, p.poll(now));
    } catch (e) {
      this.stats!.fault("poll", e);
      next = now + POLL_RETRY_MS;
    }
    this.arm(next, now);
  }

  /** Keeps the real timer at the engine's earliest deadline. */
  private arm(deadline: number, now: number): void {
    if (deadline === Infinity) return;
    // An armed timer that fires earlier is fine: the poll re-arms.
    if (this.timer !== null && this.timerAt <= deadline) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = setTimeout(this.timerFired, Math.max(0, Math.ceil(deadline - now)));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
