// Shared test helpers for the wire-format tests: hex fixtures, a seeded
// PRNG (tests must be reproducible, so no Math.random) and assertions.
import { expect } from "bun:test";
import { Mulberry32 } from "../../../src/link/fault.ts";
import { isWireError } from "../../../src/wire/errors.ts";

/** Bytes from a hex string; whitespace and newlines are ignored. */
export function hex(s: string): Uint8Array {
  const t = s.replace(/\s+/g, "");
  if (t.length % 2 !== 0) throw new Error("odd hex length");
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(b: Uint8Array, off = 0, len = b.length - off): string {
  let s = "";
  for (let i = off; i < off + len; i++) s += b[i].toString(16).padStart(2, "0");
  return s;
}

/** The fault injector's generator (deterministic from the seed), with helpers for fuzzing. */
export class Prng extends Mulberry32 {
  /** Integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  byte(): number {
    return this.u32() & 0xff;
  }
  fill(b: Uint8Array, off = 0, len = b.length - off): Uint8Array {
    for (let i = off; i < off + len; i++) b[i] = this.u32() & 0xff;
    return b;
  }
  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }
}

/** Asserts `code` is a WireError value (and, if given, that it is one of `allowed`). */
export function expectWireError(code: unknown, allowed?: readonly number[]): void {
  expect(isWireError(code)).toBe(true);
  if (allowed !== undefined) expect(allowed).toContain(code as number);
}

/**
 * Copies `b` into a larger buffer at offset `at` (surrounded by junk bytes)
 * so tests catch code that ignores `off` or reads past `len`.
 */
export function embed(b: Uint8Array, at: number, junkAfter = 7, fill = 0xa5): Uint8Array {
  const out = new Uint8Array(at + b.length + junkAfter).fill(fill);
  out.set(b, at);
  return out;
}
