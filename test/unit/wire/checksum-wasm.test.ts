// The WASM SIMD checksum kernel against the JS loop: same folded sums for
// every offset parity and length, and buffers outside its memory still
// summed (by the JS loop).
import { describe, expect, test } from "bun:test";
import { allocChecksumBuffer, enableWasmChecksum } from "../../../src/wire/checksum-wasm.ts";
import { checksum, fold, sum16, sumJs } from "../../../src/wire/checksum.ts";

/** Zero and 0xffff are the same one's-complement value. */
const same = (a: number, b: number) => a === b || (a % 0xffff === 0 && b % 0xffff === 0);

describe("WASM SIMD checksum kernel", () => {
  const enabled = enableWasmChecksum();

  test("is available on this runtime", () => {
    expect(enabled).toBe(true);
  });

  test("agrees with the JS loop on random data, offsets and lengths (seeded)", () => {
    const buf = allocChecksumBuffer(70_000);
    expect(buf.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < buf.length; i++) buf[i] = (rnd() * 256) | 0;
    for (let t = 0; t < 5000; t++) {
      const off = (rnd() * 2000) | 0;
      const len = t < 600 ? t : (rnd() * 66_000) | 0;
      if (off + len > buf.length) continue;
      expect(same(sum16(buf, off, len), fold(sumJs(buf, off, len)))).toBe(true);
    }
  });

  test("all-ones data and odd tails fold correctly", () => {
    const buf = allocChecksumBuffer(4099);
    buf.fill(0xff);
    for (const len of [256, 257, 1023, 4096, 4099]) expect(same(sum16(buf, 0, len), fold(sumJs(buf, 0, len)))).toBe(true);
    buf.fill(0);
    buf[4098] = 0xab; // an odd last byte is a high byte
    expect(sum16(buf, 0, 4099)).toBe(0xab00);
  });

  test("a buffer outside its memory is summed by the JS loop", () => {
    const plain = new Uint8Array(1000).fill(7);
    expect(same(sum16(plain, 1, 999), fold(sumJs(plain, 1, 999)))).toBe(true);
    // A known answer (RFC 1071 §3 example): 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2.
    const ex = allocChecksumBuffer(512);
    ex.fill(0);
    ex.set([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(sum16(ex, 0, 512)).toBe(0xddf2);
    expect(checksum(ex, 0, 512)).toBe(~0xddf2 & 0xffff);
  });
});
