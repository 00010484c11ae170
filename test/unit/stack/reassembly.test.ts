// Fragment reassembly on its own: the datagram comes out whole in one
// buffer (header in front of the payload), buffers are reused once given
// back, and the limits hold.
import { describe, expect, test } from "bun:test";
import { Reassembler, TIMEOUT_MS } from "../../../src/stack/reassembly.ts";
import { Stats } from "../../../src/stack/stats.ts";

const HEADER = Uint8Array.from({ length: 20 }, (_, i) => 0xa0 + i);
const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

/** One fragment: the header followed by payload[from, to) in a frame of its own. */
function frame(data: Uint8Array, from: number, to: number): Uint8Array {
  const f = new Uint8Array(HEADER.length + (to - from));
  f.set(HEADER);
  f.set(data.subarray(from, to), HEADER.length);
  return f;
}

function feed(r: Reassembler, key: string, data: Uint8Array, from: number, to: number, now = 0) {
  const f = frame(data, from, to);
  return r.add(key, from, to < data.length, f, HEADER.length, to - from, 0, HEADER.length, now);
}

describe("Reassembler", () => {
  test("out-of-order fragments come out as header + payload, contiguous", () => {
    const r = new Reassembler(new Stats());
    const data = payload(4000, 1);
    expect(feed(r, "a", data, 1480, 2960)).toBeNull();
    expect(feed(r, "a", data, 2960, 4000)).toBeNull();
    const w = feed(r, "a", data, 0, 1480)!;
    expect([w.len, w.headerLen, w.payloadLen]).toEqual([4020, 20, 4000]);
    expect(Array.from(w.buf.subarray(w.off, w.off + 20))).toEqual(Array.from(HEADER));
    expect(Array.from(w.buf.subarray(w.off + 20, w.off + w.len))).toEqual(Array.from(data));
    expect(r.inProgress).toBe(0);
    r.release(w);
  });

  test("a given-back buffer carries the next datagram", () => {
    const r = new Reassembler(new Stats());
    const a = payload(3000, 2);
    feed(r, "a", a, 1480, 3000);
    const w1 = feed(r, "a", a, 0, 1480)!;
    const storage = w1.buf;
    r.release(w1);
    const b = payload(2000, 3);
    feed(r, "b", b, 1480, 2000);
    const w2 = feed(r, "b", b, 0, 1480)!;
    expect(w2.buf).toBe(storage);
    expect(Array.from(w2.buf.subarray(w2.off + 20, w2.off + w2.len))).toEqual(Array.from(b));
    r.release(w2);
  });

  test("a first fragment whose header does not fit the headroom drops the datagram", () => {
    const stats = new Stats();
    const r = new Reassembler(stats);
    const f = new Uint8Array(2000 + 8);
    expect(r.add("x", 0, true, f, 2000, 8, 0, 2000, 0)).toBeNull();
    expect(stats.dropCount("frag-header-too-long")).toBe(1);
    expect(r.inProgress).toBe(0);
  });

  test("an incomplete datagram expires, and its buffer is reused", () => {
    const stats = new Stats();
    const r = new Reassembler(stats);
    // One buffer in the pool, taken by the incomplete datagram.
    const first = feed(r, "x", payload(100, 3), 0, 100)!;
    const storage = first.buf;
    r.release(first);
    const data = payload(3000, 4);
    feed(r, "a", data, 1480, 3000, 0);
    expect(r.expire(TIMEOUT_MS - 1)).toBe(TIMEOUT_MS);
    expect(r.expire(TIMEOUT_MS)).toBe(Infinity);
    expect(stats.dropCount("frag-timeout")).toBe(1);
    expect(r.inProgress).toBe(0);
    // The expired datagram's buffer carries the next one.
    const next = feed(r, "b", payload(200, 5), 0, 200, TIMEOUT_MS)!;
    expect(next.buf).toBe(storage);
    r.release(next);
  });

  test("a hole is never filled with a previous datagram's bytes", () => {
    const stats = new Stats();
    const r = new Reassembler(stats);
    // A whole 32-byte datagram leaves its bytes in the pooled buffer.
    const old = payload(32, 9);
    const w = feed(r, "old", old, 0, 32)!;
    r.release(w);
    // [0,8) and [24,32) with more to come, then a last fragment [16,24):
    // 24 bytes held for a 24-byte datagram, but [8,16) never arrived and
    // [24,32) lies past the end the last fragment sets.
    const frag = (from: number, to: number, more: boolean) => {
      const f = frame(payload(32, 5), from, to);
      return r.add("new", from, more, f, HEADER.length, to - from, 0, HEADER.length, 0);
    };
    expect(frag(0, 8, true)).toBeNull();
    expect(frag(24, 32, true)).toBeNull();
    expect(frag(16, 24, false)).toBeNull();
    expect(stats.dropCount("frag-invalid")).toBe(1);
    expect(r.inProgress).toBe(0);
    // Nor does the hole alone complete it.
    expect(frag(0, 8, true)).toBeNull();
    expect(frag(16, 24, false)).toBeNull();
    expect(r.inProgress).toBe(1);
  });
});
