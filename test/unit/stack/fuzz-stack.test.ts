// The stack-level fuzzer (test/fuzz) on a fixed seed: about 50,000
// generated and mutated frames through Ethernet and raw-IP stacks, with
// host-side events and clock jumps, every invariant checked after every
// step, and no step over the time bound. Longer runs and other seeds:
// `npm run fuzz -- --frames N --seed S`.
import { describe, expect, test } from "bun:test";
import { runFuzz, replay, encodeRun, decodeRun, type StepClock } from "../../fuzz/fuzzer.ts";
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

  /**
   * A clock on which step `step` of the first run takes 1000 ms of wall
   * time (every other step 0.01 ms), and a step timed again in a fresh
   * run takes `againCpuMs` of CPU time.
   */
  function slowAt(step: number, againCpuMs: number): StepClock {
    let walls = 0;
    let t = 0;
    let cpus = 0;
    return {
      wall: () => {
        walls++;
        t += 0.01;
        // Two readings per step: the second one of `step` comes late.
        if (walls === 2 * step + 2) t += 1000;
        return t;
      },
      cpu: () => (cpus++ % 2 === 0 ? 0 : againCpuMs),
    };
  }

  test("a step over the time bound, slow again in a fresh run, breaks step-time-bounded", () => {
    const r = runFuzz({ seed: 7, frames: 3_000, record: true, clock: slowAt(600, 400) });
    expect(r.failure?.invariant).toBe("step-time-bounded");
    expect(r.failure?.step).toBe(600);
    expect(r.failure?.message).toContain("1000.0 ms");
    expect(r.failure?.message).toContain("400.0 ms of CPU time again");
    // A replay of the recorded steps checks the bound the same way.
    const f = replay(7, r.recorded!, 250, slowAt(600, 400));
    expect([f?.step, f?.invariant]).toEqual([600, "step-time-bounded"]);
  }, 60_000);

  test("a step slow only once (the machine stalled, not the engine) breaks nothing", () => {
    const r = runFuzz({ seed: 7, frames: 3_000, clock: slowAt(600, 3) });
    expect(failureText(r)).toBe("");
    expect(r.framesIn).toBeGreaterThanOrEqual(3_000);
    // The bound is --step-ms: above the stall, nothing is even timed again.
    expect(runFuzz({ seed: 7, frames: 3_000, clock: slowAt(600, 5_000), stepMs: 2_000 }).failure).toBeNull();
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
