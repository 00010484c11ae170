// Counters for everything that can be counted cheaply: frames and bytes
// each way, and every drop by its reason. One instance per running stack,
// shared by the device, the engine and the host side; /metrics renders it.
// Drop reasons are short kebab-case strings ("bad-checksum", "no-route").
//
// Limits: every table and buffer a guest or a local client can grow has a
// cap; when one bites, its owner calls limit(name) (name from LIMITS in
// src/host/control/limits.ts). The count goes to /metrics; `onLimit` lets the host
// print one rate-limited line about it.
//
// Faults: a handler that threw (a bug) is confined to its flow by whoever
// called it, which closes the flow (or drops the frame) and calls
// fault(where, error). The count goes to /metrics; `onFault` lets the host
// print a rate-limited line with the stack trace. With no `onFault` (unit
// tests, the fuzzer) the error is thrown on, so a test sees the bug itself.

export class Stats {
  rxFrames = 0;
  rxBytes = 0;
  txFrames = 0;
  txBytes = 0;
  private readonly drops = new Map<string, number>();
  private readonly events = new Map<string, number>();
  private readonly limits = new Map<string, number>();
  private readonly faults = new Map<string, number>();
  /** Told of every limit hit (the host's rate-limited report); null in tests. */
  onLimit: ((name: string) => void) | null = null;
  /** Told of every fault (the host's rate-limited report); null: fault() rethrows. */
  onFault: ((where: string, error: unknown) => void) | null = null;

  /** Counts one dropped frame or datagram. `reason` should be a literal. */
  drop(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  dropCount(reason: string): number {
    return this.drops.get(reason) ?? 0;
  }

  /** Drop counters sorted by reason, for reports. */
  dropTable(): Array<[string, number]> {
    return [...this.drops.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  /** Counts an event that is not a drop ("connect-ok", "connect-refused"...). */
  bump(name: string): void {
    this.events.set(name, (this.events.get(name) ?? 0) + 1);
  }

  eventCount(name: string): number {
    return this.events.get(name) ?? 0;
  }

  eventTable(): Array<[string, number]> {
    return [...this.events.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  /** A cap was reached (and what it guards was refused, evicted or shrunk). `name` should be a literal. */
  limit(name: string): void {
    this.limits.set(name, (this.limits.get(name) ?? 0) + 1);
    this.onLimit?.(name);
  }

  limitCount(name: string): number {
    return this.limits.get(name) ?? 0;
  }

  limitTable(): Array<[string, number]> {
    return [...this.limits.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  /**
   * A handler threw at `where` (a literal naming the call site); its flow
   * was closed or its frame dropped. Rethrows `error` when nobody listens.
   */
  fault(where: string, error: unknown): void {
    this.faults.set(where, (this.faults.get(where) ?? 0) + 1);
    if (this.onFault === null) throw error;
    this.onFault(where, error);
  }

  faultCount(where: string): number {
    return this.faults.get(where) ?? 0;
  }

  faultTable(): Array<[string, number]> {
    return [...this.faults.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }
}
