import { describe, expect, test } from "bun:test";
import {
  checksum,
  finish,
  fold,
  pseudoHeaderV4,
  pseudoHeaderV6,
  setSumKernel,
  sum16,
  sumJs,
  updateChecksum16,
  updateChecksum32,
} from "../../../src/wire/checksum.ts";
import { ipv6FromText } from "../../../src/wire/addr.ts";
import { Prng, hex } from "./helpers.ts";

/** Obvious reference: big-endian words one at a time, odd byte padded, folded. */
function refSum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  let i = off;
  for (; i + 1 < off + len; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < off + len) s += b[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

describe("sum16 / fold / finish", () => {
  test("RFC 1071 §3 numerical example", () => {
    // 00 01 f2 03 f4 f5 f6 f7 -> one's-complement sum ddf2, checksum 220d.
    const b = hex("0001f203f4f5f6f7");
    expect(sum16(b, 0, 8)).toBe(0xddf2);
    expect(finish(sum16(b, 0, 8))).toBe(0x220d);
    expect(checksum(b, 0, 8)).toBe(0x220d);
  });

  test("a well-known real IPv4 header (checksum b861)", () => {
    const h = hex("45000073000040004011b861c0a80001c0a800c7");
    expect(finish(sum16(h, 0, 20))).toBe(0); // verifies
    h[10] = 0;
    h[11] = 0;
    expect(checksum(h, 0, 20)).toBe(0xb861);
  });

  test("empty input and zero accumulator", () => {
    expect(sum16(new Uint8Array(0), 0, 0)).toBe(0);
    expect(finish(0)).toBe(0xffff);
    expect(sum16(new Uint8Array(0), 0, 0, 0x12345)).toBe(fold(0x12345));
  });

  test("matches the reference for every offset 0..9 and lengths 0..300 (and buffer byteOffsets 0..3)", () => {
    const rng = new Prng(1071);
    const backing = rng.bytes(1024);
    for (let bo = 0; bo < 4; bo++) {
      const b = backing.subarray(bo);
      for (let off = 0; off < 10; off++) {
        for (let len = 0; len <= 300; len++) {
          const got = sum16(b, off, len);
          if (got !== refSum(b, off, len)) {
            throw new Error(`mismatch byteOffset=${bo} off=${off} len=${len}: ${got} vs ${refSum(b, off, len)}`);
          }
        }
      }
    }
  });

  test("large buffers: 64 KiB random, 64 KiB of 0xff (maximum carries), odd offsets", () => {
    const rng = new Prng(7);
    const r = rng.bytes(65536 + 8);
    const ff = new Uint8Array(65536 + 8).fill(0xff);
    for (const b of [r, ff]) {
      for (const off of [0, 1, 2, 3, 5]) {
        for (const len of [65536, 65535, 1460, 1461, 9000]) {
          expect(sum16(b, off, len)).toBe(refSum(b, off, len));
        }
      }
    }
    expect(sum16(ff, 0, 65536)).toBe(0xffff);
  });

  test("accumulators chain across even-length pieces", () => {
    const rng = new Prng(99);
    const b = rng.bytes(3001);
    for (let i = 0; i < 200; i++) {
      const cut = 2 * rng.int(1500);
      const whole = sum16(b, 0, 3001);
      expect(sum16(b, cut, 3001 - cut, sum16(b, 0, cut))).toBe(whole);
      expect(fold(sum16(b, 0, cut) + sum16(b, cut, 3001 - cut))).toBe(whole);
    }
  });

  test("fold handles accumulators beyond 2^32 exactly", () => {
    // 2^16 ≡ 1 (mod 0xffff): the folded value is the residue mod 0xffff, with 0xffff for non-zero multiples.
    const rng = new Prng(5);
    for (let i = 0; i < 1000; i++) {
      const v = rng.u32() * 2 ** 20 + rng.u32(); // up to ~2^52
      const r = v % 0xffff;
      expect(fold(v)).toBe(r === 0 ? 0xffff : r);
    }
    expect(fold(0)).toBe(0);
    expect(fold(0xffff)).toBe(0xffff);
    expect(fold(0x10000)).toBe(1);
    expect(fold(0xffffffff)).toBe(0xffff);
    expect(fold(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER % 0xffff || 0xffff);
  });

  test("sum16 accepts a huge incoming accumulator", () => {
    const b = hex("0001f203f4f5f6f7");
    expect(sum16(b, 0, 8, 0xffff * 12345)).toBe(0xddf2);
  });
});

describe("pseudo headers", () => {
  test("IPv4 pseudo header equals summing its 12 bytes", () => {
    const rng = new Prng(3);
    for (let i = 0; i < 500; i++) {
      const src = rng.u32();
      const dst = rng.u32();
      const proto = rng.byte();
      const len = rng.int(65536);
      const ph = new Uint8Array(12);
      new DataView(ph.buffer).setUint32(0, src);
      new DataView(ph.buffer).setUint32(4, dst);
      ph[9] = proto;
      new DataView(ph.buffer).setUint16(10, len);
      expect(fold(pseudoHeaderV4(src, dst, proto, len))).toBe(refSum(ph, 0, 12));
    }
  });

  test("IPv6 pseudo header equals summing its 40 bytes (RFC 8200 §8.1 layout)", () => {
    const rng = new Prng(4);
    for (let i = 0; i < 500; i++) {
      const buf = rng.bytes(64);
      const len = rng.u32();
      const proto = rng.byte();
      const ph = new Uint8Array(40);
      ph.set(buf.subarray(3, 19), 0);
      ph.set(buf.subarray(30, 46), 16);
      new DataView(ph.buffer).setUint32(32, len);
      ph[39] = proto;
      expect(fold(pseudoHeaderV6(buf, 3, 30, proto, len))).toBe(refSum(ph, 0, 40));
    }
  });

  test("fd00::100 -> fd00::2 UDP pseudo header", () => {
    const a = new Uint8Array(32);
    a.set(ipv6FromText("fd00::100")!, 0);
    a.set(ipv6FromText("fd00::2")!, 16);
    // 0xfd00*2 + 0x0100 + 0x0002 + 17 + 15
    expect(fold(pseudoHeaderV6(a, 0, 16, 17, 15))).toBe(fold(0xfd00 * 2 + 0x100 + 2 + 17 + 15));
  });
});

describe("RFC 1624 incremental update", () => {
  test("RFC 1624 §4 example: eqn. 3 gives 0x0000", () => {
    expect(updateChecksum16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  test("16-bit word changes equal full recomputation (property, seeded)", () => {
    const rng = new Prng(1624);
    for (let iter = 0; iter < 5000; iter++) {
      const n = 2 * (1 + rng.int(40));
      const b = rng.bytes(n);
      // Occasionally use low-entropy data to hit 0x0000/0xffff edges.
      if (iter % 7 === 0) b.fill(rng.int(2) ? 0xff : 0, 0, n - 2);
      const c0 = checksum(b, 0, n);
      const w = 2 * rng.int(n / 2);
      const oldWord = (b[w] << 8) | b[w + 1];
      const newWord = iter % 11 === 0 ? 0xffff - oldWord : rng.int(65536);
      b[w] = newWord >>> 8;
      b[w + 1] = newWord & 0xff;
      const full = checksum(b, 0, n);
      const inc = updateChecksum16(c0, oldWord, newWord);
      if (full === 0xffff) {
        // Only an all-zero input sums to 0 and checksums to 0xffff; eqn. 3
        // yields the equivalent 0x0000 (one's complement -0 vs +0).
        expect([0, 0xffff]).toContain(inc);
      } else {
        expect(inc).toBe(full);
      }
    }
  });

  test("32-bit field changes equal full recomputation (addresses, sequence numbers)", () => {
    const rng = new Prng(32);
    for (let iter = 0; iter < 5000; iter++) {
      const n = 4 * (2 + rng.int(15));
      const b = rng.bytes(n);
      const c0 = checksum(b, 0, n);
      const w = 4 * rng.int(n / 4);
      const dv = new DataView(b.buffer);
      const oldV = dv.getUint32(w);
      const newV = rng.u32();
      dv.setUint32(w, newV);
      const full = checksum(b, 0, n);
      const inc = updateChecksum32(c0, oldV, newV);
      if (full === 0xffff) expect([0, 0xffff]).toContain(inc);
      else expect(inc).toBe(full);
    }
  });

  test("incremental TTL decrement of a real header stays valid", () => {
    const h = hex("45000073000040004011b861c0a80001c0a800c7");
    const oldWord = (h[8] << 8) | h[9];
    h[8]--;
    const c = updateChecksum16(0xb861, oldWord, (h[8] << 8) | h[9]);
    h[10] = c >>> 8;
    h[11] = c & 0xff;
    expect(finish(sum16(h, 0, 20))).toBe(0);
  });
});

describe("setSumKernel hook", () => {
  test("a replacement kernel is used at and above minLen, JS below", () => {
    let calls = 0;
    setSumKernel((b, off, len) => {
      calls++;
      return sumJs(b, off, len);
    }, 100);
    try {
      const b = new Prng(8).bytes(500);
      expect(sum16(b, 1, 99)).toBe(refSum(b, 1, 99));
      expect(calls).toBe(0);
      expect(sum16(b, 1, 400)).toBe(refSum(b, 1, 400));
      expect(calls).toBe(1);
    } finally {
      setSumKernel(null);
    }
    const b = new Prng(9).bytes(500);
    expect(sum16(b, 0, 500)).toBe(refSum(b, 0, 500));
    expect(calls).toBe(1);
  });
});
