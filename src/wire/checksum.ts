/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Terminology used throughout src/wire/:
 *  - an *accumulator* is a non-negative integer holding a one's-complement
 *    sum of 16-bit big-endian words that has not necessarily been folded;
 *    accumulators from several pieces (pseudo header, header, payload) may
 *    simply be added together with `+` as long as every piece except the
 *    last has an even length (RFC 1071 §2(A): the sum is associative and
 *    commutative, but an odd-length piece would shift the byte pairing of
 *    everything after it);
 *  - `fold(acc)` reduces an accumulator to 16 bits by adding the carries
 *    back in ("end-around carry");
 *  - `finish(acc)` is the value that goes on the wire: the one's complement
 *    of the folded sum.
 *
 * Verification: summing a received header/segment *including* its checksum
 * field (plus pseudo header) and folding yields 0xffff when the checksum is
 * right, i.e. `finish(acc) === 0`.
 *
 * Speed. The bulk loop reads the buffer as 32-bit little-endian words
 * through a cached Uint32Array and adds them as doubles (exact up to 2^53,
 * we fold every 2^16 words), then byte-swaps the folded result. This relies
 * on RFC 1071 §2(B), "byte order independence": the one's-complement sum of
 * byte-swapped words is the byte-swap of the sum. Summing 32-bit words and
 * folding gives the same result as summing 16-bit words, because
 * 2^16 ≡ 1 (mod 2^16 - 1).
 *
 * Measured with Bun 1.4.5 (JavaScriptCore) on this machine (AMD EPYC, 2
 * vCPU), same buffer repeatedly, GB/s for 65536 B / 1460 B:
 *   bytes, one 16-bit word per iteration ........... 3.3 / 3.4
 *   bytes, unrolled 16 B per iteration .............. 6.7 / 6.6
 *   bytes, separate high/low byte sums .............. 8.6 / 8.3
 *   DataView.getUint32 (big-endian), unrolled ....... 9.5 / 6.3
 *   Uint32Array, split halves into int32 sums ....... 12.4 / 9.0
 *   Uint16Array, unrolled x8 ........................ 15.2 / 10.9
 *   Uint32Array, double accumulator, unrolled x8 .... 22.5 / 11.8  <- used
 * (those figures allocate a fresh typed-array view per call; sum16() below
 * caches the view per ArrayBuffer and measured 23.5 / 17.4 GB/s at offsets
 * 0, 1 and 2 alike. Inputs under 80 bytes take a plain word loop instead,
 * since the aligned path costs ~20 ns of setup: a 20-byte IPv4 header sums
 * in ~6 ns, 40 bytes in ~12 ns.)
 *
 * The WASM SIMD kernel of checksum-wasm.ts takes over, through
 * setSumKernel(), for buffers that live in its memory.
 */

/**
 * A bulk summing kernel: returns the one's-complement sum (an accumulator,
 * any non-negative safe integer, folded or not) of the big-endian 16-bit
 * words of buf[off, off+len), where the word pairing starts at `off` and an
 * odd final byte is padded with a zero low byte (RFC 1071 §4.1); or -1
 * when it cannot read this buffer (the JS loop then does).
 */
export type SumKernel = (buf: Uint8Array, off: number, len: number) => number;

/** Optional replacement for sumJs (e.g. WASM SIMD); used for len >= kernelMinLen. */
let kernel: SumKernel | null = null;
let kernelMinLen = 0;

/**
 * Installs (or with null, removes) a bulk kernel. Short inputs below
 * `minLen` keep using the JS loop, since crossing into WASM and copying into
 * its memory costs more than summing a few dozen bytes.
 */
export function setSumKernel(k: SumKernel | null, minLen = 0): void {
  kernel = k;
  kernelMinLen = minLen;
}

/**
 * One's-complement sum of the big-endian 16-bit words of buf[off, off+len)
 * added to `acc`. Returns an accumulator folded to at most 16 bits.
 *
 * The word pairing starts at `off`, whatever its alignment in memory: a TCP
 * payload may well start at an odd byte offset in a frame. An odd `len`
 * pads the last byte with a zero low byte (RFC 1071 §4.1), so only the last
 * piece of a multi-piece sum may have an odd length.
 *
 * `acc` must be a non-negative integer (any safe integer; it is folded).
 * The caller guarantees off/len are inside buf (this is called on lengths
 * that views have already validated).
 */
export function sum16(buf: Uint8Array, off: number, len: number, acc = 0): number {
  let s = kernel !== null && len >= kernelMinLen ? kernel(buf, off, len) : -1;
  if (s < 0) s = sumJs(buf, off, len);
  return fold(s + acc);
}

/** Folds an accumulator to 16 bits with end-around carry. Result is in [0, 0xffff]. */
export function fold(acc: number): number {
  // Above 2^32 the int32 bit operators would truncate; reduce with exact
  // double arithmetic first (2^16 ≡ 1 mod 0xffff, so splitting into
  // high/low parts and adding preserves the one's-complement value).
  while (acc > 0xffffffff) acc = (acc % 0x10000) + Math.floor(acc / 0x10000);
  acc = (acc & 0xffff) + (acc >>> 16); // <= 0x1fffe
  acc = (acc & 0xffff) + (acc >>> 16); // <= 0xffff
  return acc;
}

/** The checksum field value for an accumulator: ~fold(acc) & 0xffff. */
export function finish(acc: number): number {
  return ~fold(acc) & 0xffff;
}

/** Convenience: the checksum of buf[off, off+len) plus `acc`, ready to store. */
export function checksum(buf: Uint8Array, off: number, len: number, acc = 0): number {
  return finish(sum16(buf, off, len, acc));
}

/**
 * Accumulator of the IPv4 pseudo header used by TCP and UDP (RFC 9293
 * §3.1, RFC 768): source, destination, zero, protocol, upper-layer length.
 * `src`/`dst` are uint32 addresses, `len` is the TCP/UDP length in bytes.
 */
export function pseudoHeaderV4(src: number, dst: number, proto: number, len: number): number {
  return (
    (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + (proto & 0xff) + (len >>> 16) + (len & 0xffff)
  );
}

/**
 * Accumulator of the IPv6 pseudo header (RFC 8200 §8.1): source and
 * destination addresses (16 bytes each, read from `buf`), 32-bit
 * upper-layer packet length, three zero bytes and the next header value
 * (the upper-layer protocol, not the first extension header).
 */
export function pseudoHeaderV6(buf: Uint8Array, srcOff: number, dstOff: number, proto: number, len: number): number {
  let s = (len >>> 16) + (len & 0xffff) + (proto & 0xff);
  for (let i = 0; i < 16; i += 2) {
    s += ((buf[srcOff + i] << 8) | buf[srcOff + i + 1]) + ((buf[dstOff + i] << 8) | buf[dstOff + i + 1]);
  }
  return s;
}

/**
 * RFC 1624 eqn. 3 incremental update: the new checksum after one 16-bit
 * word of the covered data changed from `oldWord` to `newWord`:
 *   HC' = ~(~HC + ~m + m')
 * Eqn. 3 (not the older eqn. 2 of RFC 1141) gives exactly what a full
 * recomputation gives, including never producing 0xffff for data whose
 * full sum is non-zero. Callers must not "update" a UDP checksum of 0
 * (meaning "no checksum" over IPv4).
 */
export function updateChecksum16(oldCsum: number, oldWord: number, newWord: number): number {
  const s = (~oldCsum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(s) & 0xffff;
}

/** As updateChecksum16 for a 32-bit field (an IPv4 address, a TCP sequence number). */
export function updateChecksum32(oldCsum: number, oldU32: number, newU32: number): number {
  const s =
    (~oldCsum & 0xffff) +
    (~(oldU32 >>> 16) & 0xffff) +
    (~oldU32 & 0xffff) +
    (newU32 >>> 16) +
    (newU32 & 0xffff);
  return ~fold(s) & 0xffff;
}

// ---------------------------------------------------------------------------
// JS bulk loop

/** Host byte order: the Uint32Array fast path reads words in host order. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Below this the setup for the aligned word loop is not worth it. */
const WORD_PATH_MIN = 80;

/** Words per chunk: 2^16 words of < 2^32 each keep the double sum below 2^48, far from 2^53. */
const CHUNK_WORDS = 0x10000;

// Two-entry cache of whole-buffer Uint32Array views. Frames come from a
// handful of long-lived buffers (the receive ring, the transmit buffer), so
// this avoids creating a typed-array view per call while allowing rx and tx
// to alternate without thrashing.
let cacheAb0: ArrayBufferLike | null = null;
let cacheW0: Uint32Array = new Uint32Array(0);
let cacheAb1: ArrayBufferLike | null = null;
let cacheW1: Uint32Array = new Uint32Array(0);

function wordsOf(ab: ArrayBufferLike): Uint32Array {
  if (ab === cacheAb0) return cacheW0;
  if (ab === cacheAb1) {
    // Move to the front so the two most recent buffers stay cached.
    const w = cacheW1;
    cacheAb1 = cacheAb0;
    cacheW1 = cacheW0;
    cacheAb0 = ab;
    cacheW0 = w;
    return w;
  }
  const w = new Uint32Array(ab, 0, ab.byteLength >>> 2);
  cacheAb1 = cacheAb0;
  cacheW1 = cacheW0;
  cacheAb0 = ab;
  cacheW0 = w;
  return w;
}

function swap16(x: number): number {
  return ((x & 0xff) << 8) | (x >>> 8);
}

/** Sum of w[k, k+n) as a double, folded to 16 bits. */
function sumWords(w: Uint32Array, k: number, n: number): number {
  let total = 0;
  while (n > 0) {
    const m = n < CHUNK_WORDS ? n : CHUNK_WORDS;
    const end = k + m;
    const end8 = k + (m & ~7);
    let s = 0;
    // Unrolled by 8: JSC keeps the additions in one basic block and the
    // typed-array bounds checks hoist well; deeper unrolling did not help.
    for (; k < end8; k += 8) {
      s += w[k] + w[k + 1] + w[k + 2] + w[k + 3] + w[k + 4] + w[k + 5] + w[k + 6] + w[k + 7];
    }
    for (; k < end; k++) s += w[k];
    total = fold(total + s);
    n -= m;
  }
  return total;
}

/** The JS kernel. See SumKernel for the contract. */
export function sumJs(buf: Uint8Array, off: number, len: number): number {
  let s = 0;
  let i = off;
  const end = off + len;
  if (len >= WORD_PATH_MIN) {
    const base = buf.byteOffset;
    // Head: byte by byte until the absolute address is 4-aligned. Bytes at
    // an even distance from `off` are high bytes of their word.
    while (((base + i) & 3) !== 0) {
      s += ((i - off) & 1) === 0 ? buf[i] << 8 : buf[i];
      i++;
    }
    const n = (end - i) >>> 2;
    let b = sumWords(wordsOf(buf.buffer), (base + i) >>> 2, n);
    // Reading little-endian words swaps each pair; starting the pairing one
    // byte late (odd head) swaps them again. RFC 1071 §2(B): fix the
    // folded result with one byte swap per reason.
    if (LITTLE_ENDIAN !== (((i - off) & 1) === 1)) b = swap16(b);
    s += b;
    i += n << 2;
    // Tail: at most 3 bytes, parity relative to `off`.
    for (; i < end; i++) s += ((i - off) & 1) === 0 ? buf[i] << 8 : buf[i];
    return s;
  }
  // Short input: plain big-endian word loop (s < 16 * 0xffff, no overflow).
  for (; i + 1 < end; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (i < end) s += buf[i] << 8;
  return s;
}
