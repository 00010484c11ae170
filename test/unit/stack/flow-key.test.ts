// The flow tables' hash is keyed: a guest that knows the code cannot pick
// tuples that share a bucket. The attack is built here against the public
// hash the tables used before (a multiply-xorshift mix, invertible, so any
// number of tuples can be solved for one hash value), and the cost of a
// lookup is counted in probes: links walked in a bucket's chain.
import { describe, expect, test } from "bun:test";
import { FlowTable, type FlowTuple } from "../../../src/stack/flow-key.ts";
import { FlowSecret, SipHash } from "../../../src/stack/secret.ts";
import { keyFromSeed } from "../../support/engine-pair.ts";

// ---- the attacker's model: the unkeyed hash of the old flow-key.ts ----

const K = 0x9e3779b1;
function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, K);
  return h ^ (h >>> 15);
}
function oldHashV4(l: number, lp: number, r: number, rp: number): number {
  return mix(mix(mix(0x2545f491, l), r), (lp << 16) | rp);
}
function oldHashV6(l: Uint8Array, lp: number, r: Uint8Array, rp: number): number {
  const w = (b: Uint8Array, i: number) => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
  let h = 0x6a09e667;
  for (let i = 0; i < 16; i += 4) h = mix(mix(h, w(l, i)), w(r, i));
  return mix(h, (lp << 16) | rp);
}
/** The 32 bits v with mix(h, v) === target: the mix undone step by step. */
function solve(h: number, target: number): number {
  const x = target ^ (target >>> 15) ^ (target >>> 30);
  let inv = K;
  for (let i = 0; i < 5; i++) inv = Math.imul(inv, 2 - Math.imul(K, inv));
  return Math.imul(x, inv) ^ h;
}

const TARGET = 0x12345678;
const GUEST = 0x0a000264;
const N = 20_000;

interface Flow extends FlowTuple {
  nextInBucket: Flow | null;
}

function flowV4(destV4: number, destPort: number, guestPort: number): Flow {
  return { family: 4, destV4, guestV4: GUEST, destV6: null, guestV6: null, destPort, guestPort, nextInBucket: null };
}

/** N IPv4 tuples (one per destination address the guest sends to) that all had the hash TARGET. */
function collidingV4(): Flow[] {
  const out: Flow[] = [];
  for (let i = 0; i < N; i++) {
    const dest = (0x0b000000 + i) >>> 0;
    const p = solve(mix(mix(0x2545f491, dest), GUEST), TARGET) >>> 0;
    out.push(flowV4(dest, p >>> 16, p & 0xffff));
  }
  return out;
}

function collidingV6(): Flow[] {
  const guest = Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0);
  const out: Flow[] = [];
  for (let i = 0; i < N; i++) {
    const dest = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i >>> 8, i & 0xff);
    let h = 0x6a09e667;
    const w = (b: Uint8Array, j: number) => ((b[j]! << 24) | (b[j + 1]! << 16) | (b[j + 2]! << 8) | b[j + 3]!) >>> 0;
    for (let j = 0; j < 16; j += 4) h = mix(mix(h, w(dest, j)), w(guest, j));
    const p = solve(h, TARGET) >>> 0;
    out.push({ family: 6, destV4: 0, guestV4: 0, destV6: dest, guestV6: guest, destPort: p >>> 16, guestPort: p & 0xffff, nextInBucket: null });
  }
  return out;
}

/** Bucket sizes, read from the flows' chain links. */
function buckets(flows: Flow[]): number[] {
  const linked = new Set<Flow>();
  for (const f of flows) if (f.nextInBucket !== null) linked.add(f.nextInBucket);
  const sizes: number[] = [];
  for (const f of flows) {
    if (linked.has(f)) continue;
    let n = 0;
    for (let x: Flow | null = f; x !== null; x = x.nextInBucket) n++;
    sizes.push(n);
  }
  return sizes;
}

/** Probes to find every flow once: the k-th flow of a chain takes k. */
const probes = (sizes: number[]): number => sizes.reduce((a, s) => a + (s * (s + 1)) / 2, 0);

describe("flow table hash", () => {
  test("the attack set is right: all its tuples had one public hash", () => {
    const v4 = collidingV4();
    expect(new Set(v4.map((f) => oldHashV4(f.destV4, f.destPort, f.guestV4, f.guestPort))).size).toBe(1);
    expect(new Set(v4.map((f) => `${f.destV4}/${f.destPort}/${f.guestPort}`)).size).toBe(N);
    const v6 = collidingV6();
    expect(new Set(v6.map((f) => oldHashV6(f.destV6!, f.destPort, f.guestV6!, f.guestPort))).size).toBe(1);
  });

  for (const family of [4, 6] as const) {
    test(`IPv${family}: ${N} tuples built to collide spread over buckets; finding each costs about one probe`, () => {
      const flows = family === 4 ? collidingV4() : collidingV6();
      const table = new FlowTable<Flow>(new FlowSecret(keyFromSeed(7)));
      for (const f of flows) table.insert(f);
      const sizes = buckets(flows);
      // Unkeyed: one bucket of 20000 and 2e8 probes. Keyed: about N / 2^32
      // chance per pair to share a bucket.
      expect(Math.max(...sizes)).toBeLessThanOrEqual(3);
      expect(probes(sizes)).toBeLessThan(N * 1.01);
      for (const f of flows) {
        const found =
          family === 4
            ? table.findV4(f.destV4, f.destPort, f.guestV4, f.guestPort)
            : table.findV6(f.destV6!, 0, f.destPort, f.guestV6!, 0, f.guestPort);
        expect(found).toBe(f);
      }
      for (const f of flows.slice(0, 1000)) expect(table.remove(f)).toBe(true);
      expect(table.size).toBe(N - 1000);
      expect(table.has(flows[0]!)).toBe(false);
      expect(table.has(flows[1000]!)).toBe(true);
    });
  }

  test("the hash depends on the key: the same tuples fall into other buckets under another key", () => {
    const a = new FlowSecret(keyFromSeed(1));
    const b = new FlowSecret(keyFromSeed(2));
    let same = 0;
    for (let i = 0; i < 1000; i++) if (a.flowHashV4(GUEST, 40000 + i, 0x08080808, 53) === b.flowHashV4(GUEST, 40000 + i, 0x08080808, 53)) same++;
    expect(same).toBe(0);
    // ...and with one key, always the same (the tables stay deterministic in tests).
    expect(new FlowSecret(keyFromSeed(1)).flowHashV4(GUEST, 40000, 0x08080808, 53)).toBe(a.flowHashV4(GUEST, 40000, 0x08080808, 53));
  });

  test("SipHash from words (hash12, hash36) equals SipHash of the same bytes", () => {
    const s = new SipHash(keyFromSeed(3));
    const bytes = new Uint8Array(36);
    const le = (v: number, at: number) => new DataView(bytes.buffer).setUint32(at, v >>> 0, true);
    for (let i = 0; i < 200; i++) {
      const a = Math.imul(i, 0x9e3779b1);
      const b = Math.imul(i + 7, 0x85ebca6b);
      const c = Math.imul(i + 13, 0xc2b2ae35);
      le(a, 0);
      le(b, 4);
      le(c, 8);
      s.hash(bytes, 12);
      expect(s.hash12(a, b, c)).toBe(s.lo);
      for (let j = 0; j < 32; j++) bytes[j] = (i * 31 + j * 17) & 0xff;
      le(c, 32);
      s.hash(bytes, 36);
      const lo = s.lo;
      expect(s.hash36(bytes, 0, bytes, 16, c)).toBe(lo);
    }
  });
});
