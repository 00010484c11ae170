// Properties of TCP sequence-number and window arithmetic (RFC 9293 §3.4,
// RFC 7323 §2), checked with fast-check over the whole 32-bit space and
// with a bias toward the wrap at 2^32 (0xffffffff -> 0).
//
// Sequence numbers compare by their signed 32-bit difference. Two numbers
// exactly 2^31 apart have no defined order (RFC 1982 §3.2); the ordering
// properties exclude that pair, and one property pins what the functions
// answer for it (both seqLt, neither seqGt), so a change is noticed.
//
// Replaying a failure: fast-check prints "seed: S, path: P"; run
//   FC_SEED=S FC_PATH=P bun test test/unit/stack/seq-property.test.ts -t "<property name>"
// TCP_PROPERTY_RUNS=N runs every property N times.
import { describe, expect, test } from "bun:test";
import * as fc from "fast-check";
import { seqAdd, seqDiff, seqGe, seqGt, seqInWindow, seqLe, seqLt, seqMax, seqMin } from "../../../src/stack/tcp/seq.ts";
import { shiftFor } from "../../../src/stack/tcp/connection.ts";
import { fcParams } from "../../support/fc-params.ts";

const TWO32 = 2 ** 32;
const TWO31 = 2 ** 31;
const RUNS = 1000;

/** Any 32-bit sequence number, often within 64 KiB of 2^32 or of 0. */
const seq = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 0xffffffff }), weight: 2 },
  { arbitrary: fc.integer({ min: 0xffffffff - 65535, max: 0xffffffff }), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 65535 }), weight: 1 },
);
/** A signed distance with a defined order: (-2^31, 2^31), often small. */
const dist = fc.oneof(fc.integer({ min: -(TWO31 - 1), max: TWO31 - 1 }), fc.integer({ min: -70_000, max: 70_000 }));
/** A strictly positive distance below 2^31. */
const fwd = fc.oneof(fc.integer({ min: 1, max: TWO31 - 1 }), fc.integer({ min: 1, max: 70_000 }));

const mod32 = (x: number): number => ((x % TWO32) + TWO32) % TWO32;
const check = <Ts extends [unknown, ...unknown[]]>(p: fc.IProperty<Ts>): void => fc.assert(p, fcParams<Ts>(RUNS));

describe("sequence arithmetic", () => {
  test("seqAdd is addition modulo 2^32 and stays in [0, 2^32)", () => {
    check(
      fc.property(seq, dist, (a, n) => {
        const r = seqAdd(a, n);
        return Number.isInteger(r) && r >= 0 && r < TWO32 && r === mod32(a + n) && seqAdd(r, -n) === a;
      }),
    );
  });

  test("seqDiff is the modular difference, as a signed number in [-2^31, 2^31)", () => {
    check(
      fc.property(seq, seq, (b, a) => {
        const d = seqDiff(b, a);
        return d >= -TWO31 && d < TWO31 && mod32(d) === mod32(b - a) && seqAdd(a, d) === b;
      }),
    );
  });

  test("seqDiff inverts seqAdd for every distance with a defined order, across the wrap", () => {
    check(fc.property(seq, dist, (a, d) => seqDiff(seqAdd(a, d), a) === d && seqDiff(a, seqAdd(a, d)) === -d));
  });

  test("comparisons agree with the sign of seqDiff", () => {
    check(
      fc.property(seq, seq, (a, b) => {
        const d = seqDiff(a, b);
        return seqLt(a, b) === d < 0 && seqLe(a, b) === d <= 0 && seqGt(a, b) === d > 0 && seqGe(a, b) === d >= 0;
      }),
    );
  });

  test("trichotomy and antisymmetry for every pair with a defined order", () => {
    check(
      fc.property(seq, dist, (a, d) => {
        const b = seqAdd(a, d);
        const lt = seqLt(a, b);
        const gt = seqGt(a, b);
        const eq = a === b;
        return (
          Number(lt) + Number(gt) + Number(eq) === 1 &&
          lt === seqGt(b, a) &&
          gt === seqLt(b, a) &&
          seqLe(a, b) === (lt || eq) &&
          seqGe(a, b) === (gt || eq) &&
          seqLe(a, b) === seqGe(b, a)
        );
      }),
    );
  });

  test("order is translation-invariant: adding the same offset to both keeps it (every pair)", () => {
    check(
      fc.property(seq, seq, seq, (a, b, k) => {
        const a2 = seqAdd(a, k);
        const b2 = seqAdd(b, k);
        return seqLt(a, b) === seqLt(a2, b2) && seqGt(a, b) === seqGt(a2, b2) && seqDiff(b, a) === seqDiff(b2, a2);
      }),
    );
  });

  test("transitivity within half the space", () => {
    check(
      fc.property(seq, fwd, fwd, (a, d1, d2) => {
        fc.pre(d1 + d2 < TWO31);
        const b = seqAdd(a, d1);
        const c = seqAdd(b, d2);
        return seqLt(a, b) && seqLt(b, c) && seqLt(a, c) && seqDiff(c, a) === d1 + d2;
      }),
    );
  });

  test("across 0xffffffff -> 0: a number past the wrap is after one before it", () => {
    check(
      fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 0, max: 1 << 20 }), (below, above) => {
        const a = TWO32 - below; // just below 2^32
        const b = above; // just above 0 (wrapped)
        return seqLt(a, b) && seqGt(b, a) && seqDiff(b, a) === below + above && seqAdd(a, below + above) === b && seqMax(a, b) === b && seqMin(a, b) === a;
      }),
    );
  });

  test("seqMax and seqMin pick one of their arguments, in order, commutatively", () => {
    check(
      fc.property(seq, dist, (a, d) => {
        const b = seqAdd(a, d);
        const hi = seqMax(a, b);
        const lo = seqMin(a, b);
        return (
          (hi === a || hi === b) &&
          (lo === a || lo === b) &&
          seqLe(lo, hi) &&
          seqGe(hi, a) &&
          seqGe(hi, b) &&
          seqLe(lo, a) &&
          seqLe(lo, b) &&
          hi === seqMax(b, a) &&
          lo === seqMin(b, a)
        );
      }),
    );
  });

  test("seqInWindow(x, lo, lo + w) holds exactly for offsets 0 <= x - lo < w", () => {
    // Windows up to 65535 << 14 (RFC 7323 §2.3), and any offset with a defined order.
    check(
      fc.property(seq, fc.integer({ min: 0, max: 65535 * 2 ** 14 }), dist, (lo, w, o) => {
        const hi = seqAdd(lo, w);
        return seqInWindow(seqAdd(lo, o), lo, hi) === (o >= 0 && o < w);
      }),
    );
  });

  test("numbers exactly 2^31 apart: no defined order (both seqLt, neither seqGt)", () => {
    check(
      fc.property(seq, (a) => {
        const b = seqAdd(a, TWO31);
        return seqDiff(b, a) === -TWO31 && seqDiff(a, b) === -TWO31 && seqLt(a, b) && seqLt(b, a) && !seqGt(a, b) && !seqGt(b, a);
      }),
    );
  });
});

describe("window arithmetic (RFC 7323)", () => {
  test("shiftFor gives the smallest shift (at most 14) whose 16-bit window covers the buffer", () => {
    check(
      fc.property(fc.oneof(fc.integer({ min: 1, max: 65535 * 2 ** 14 }), fc.integer({ min: 1, max: 200_000 }), fc.integer({ min: 65535 * 2 ** 13 - 2, max: 65535 * 2 ** 14 + 2 })), (bytes) => {
        const s = shiftFor(bytes);
        const covers = 65535 * 2 ** s >= bytes;
        const minimal = s === 0 || 65535 * 2 ** (s - 1) < bytes;
        return s >= 0 && s <= 14 && (bytes > 65535 * 2 ** 14 ? s === 14 : covers && minimal);
      }),
    );
    expect(shiftFor(65535 * 2 ** 13 + 1)).toBe(14);
    expect(shiftFor(2 ** 31)).toBe(14);
  });

  test("a scaled window from any RCV.NXT, across the wrap: the right edge is RCV.NXT + field << shift, exactly", () => {
    // The largest scaled window, 65535 << 14, is below 2^31, so the edge
    // always compares after RCV.NXT and the distance back is exact.
    check(
      fc.property(seq, fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 14 }), (rcvNxt, field, shift) => {
        const wnd = field * 2 ** shift;
        const edge = seqAdd(rcvNxt, wnd);
        return wnd < TWO31 && seqDiff(edge, rcvNxt) === wnd && (wnd === 0 ? edge === rcvNxt : seqGt(edge, rcvNxt)) && seqInWindow(seqAdd(edge, -1), rcvNxt, edge) === wnd > 0;
      }),
    );
  });

  test("a window rounded down to the scale granularity never passes the true edge, and loses less than one unit", () => {
    check(
      fc.property(seq, fc.integer({ min: 0, max: 65535 * 2 ** 14 }), fc.integer({ min: 0, max: 14 }), (rcvNxt, window, shift) => {
        const field = Math.min(65535, Math.floor(window / 2 ** shift));
        const trueEdge = seqAdd(rcvNxt, window);
        const edge = seqAdd(rcvNxt, field * 2 ** shift);
        const lost = seqDiff(trueEdge, edge);
        return seqLe(edge, trueEdge) && (field === 65535 || lost < 2 ** shift);
      }),
    );
  });
});
