// The fault-injecting device middleware: spec parsing, determinism, and
// each fault on its own.
import { describe, expect, test } from "bun:test";
import { FaultInjector, NO_FAULTS, parseFaultSpec, formatFaultSpec, type FaultConfig } from "../../../src/link/fault.ts";
import { RxMeta, TX_HEADROOM, TxMeta, type FrameReceiver, type FrameSink } from "../../../src/stack/device.ts";

class Capture implements FrameSink, FrameReceiver {
  frames: Uint8Array[] = [];
  metas: Array<TxMeta | null> = [];
  headroomOk = true;
  batches = 0;
  transmit(buf: Uint8Array, off: number, len: number, meta: TxMeta | null): void {
    if (off < TX_HEADROOM) this.headroomOk = false;
    this.frames.push(buf.slice(off, off + len));
    this.metas.push(meta);
  }
  receive(buf: Uint8Array, off: number, len: number, _meta: RxMeta): void {
    this.frames.push(buf.slice(off, off + len));
  }
  batchEnd(): void {
    this.batches++;
  }
}

/** Frame i: 64 bytes, first 4 bytes = i, rest a fixed pattern. */
function frame(i: number): Uint8Array {
  const b = new Uint8Array(TX_HEADROOM + 64);
  const f = b.subarray(TX_HEADROOM);
  f[0] = i >>> 24;
  f[1] = i >>> 16;
  f[2] = i >>> 8;
  f[3] = i;
  for (let k = 4; k < 64; k++) f[k] = k;
  return b;
}

function idOf(f: Uint8Array): number {
  return ((f[0]! << 24) | (f[1]! << 16) | (f[2]! << 8) | f[3]!) >>> 0;
}

function runTx(cfg: FaultConfig, n: number): { cap: Capture; inj: FaultInjector } {
  let now = 0;
  const cap = new Capture();
  const inj = new FaultInjector(cfg, cap, "ip", () => now);
  for (let i = 0; i < n; i++) {
    const b = frame(i);
    inj.transmit(b, TX_HEADROOM, 64, null);
    b.fill(0xee); // the caller reuses its buffer at once
    now += 1;
    inj.poll(now);
  }
  inj.flush();
  return { cap, inj };
}

describe("parseFaultSpec", () => {
  test("full spec", () => {
    const c = parseFaultSpec("loss=0.05,reorder=0.05,dup=0.02,corrupt=0.01,seed=7");
    expect(c).toEqual({ loss: 0.05, reorder: 0.05, dup: 0.02, corrupt: 0.01, seed: 7, delay: 10 });
    expect(parseFaultSpec(formatFaultSpec(c))).toEqual(c);
  });

  test("empty and partial specs default the rest", () => {
    expect(parseFaultSpec("")).toEqual(NO_FAULTS);
    expect(parseFaultSpec(" loss=1 , delay=0 ")).toEqual({ ...NO_FAULTS, loss: 1, delay: 0 });
  });

  test("errors name the bad part", () => {
    expect(() => parseFaultSpec("loss=abc")).toThrow(/bad value "abc" for loss/);
    expect(() => parseFaultSpec("loss=1.5")).toThrow(/bad value "1.5" for loss/);
    expect(() => parseFaultSpec("dup=-0.1")).toThrow(/bad value "-0.1" for dup/);
    expect(() => parseFaultSpec("corrupt=")).toThrow(/bad value "" for corrupt/);
    expect(() => parseFaultSpec("reorder=0x1")).toThrow(/bad value "0x1" for reorder/);
    expect(() => parseFaultSpec("seed=1.5")).toThrow(/bad value "1.5" for seed/);
    expect(() => parseFaultSpec("seed=4294967296")).toThrow(/for seed/);
    expect(() => parseFaultSpec("delay=nope")).toThrow(/bad value "nope" for delay/);
    expect(() => parseFaultSpec("drop=0.1")).toThrow(/unknown key "drop"/);
    expect(() => parseFaultSpec("loss")).toThrow(/"loss" is not key=value/);
    expect(() => parseFaultSpec("loss=0.1,loss=0.2")).toThrow(/loss given twice/);
  });
});

describe("FaultInjector", () => {
  test("no faults: every frame once, in order, with headroom", () => {
    const { cap, inj } = runTx(NO_FAULTS, 100);
    expect(cap.frames.map(idOf)).toEqual([...Array(100).keys()]);
    expect(cap.headroomOk).toBe(true);
    expect(inj.counters.frames).toBe(100);
  });

  test("loss drops about the configured share, deterministically", () => {
    const cfg = { ...NO_FAULTS, loss: 0.1, seed: 42 };
    const a = runTx(cfg, 10_000);
    const b = runTx(cfg, 10_000);
    expect(a.cap.frames.map(idOf)).toEqual(b.cap.frames.map(idOf));
    expect(a.inj.counters.lost).toBe(10_000 - a.cap.frames.length);
    expect(a.inj.counters.lost).toBeGreaterThan(900);
    expect(a.inj.counters.lost).toBeLessThan(1100);
    // Survivors keep their order.
    const ids = a.cap.frames.map(idOf);
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
    // Another seed, another pattern.
    const c = runTx({ ...cfg, seed: 43 }, 10_000);
    expect(c.cap.frames.map(idOf)).not.toEqual(ids);
  });

  test("duplication sends some frames twice, back to back", () => {
    const { cap, inj } = runTx({ ...NO_FAULTS, dup: 0.2, seed: 3 }, 1000);
    expect(cap.frames.length).toBe(1000 + inj.counters.duplicated);
    expect(inj.counters.duplicated).toBeGreaterThan(150);
    const ids = cap.frames.map(idOf);
    let dups = 0;
    for (let i = 1; i < ids.length; i++) if (ids[i] === ids[i - 1]) dups++;
    expect(dups).toBe(inj.counters.duplicated);
    expect(new Set(ids).size).toBe(1000);
  });

  test("reordering: a held frame goes out right after the next one", () => {
    const { cap, inj } = runTx({ ...NO_FAULTS, reorder: 0.2, seed: 5, delay: 1000 }, 1000);
    const ids = cap.frames.map(idOf);
    expect(ids.length).toBe(1000);
    expect(new Set(ids).size).toBe(1000);
    let swaps = 0;
    for (let i = 1; i < ids.length; i++) {
      if (ids[i]! < ids[i - 1]!) {
        swaps++;
        expect(ids[i - 1]! - ids[i]!).toBe(1); // displaced by exactly one
      }
    }
    expect(swaps).toBe(inj.counters.reordered);
    expect(swaps).toBeGreaterThan(100);
    // The copy is intact although the caller overwrote its buffer.
    for (const f of cap.frames) expect(f[10]).toBe(10);
  });

  test("a held frame is released by poll() after the delay when nothing follows", () => {
    let now = 100;
    const cap = new Capture();
    const inj = new FaultInjector({ ...NO_FAULTS, reorder: 1, delay: 25 }, cap, "ip", () => now);
    const b = frame(7);
    inj.transmit(b, TX_HEADROOM, 64, null);
    b.fill(0);
    expect(cap.frames.length).toBe(0);
    expect(inj.poll(now)).toBe(125);
    now = 124;
    expect(inj.poll(now)).toBe(125);
    expect(cap.frames.length).toBe(0);
    now = 125;
    expect(inj.poll(now)).toBe(Infinity);
    expect(cap.frames.map(idOf)).toEqual([7]);
    expect(cap.headroomOk).toBe(true);
  });

  test("corruption flips exactly one byte past the link header, in a copy", () => {
    let now = 0;
    const cap = new Capture();
    const inj = new FaultInjector({ ...NO_FAULTS, corrupt: 1, seed: 9 }, cap, "ethernet", () => now);
    for (let i = 0; i < 200; i++) {
      const b = frame(1000);
      const orig = b.slice();
      inj.transmit(b, TX_HEADROOM, 64, null);
      expect(b).toEqual(orig); // the caller's buffer is untouched
      const got = cap.frames[i]!;
      const want = orig.subarray(TX_HEADROOM);
      let diff = 0;
      for (let k = 0; k < 64; k++) {
        if (got[k] !== want[k]) {
          diff++;
          expect(k).toBeGreaterThanOrEqual(14);
        }
      }
      expect(diff).toBe(1);
    }
    expect(inj.counters.corrupted).toBe(200);
  });

  test("frames whose checksum is offloaded or trusted are never corrupted", () => {
    let now = 0;
    const cap = new Capture();
    const inj = new FaultInjector({ ...NO_FAULTS, corrupt: 1 }, cap, "ip", () => now);
    const meta = new TxMeta();
    meta.csumStart = 20;
    meta.csumOffset = 16;
    inj.transmit(frame(1), TX_HEADROOM, 64, meta);
    expect(cap.frames[0]).toEqual(frame(1).subarray(TX_HEADROOM));
    expect(cap.metas[0]).toBe(meta);
    const up = new Capture();
    inj.wrap(up);
    const rx = new RxMeta();
    rx.checksumTrusted = true;
    inj.receive(frame(2), TX_HEADROOM, 64, rx);
    expect(up.frames[0]).toEqual(frame(2).subarray(TX_HEADROOM));
    expect(inj.counters.corruptSkipped).toBe(2);
    inj.batchEnd();
    expect(up.batches).toBe(1);
  });

  test("the receive side applies faults the same way", () => {
    let now = 0;
    const up = new Capture();
    const inj = new FaultInjector({ ...NO_FAULTS, loss: 0.3, seed: 11 }, null, "ip", () => now);
    const rx = inj.wrap(up);
    const meta = new RxMeta();
    for (let i = 0; i < 1000; i++) rx.receive(frame(i), TX_HEADROOM, 64, meta);
    expect(up.frames.length).toBe(1000 - inj.counters.lost);
    expect(inj.counters.lost).toBeGreaterThan(250);
    expect(inj.counters.lost).toBeLessThan(350);
  });

  test("held frames keep their TxMeta", () => {
    let now = 0;
    const cap = new Capture();
    const inj = new FaultInjector({ ...NO_FAULTS, reorder: 1 }, cap, "ip", () => now);
    const meta = new TxMeta();
    meta.gsoType = 1;
    meta.gsoSize = 1448;
    inj.transmit(frame(1), TX_HEADROOM, 64, meta);
    meta.clear(); // the engine reuses its meta
    inj.transmit(frame(2), TX_HEADROOM, 64, null); // not held: the slot is taken
    expect(cap.frames.map(idOf)).toEqual([2, 1]);
    expect(cap.metas[0]).toBeNull();
    expect(cap.metas[1]!.gsoType).toBe(1);
    expect(cap.metas[1]!.gsoSize).toBe(1448);
  });
});
