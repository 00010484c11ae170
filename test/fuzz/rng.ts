// The fuzzer's random source: Mulberry32 (the fault injector's PRNG) with
// the few shapes the generators need. Everything a run does is drawn from
// one instance, so a seed names a run.
import { Mulberry32 } from "../../src/link/fault.ts";

export class Rng {
  private readonly m: Mulberry32;

  constructor(seed: number) {
    this.m = new Mulberry32(seed);
  }

  u32(): number {
    return this.m.u32();
  }

  /** Uniform in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor(this.m.next() * n);
  }

  /** Uniform in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.m.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /**
   * A length for a payload: mostly small, sometimes around `typical`, now
   * and then anything up to `max` (edge values included).
   */
  size(typical: number, max: number): number {
    const r = this.int(10);
    if (r < 5) return this.int(64);
    if (r < 8) return this.int(typical + 1);
    if (r < 9) return this.pick([0, 1, 7, 8, 9, typical - 1, typical, typical + 1, max - 1, max].filter((x) => x >= 0 && x <= max));
    return this.int(max + 1);
  }

  /** Fills b[off, off+len) with random bytes. */
  fill(b: Uint8Array, off = 0, len = b.length - off): void {
    let i = off;
    const end = off + len;
    while (i + 4 <= end) {
      const v = this.m.u32();
      b[i] = v;
      b[i + 1] = v >>> 8;
      b[i + 2] = v >>> 16;
      b[i + 3] = v >>> 24;
      i += 4;
    }
    while (i < end) b[i++] = this.m.u32();
  }

  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    this.fill(b);
    return b;
  }
}
