// The out-of-order receive queue on its own: clipping to the window,
// overlaps, growth of a piece by in-order arrivals, the piece cap, SACK
// block order, and sequence wraparound.
import { describe, expect, test } from "bun:test";
import { Assembler, MAX_PIECES } from "../../../src/stack/tcp/assembler.ts";

function data(seq: number, len: number): Uint8Array {
  // Byte value follows the sequence number, so any misplacement shows.
  return new Uint8Array(len).map((_, i) => ((seq + i) * 31) & 0xff);
}

function drainAll(a: Assembler, rcvNxt: number): { next: number; bytes: number[] } {
  const out: number[] = [];
  const next = a.drain(rcvNxt, (d, off, len) => {
    for (let i = 0; i < len; i++) out.push(d[off + i]!);
  });
  return { next, bytes: out };
}

function blocks(a: Assembler, max = 4): number[] {
  const out = new Uint32Array(8);
  const n = a.sackBlocks(out, max);
  return [...out.subarray(0, 2 * n)];
}

describe("Assembler", () => {
  test("clips to [lo, hi) and fills only gaps", () => {
    const a = new Assembler();
    expect(a.add(90, data(90, 30), 0, 30, 100, 115)).toBe(true);
    expect(a.bytes).toBe(15);
    expect(blocks(a)).toEqual([100, 115]);
    a.add(95, data(95, 30), 0, 30, 100, 200); // overlaps what is held
    expect(a.bytes).toBe(25);
    const { next, bytes } = drainAll(a, 100);
    expect(next).toBe(125);
    expect(bytes).toEqual([...data(100, 25)]);
    expect(a.isEmpty).toBe(true);
    expect(a.bytes).toBe(0);
  });

  test("in-order arrivals behind a hole grow one piece", () => {
    const a = new Assembler();
    for (let i = 0; i < 3 * MAX_PIECES; i++) expect(a.add(1000 + i * 100, data(1000 + i * 100, 100), 0, 100, 0, 1 << 30)).toBe(true);
    expect(a.pieceCount).toBe(1);
    expect(blocks(a)).toEqual([1000, 1000 + 300 * MAX_PIECES]);
    expect(drainAll(a, 999).next).toBe(999); // the hole is still open
    const { next, bytes } = drainAll(a, 1000);
    expect(next).toBe(1000 + 300 * MAX_PIECES);
    expect(bytes).toEqual([...data(1000, 300 * MAX_PIECES)]);
  });

  test("the piece cap bounds disjoint holes", () => {
    const a = new Assembler();
    for (let i = 0; i < MAX_PIECES; i++) expect(a.add(i * 10, data(i * 10, 5), 0, 5, 0, 1 << 30)).toBe(true);
    expect(a.add(MAX_PIECES * 10, data(0, 5), 0, 5, 0, 1 << 30)).toBe(false);
    // Growing an existing piece is still possible.
    expect(a.add(5, data(5, 2), 0, 2, 0, 1 << 30)).toBe(true);
  });

  test("SACK blocks: most recent first, touching pieces merged", () => {
    const a = new Assembler();
    a.add(100, data(100, 10), 0, 10, 0, 1000);
    a.add(200, data(200, 10), 0, 10, 0, 1000);
    a.add(300, data(300, 10), 0, 10, 0, 1000);
    expect(blocks(a)).toEqual([300, 310, 200, 210, 100, 110]);
    a.add(190, data(190, 10), 0, 10, 0, 1000); // touches 200: one block, now the newest
    expect(blocks(a)).toEqual([190, 210, 300, 310, 100, 110]);
    expect(blocks(a, 2)).toEqual([190, 210, 300, 310]);
  });

  test("sequence numbers wrap", () => {
    const a = new Assembler();
    const s = 0xfffffff0;
    a.add((s + 40) >>> 0, data(40, 20), 0, 20, s, (s + 1000) >>> 0);
    a.add((s + 20) >>> 0, data(20, 20), 0, 20, s, (s + 1000) >>> 0);
    expect(blocks(a)).toEqual([(s + 20) >>> 0, (s + 60) >>> 0]);
    a.add(s, data(0, 20), 0, 20, s, (s + 1000) >>> 0);
    const { next, bytes } = drainAll(a, s);
    expect(next).toBe((s + 60) >>> 0);
    expect(bytes).toEqual([...data(0, 60)]);
  });
});
