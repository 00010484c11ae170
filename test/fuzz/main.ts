// Stack-level fuzzer, command line:
//
//   npm run fuzz -- --frames 1000000 --seed 7     one long run
//   npm run fuzz -- --seeds 20 --frames 100000    seeds 1..20 (or from --seed)
//   npm run fuzz -- --replay fuzz-failure-7.jsonl replay a recorded failure
//   --step-ms 250                                the bound on one step's time
//
// On a failure it prints the seed, the step and the invariant, writes the
// steps up to the failing one to a replay file (--out), replays that file
// to confirm it reproduces, and exits 1.
import { parseArgs } from "node:util";
import { readFileSync, writeFileSync } from "node:fs";
import { STEP_MS, decodeRun, encodeRun, replay, runFuzz, type Failure } from "./fuzzer.ts";

const { values } = parseArgs({
  options: {
    frames: { type: "string", default: "100000" },
    seed: { type: "string", default: "1" },
    seeds: { type: "string", default: "1" },
    replay: { type: "string" },
    out: { type: "string" },
    "step-ms": { type: "string", default: String(STEP_MS) },
    help: { type: "boolean", short: "h" },
  },
});

function describe(f: Failure): string {
  return `step ${f.step}: invariant "${f.invariant}" broken\n  ${f.message}`;
}

function replayFile(path: string, stepMs: number): number {
  const run = decodeRun(readFileSync(path, "utf8"));
  const t0 = performance.now();
  const f = replay(run.seed, run.steps, stepMs);
  const ms = Math.round(performance.now() - t0);
  if (f === null) {
    console.log(`replay of ${run.steps.length} steps (seed ${run.seed}): no invariant broken (${ms} ms)`);
    return 0;
  }
  console.log(`replay of ${run.steps.length} steps (seed ${run.seed}), ${describe(f)}`);
  return 1;
}

function fuzzSeed(seed: number, frames: number, stepMs: number): number {
  const r = runFuzz({
    seed,
    frames,
    stepMs,
    progressEvery: 50_000,
    onProgress: (n, ms) => console.log(`  seed ${seed}: ${n} frames, ${Math.round((n / ms) * 1000)} frames/s`),
  });
  const rate = Math.round((r.framesIn / r.ms) * 1000);
  if (r.failure === null) {
    console.log(`seed ${seed}: ${r.framesIn} frames in, priming included (${r.framesOut} out), ${r.steps} steps, ${(r.ms / 1000).toFixed(1)} s, ${rate} frames/s: ok`);
    return 0;
  }
  console.log(`seed ${seed}: FAILED at ${describe(r.failure)}`);
  // Same seed, same run: record it this time, up to the failing step.
  const again = runFuzz({ seed, frames, record: true, stopAfter: r.failure.step, stepMs: Infinity });
  const path = values.out ?? `fuzz-failure-${seed}.jsonl`;
  writeFileSync(path, encodeRun(seed, again.recorded!, r.failure));
  const rf = replay(seed, again.recorded!, stepMs);
  const same = rf !== null && rf.step === r.failure.step && rf.invariant === r.failure.invariant;
  console.log(`  ${again.recorded!.length} steps written to ${path}; the replay ${same ? "reproduces it" : `does NOT reproduce it (${rf === null ? "no failure" : describe(rf)})`}`);
  console.log(`  replay with: npm run fuzz -- --replay ${path}`);
  return 1;
}

function main(): number {
  if (values.help) {
    console.log("usage: npm run fuzz -- [--frames N] [--seed S] [--seeds K] [--out FILE] [--step-ms MS] | --replay FILE [--step-ms MS]");
    return 0;
  }
  const stepMs = Number(values["step-ms"]);
  if (!(stepMs > 0)) {
    console.error("--step-ms takes a positive number of milliseconds");
    return 2;
  }
  if (values.replay !== undefined) return replayFile(values.replay, stepMs);
  const frames = Number(values.frames);
  const first = Number(values.seed);
  const count = Number(values.seeds);
  if (!Number.isInteger(frames) || frames < 0 || !Number.isInteger(first) || !Number.isInteger(count) || count < 1) {
    console.error("--frames, --seed and --seeds take non-negative integers");
    return 2;
  }
  let failed = 0;
  for (let s = first; s < first + count; s++) failed += fuzzSeed(s >>> 0, frames, stepMs);
  if (count > 1) console.log(`${count - failed} of ${count} seeds passed`);
  return failed > 0 ? 1 : 0;
}

process.exit(main());
