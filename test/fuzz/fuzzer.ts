// Runs the fuzzer: priming, then generated steps until the frame budget
// is spent, checking every invariant after every step. Also replays a
// recorded step file. The same seed always makes the same run.
import { Rng } from "./rng.ts";
import { StepGenerator } from "./generators.ts";
import { FuzzFailure } from "./invariants.ts";
import { World } from "./world.ts";
import { decodeStep, encodeStep, type Step } from "./steps.ts";

/** Main-phase frames between two re-primings of one device's reassembly buffers. */
const REPRIME_EVERY = 2_000;

export interface Failure {
  /** Index of the step that broke an invariant (0-based, priming included). */
  step: number;
  invariant: string;
  message: string;
}

export interface RunResult {
  seed: number;
  steps: number;
  framesIn: number;
  framesOut: number;
  ms: number;
  failure: Failure | null;
  /** The steps, when recording (up to and including the failing one). */
  recorded: Step[] | null;
}

export interface RunOptions {
  seed: number;
  /** Frames to feed after priming. */
  frames: number;
  /** Keep every step (for a replay file). */
  record?: boolean;
  /** Stop after this step index (re-running a failure to record it). */
  stopAfter?: number;
  /** Called every `progressEvery` frames. */
  onProgress?: (framesIn: number, elapsedMs: number) => void;
  progressEvery?: number;
}

/** Runs one step; any exception becomes a Failure (an engine throw is "no-exception"). */
function execute(world: World, step: Step, index: number): Failure | null {
  try {
    world.run(step);
    return null;
  } catch (e) {
    if (e instanceof FuzzFailure) return { step: index, invariant: e.invariant, message: e.message };
    const err = e as Error;
    return { step: index, invariant: "no-exception", message: `${err.name}: ${err.message}\n${err.stack ?? ""}` };
  }
}

export function runFuzz(opts: RunOptions): RunResult {
  const t0 = performance.now();
  const world = new World(opts.seed);
  const gen = new StepGenerator(new Rng(opts.seed), world);
  const recorded: Step[] | null = opts.record ? [] : null;
  const every = opts.progressEvery ?? 10_000;
  let index = 0;
  let failure: Failure | null = null;
  let mainStart = -1;
  let nextReport = every;
  const feed = (it: Iterable<Step>): boolean => {
    for (const step of it) {
      recorded?.push(step);
      failure = execute(world, step, index);
      if (failure !== null || index === opts.stopAfter) return false;
      index++;
      if (opts.onProgress && mainStart >= 0 && world.framesIn - mainStart >= nextReport) {
        nextReport += every;
        opts.onProgress(world.framesIn - mainStart, performance.now() - t0);
      }
    }
    return true;
  };
  let going = feed(gen.priming());
  mainStart = world.framesIn;
  let nextReprime = REPRIME_EVERY;
  while (going && world.framesIn - mainStart < opts.frames) {
    going = feed(gen.next());
    if (going && world.framesIn - mainStart >= nextReprime) {
      nextReprime += REPRIME_EVERY;
      going = feed(gen.reprime((nextReprime / REPRIME_EVERY) % world.devices.length));
    }
  }
  return {
    seed: opts.seed,
    steps: index,
    framesIn: world.framesIn,
    framesOut: world.framesOut,
    ms: performance.now() - t0,
    failure,
    recorded,
  };
}

/** A replay file: a header line, then one step per line. */
export function encodeRun(seed: number, steps: Step[], failure: Failure | null): string {
  const header = JSON.stringify({ slirpnetstackFuzz: 1, seed, failure });
  return [header, ...steps.map(encodeStep)].join("\n") + "\n";
}

export function decodeRun(text: string): { seed: number; steps: Step[]; failure: Failure | null } {
  const lines = text.split("\n").filter((l) => l.length > 0);
  const header = JSON.parse(lines[0] ?? "{}") as { slirpnetstackFuzz?: number; seed: number; failure: Failure | null };
  if (header.slirpnetstackFuzz !== 1) throw new Error("not a slirpnetstack fuzz replay file");
  return { seed: header.seed, steps: lines.slice(1).map(decodeStep), failure: header.failure };
}

/** Replays recorded steps on a fresh world; returns the first failure, if any. */
export function replay(seed: number, steps: Step[]): Failure | null {
  const world = new World(seed);
  for (let i = 0; i < steps.length; i++) {
    const f = execute(world, steps[i]!, i);
    if (f !== null) return f;
  }
  return null;
}
