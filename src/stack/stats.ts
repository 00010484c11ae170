// Counters for everything that can be counted cheaply: frames and bytes
// each way, and every drop by its reason. One instance per running stack,
// shared by the device, the engine and the host side; /metrics renders it.
// Drop reasons are short kebab-case strings ("bad-checksum", "no-route").

export class Stats {
  rxFrames = 0;
  rxBytes = 0;
  txFrames = 0;
  txBytes = 0;
  private readonly drops = new Map<string, number>();
  private readonly events = new Map<string, number>();

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
}
