// The stack-level fuzzer (test/fuzz) on a fixed seed: about 50,000
// generated and mutated frames through Ethernet and raw-IP stacks, with
// host-side events and clock jumps, every invariant checked after every
// step. Longer runs and other seeds: `npm run fuzz -- --frames N --seed S`.
import { describe, expect, test } from "bun:test";
import { runFuzz, replay, encodeRun, decodeRun } from "../../fuzz/fuzzer.ts";
import { FuzzFailure, OutputFragments, TAINT, checkOutputFrame } from "../../fuzz/invariants.ts";
import { World, STACK_MAC } from "../../fuzz/world.ts";
import { PROTO_UDP, ipv4, udp } from "../../fuzz/packets.ts";

const SEED = 0x5eed;

function failureText(r: ReturnType<typeof runFuzz>): string {
  const f = r.failure;
  return f === null ? "" : `seed ${r.seed}, step ${f.step}: ${f.message} (replay: npm run fuzz -- --seed ${r.seed} --frames 50000)`;
}

describe("stack fuzzer", () => {
  test("fixed seed: 50,000 frames, every invariant holds after every step", () => {
    const r = runFuzz({ seed: SEED, frames: 50_000 });
    expect(failureText(r)).toBe("");
    expect(r.framesIn).toBeGreaterThanOrEqual(50_000);
    expect(r.framesOut).toBeGreaterThan(1_000);
  }, 120_000);

  test("same seed, same run; a recorded run replays", () => {
    const a = runFuzz({ seed: 7, frames: 3_000, record: true });
    const b = runFuzz({ seed: 7, frames: 3_000 });
    expect([a.steps, a.framesIn, a.framesOut]).toEqual([b.steps, b.framesIn, b.framesOut]);
    const file = decodeRun(encodeRun(7, a.recorded!, null));
    expect(file.steps.length).toBe(a.recorded!.length);
    expect(replay(file.seed, file.steps)).toBeNull();
  }, 60_000);

  test("the stale-byte check fires on the taint marker once armed", () => {
    const w = new World(1);
    const data = new Uint8Array(40);
    data.set(TAINT, 13);
    w.delivered("test", data, 0, data.length);
    w.run({ k: "taint", armed: true });
    expect(() => w.delivered("test", data, 0, data.length)).toThrow(FuzzFailure);
    expect(() => w.delivered("test", data, 14, 26)).not.toThrow();
  });

  test("the output checks fire on a bad checksum and on a frame over the MTU", () => {
    const link = { ethernet: false, mtu: 1500, csumOffload: false, tso: false, mac: STACK_MAC };
    const a = { v: 4 as const, src: 0x0a000202, dst: 0x0a000264 };
    const good = ipv4({ src: a.src, dst: a.dst, proto: PROTO_UDP, id: 1 }, udp(a, 53, 40000, new Uint8Array(100), "ok"));
    expect(() => checkOutputFrame(0, link, good, 0, good.length, null, new OutputFragments(), true)).not.toThrow();
    const bad = ipv4({ src: a.src, dst: a.dst, proto: PROTO_UDP, id: 1 }, udp(a, 53, 40000, new Uint8Array(100), "bad"));
    expect(() => checkOutputFrame(0, link, bad, 0, bad.length, null, new OutputFragments(), true)).toThrow("checksums-correct");
    const big = ipv4({ src: a.src, dst: a.dst, proto: PROTO_UDP, id: 1 }, udp(a, 53, 40000, new Uint8Array(1500), "ok"));
    expect(() => checkOutputFrame(0, link, big, 0, big.length, null, new OutputFragments(), true)).toThrow("frame-fits-mtu");
  });
});
