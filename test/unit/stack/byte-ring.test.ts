// The growable ring under the TCP buffers: pushes and in-place fills
// (reserve/commit, how a host socket read lands in the send buffer) keep
// byte order across wrap-around and growth.
import { describe, expect, test } from "bun:test";
import { ByteRing, ringPool } from "../../../src/stack/tcp/byte-ring.ts";

function drain(r: ByteRing): number[] {
  const out = new Uint8Array(r.length);
  r.copyOut(0, out, 0, r.length);
  r.consume(r.length);
  return Array.from(out);
}

/** Fills `n` bytes in place with values from `next`, as a read(2) into the span would. */
function fill(r: ByteRing, n: number, next: () => number): number {
  const span = r.reserve(n);
  const buf = r.backBuf;
  const off = r.backOff;
  for (let i = 0; i < span; i++) buf[off + i] = next();
  r.commit(span);
  return span;
}

describe("ByteRing reserve/commit", () => {
  test("an empty ring starts small and doubles only when full", () => {
    const r = new ByteRing(1 << 20);
    expect(r.reserve(100_000)).toBe(2048);
    r.commit(2048);
    expect(r.capacity).toBe(2048);
    expect(r.grown).toBe(false);
    expect(r.reserve(100_000)).toBe(2048); // full: doubled, the new half is free
    expect(r.capacity).toBe(4096);
    expect(r.grown).toBe(true);
  });

  test("spans stop at the end of the storage and continue at its start; order is kept", () => {
    const r = new ByteRing(1 << 20);
    let v = 0;
    const next = () => v++ & 0xff;
    fill(r, 2048, next);
    r.consume(1000); // free space now at the front too
    const tail = fill(r, 5000, next);
    expect(tail).toBe(1000); // the front's free space is the next span
    expect(r.length).toBe(2048);
    const got = drain(r);
    expect(got).toEqual(Array.from({ length: 2048 }, (_, i) => (i + 1000) & 0xff));
  });

  test("pushes and fills mix, across growth", () => {
    const r = new ByteRing(1 << 20);
    let v = 0;
    const next = () => v++ & 0xff;
    const expected: number[] = [];
    for (let round = 0; round < 50; round++) {
      const n = 300 + round * 97;
      const chunk = Uint8Array.from({ length: n }, next);
      r.push(chunk, 0, n);
      expected.push(...chunk);
      let want = 700 + round * 31;
      while (want > 0) {
        const before = v;
        const got = fill(r, want, next);
        for (let i = 0; i < got; i++) expected.push((before + i) & 0xff);
        want -= got;
      }
      if (round % 3 === 2) {
        const k = Math.floor(r.length / 2);
        r.consume(k);
        expected.splice(0, k);
      }
    }
    expect(drain(r)).toEqual(expected);
  });
});

describe("storage pool", () => {
  test("storage given back by one ring is what the next ring of that size gets", () => {
    const a = new ByteRing(1 << 20);
    a.push(new Uint8Array(100_000), 0, 100_000); // grows to 128 KiB
    const storage = a.backBuf;
    expect(storage.length).toBe(128 * 1024);
    a.consume(a.length);
    const pooled = ringPool.pooledBytes;
    a.trim();
    expect(ringPool.pooledBytes).toBe(pooled + 128 * 1024);
    const b = new ByteRing(1 << 20);
    b.push(new Uint8Array(70_000).fill(9), 0, 70_000);
    expect(b.backBuf).toBe(storage);
    expect(ringPool.pooledBytes).toBe(pooled);
    const out = new Uint8Array(70_000);
    b.copyOut(0, out, 0, 70_000);
    expect(out.every((x) => x === 9)).toBe(true);
  });

  test("release() empties a ring of any size and it stays usable", () => {
    const r = new ByteRing(1 << 20);
    r.push(new Uint8Array([1, 2, 3]), 0, 3);
    r.release();
    expect([r.length, r.capacity]).toEqual([0, 0]);
    r.push(new Uint8Array([4, 5]), 0, 2);
    expect(drain(r)).toEqual([4, 5]);
  });
});
