// Fragment reassembly on its own: the datagram comes out whole in one
// buffer (header in front of the payload), buffers are reused once given
// back, and the limits hold.
import { describe, expect, test } from "bun:test";
import { Reassembler, TIMEOUT_MS } from "../../../src/stack/reassembly.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { RxMeta } from "../../../src/stack/device.ts";
import { checksum, pseudoHeaderV6 } from "../../../src/wire/checksum.ts";
import { EnginePair, A_V6, B_V6 } from "../../support/engine-pair.ts";

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
  return r.add(key, from, to < data.length, f, HEADER.length, to - from, 0, HEADER.length, -1, 0, now);
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
    expect(r.add("x", 0, true, f, 2000, 8, 0, 2000, -1, 0, 0)).toBeNull();
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
      return r.add("new", from, more, f, HEADER.length, to - from, 0, HEADER.length, -1, 0, 0);
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

describe("IPv6 reassembly in the stack (RFC 8200 §4.5)", () => {
  const UDP = 17;
  const TCP = 6;
  const HOP_BY_HOP = 0;
  const FRAGMENT = 44;

  /** A UDP datagram from A_V6:5353 to B_V6:53 carrying `data`, checksum filled. */
  function udp6(data: Uint8Array): Uint8Array {
    const u = new Uint8Array(8 + data.length);
    u.set([0x14, 0xe9, 0, 53, u.length >> 8, u.length & 0xff, 0, 0]);
    u.set(data, 8);
    const addrs = new Uint8Array(32);
    addrs.set(A_V6, 0);
    addrs.set(B_V6, 16);
    const c = checksum(u, 0, u.length, pseudoHeaderV6(addrs, 0, 16, UDP, u.length)) || 0xffff;
    u[6] = c >> 8;
    u[7] = c & 0xff;
    return u;
  }

  /**
   * One fragment of `whole` [from, to) as an IPv6 packet. `nextHeader` is
   * what its Fragment header says the reassembled payload is; with
   * `hopByHop` a Hop-by-Hop Options header (PadN only) precedes the
   * Fragment header, so the unfragmentable part is 8 bytes longer.
   */
  function fragment6(whole: Uint8Array, from: number, to: number, more: boolean, nextHeader: number, hopByHop: boolean): Uint8Array {
    const ext = hopByHop ? 8 : 0;
    const p = new Uint8Array(40 + ext + 8 + (to - from));
    const plen = p.length - 40;
    p.set([0x60, 0, 0, 0, plen >> 8, plen & 0xff, hopByHop ? HOP_BY_HOP : FRAGMENT, 64]);
    p.set(A_V6, 8);
    p.set(B_V6, 24);
    if (hopByHop) p.set([FRAGMENT, 0, 1, 4, 0, 0, 0, 0], 40);
    const f = 40 + ext;
    const offField = from | (more ? 1 : 0);
    p.set([nextHeader, 0, offField >> 8, offField & 0xff, 0x12, 0x34, 0x56, 0x78], f);
    p.set(whole.subarray(from, to), f + 8);
    return p;
  }

  // The first fragment (offset 0) says UDP; the others claim TCP and carry
  // a Hop-by-Hop header the first has not. Whatever order they arrive in,
  // the datagram is UDP with the first fragment's header.
  const orders: [string, number[]][] = [
    ["in order (a later fragment completes it)", [0, 1, 2]],
    ["reverse order (the first fragment completes it)", [2, 1, 0]],
    ["first fragment in the middle", [1, 0, 2]],
  ];
  for (const [name, order] of orders) {
    test(`Next Header and unfragmentable part come from the offset-0 fragment: ${name}`, () => {
      const pair = new EnginePair();
      const data = payload(2000, 7);
      const whole = udp6(data);
      const cuts = [0, 1000, 2000, whole.length];
      const frags = [0, 1, 2].map((i) =>
        fragment6(whole, cuts[i]!, cuts[i + 1]!, i < 2, i === 0 ? UDP : TCP, i !== 0),
      );
      const meta = new RxMeta();
      for (const i of order) pair.b.stack.input(frags[i]!, 0, frags[i]!.length, meta, pair.now);
      pair.advance(10);
      expect(pair.b.udpApps.length).toBe(1);
      expect(pair.b.udpApps[0]!.datagrams).toEqual([data]);
      expect(pair.b.udpApps[0]!.flow.destPort).toBe(53);
      expect(pair.b.apps.length).toBe(0);
    });
  }
});
