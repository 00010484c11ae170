// A WASM SIMD kernel for the Internet checksum, and the memory it works in.
//
// The kernel sums 16 bytes per step with i32x4.extadd_pairwise_i16x8_u
// (eight 16-bit words into four 32-bit lanes), then the tail with scalar
// loads, folds to 16 bits and byte-swaps: WASM loads are little-endian,
// and the one's-complement sum of byte-swapped words is the byte-swap of
// the sum (RFC 1071 §2(B)), so no per-word swapping is needed.
//
// It can only read its own linear memory. Copying a frame in first would
// cost about what the kernel saves, so the buffers that frames live in (the
// device's receive buffer, the engine's transmit buffer) are allocated
// inside that memory with allocChecksumBuffer(); sum16() uses the kernel for
// those and the JS loop for everything else. The memory never grows, so
// views into it stay valid and never move.
//
// The module is emitted here byte by byte (it is a few hundred bytes; no
// toolchain needed), and is optional: without WebAssembly SIMD everything
// falls back to the JS loop.
import { setSumKernel } from "./checksum.ts";

/** 64 KiB pages: room for a 64 KiB receive buffer, the transmit buffers and slack. */
const PAGES = 8;
/** Below this, crossing into WASM costs more than the JS loop (measured). */
const MIN_LEN = 256;
/** Lanes would overflow past 2^32 / (2 * 0xffff) steps of 16 bytes: about 512 KiB. */
const MAX_CHUNK = 256 * 1024;

const I32 = 0x7f;
const V128 = 0x7b;

/** Unsigned LEB128. */
function u(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (i32.const immediates). */
function s(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...u(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...u(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const b = [...new TextEncoder().encode(text)];
  return [...u(b.length), ...b];
}

// Instructions used below.
const get = (i: number) => [0x20, ...u(i)];
const set = (i: number) => [0x21, ...u(i)];
const i32c = (n: number) => [0x41, ...s(n)];
const simd = (op: number, ...imm: number[]) => [0xfd, ...u(op), ...imm];
const ADD = 0x6a;
const AND = 0x71;
const OR = 0x72;
const SHL = 0x74;
const SHR_U = 0x76;
const GE_U = 0x4f;
const LT_U = 0x49;

/** (func (param p i32) (param n i32) (result i32)): folded, byte-swapped sum of memory[p, p+n). */
function kernelBody(): number[] {
  // params 0 p, 1 n; locals 2 acc:v128, 3 end:i32, 4 vend:i32, 5 sum:i32
  const P = 0;
  const N = 1;
  const ACC = 2;
  const END = 3;
  const VEND = 4;
  const SUM = 5;
  const code = [
    // end = p + n; vend = p + (n & ~15)
    ...get(P), ...get(N), ADD, ...set(END),
    ...get(P), ...get(N), ...i32c(~15), AND, ADD, ...set(VEND),
    // while (p < vend) { acc += extadd_pairwise_u(load(p)); p += 16 }
    0x02, 0x40,
    0x03, 0x40,
    ...get(P), ...get(VEND), GE_U, 0x0d, 0x01,
    ...get(ACC), ...get(P), ...simd(0x00, 0x00, 0x00), ...simd(0x7f), ...simd(0xae), ...set(ACC),
    ...get(P), ...i32c(16), ADD, ...set(P),
    0x0c, 0x00,
    0x0b,
    0x0b,
    // lanes = (acc & 0xffff) + (acc >> 16): each <= 0x1fffe, four fit in an i32
    ...get(ACC), ...i32c(0xffff), ...simd(0x11), ...simd(0x4e),
    ...get(ACC), ...i32c(16), ...simd(0xad),
    ...simd(0xae), ...set(ACC),
    ...get(ACC), ...simd(0x1b, 0), ...get(ACC), ...simd(0x1b, 1), ADD,
    ...get(ACC), ...simd(0x1b, 2), ADD, ...get(ACC), ...simd(0x1b, 3), ADD, ...set(SUM),
    // while (p + 1 < end) { sum += load16_u(p); p += 2 }
    0x02, 0x40,
    0x03, 0x40,
    ...get(P), ...i32c(1), ADD, ...get(END), GE_U, 0x0d, 0x01,
    ...get(SUM), ...get(P), 0x2f, 0x01, 0x00, ADD, ...set(SUM),
    ...get(P), ...i32c(2), ADD, ...set(P),
    0x0c, 0x00,
    0x0b,
    0x0b,
    // an odd last byte is the high byte of a big-endian word: here, a low byte
    ...get(P), ...get(END), LT_U,
    0x04, 0x40,
    ...get(SUM), ...get(P), 0x2d, 0x00, 0x00, ADD, ...set(SUM),
    0x0b,
    // fold twice, then swap the two bytes back to network order
    ...get(SUM), ...i32c(0xffff), AND, ...get(SUM), ...i32c(16), SHR_U, ADD, ...set(SUM),
    ...get(SUM), ...i32c(0xffff), AND, ...get(SUM), ...i32c(16), SHR_U, ADD, ...set(SUM),
    ...get(SUM), ...i32c(0xff), AND, ...i32c(8), SHL, ...get(SUM), ...i32c(8), SHR_U, OR,
    0x0b,
  ];
  const locals = vec([
    [1, V128],
    [3, I32],
  ]);
  const body = [...locals, ...code];
  return [...u(body.length), ...body];
}

function moduleBytes(): Uint8Array {
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32]]), ...vec([[I32]])]])),
    ...section(2, vec([[...name("e"), ...name("m"), 0x02, 0x01, ...u(PAGES), ...u(PAGES)]])),
    ...section(3, vec([[0x00]])),
    ...section(7, vec([[...name("sum"), 0x00, 0x00]])),
    ...section(10, vec([kernelBody()])),
  ]);
}

interface Kernel {
  memory: ArrayBuffer;
  sum: (p: number, n: number) => number;
}

let kernel: Kernel | null | undefined;
let next = 0;

function load(): Kernel | null {
  if (kernel !== undefined) return kernel;
  try {
    const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()), { e: { m: memory } });
    kernel = { memory: memory.buffer, sum: instance.exports.sum as (p: number, n: number) => number };
  } catch {
    kernel = null; // no WebAssembly SIMD here: the JS loop does it all
  }
  return kernel;
}

/**
 * Turns the kernel on for buffers that live in its memory. Returns false
 * (and changes nothing) where WebAssembly SIMD is not available.
 */
export function enableWasmChecksum(): boolean {
  const k = load();
  if (k === null) return false;
  const mem = k.memory;
  const sum = k.sum;
  setSumKernel((buf, off, len) => {
    if (buf.buffer !== mem) return -1;
    let acc = 0;
    let p = buf.byteOffset + off;
    while (len > MAX_CHUNK) {
      acc += sum(p, MAX_CHUNK);
      p += MAX_CHUNK;
      len -= MAX_CHUNK;
    }
    return acc + sum(p, len);
  }, MIN_LEN);
  return true;
}

/**
 * A buffer for frames: inside the kernel's memory while it has room (so
 * its checksums run in WASM), else an ordinary one. Never freed: for the
 * few long-lived buffers of a running stack.
 */
export function allocChecksumBuffer(size: number): Uint8Array {
  const k = load();
  const start = (next + 15) & ~15;
  if (k === null || start + size > k.memory.byteLength) return new Uint8Array(new ArrayBuffer(size));
  next = start + size;
  return new Uint8Array(k.memory, start, size);
}

/** True for a buffer allocChecksumBuffer placed in the kernel's memory (space that is never given back). */
export function inChecksumMemory(b: Uint8Array): boolean {
  return kernel != null && b.buffer === kernel.memory;
}
