// Runs the fuzzer: priming, then generated steps until the frame budget
// is spent, checking every invariant after every step, and timing every
// step. Also replays a recorded step file. The same seed always makes the
// same run.
import { Rng } from "./rng.ts";
import { StepGenerator } from "./generators.ts";
import { FuzzFailure, stepTimeBounded } from "./invariants.ts";
import { World } from "./world.ts";
import { decodeStep, encodeStep, type Step } from "./steps.ts";

/** Main-phase frames between two re-primings of one device's reassembly buffers. */
const REPRIME_EVERY = 2_000;

/** Default bound on the time of one step, ms (--step-ms). */
export const STEP_MS = 250;

/** How the runner times steps, in ms: wall time, and this process's user CPU time. */
export interface StepClock {
  wall(): number;
  cpu(): number;
}

export const REAL_CLOCK: StepClock = {
  wall: () => performance.now(),
  cpu: () => process.cpuUsage().user / 1000,
};

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
  /** Bound on one step's time, ms (STEP_MS; Infinity: not checked). */
  stepMs?: number;
  clock?: StepClock;
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

/** The step-time invariant, as a Failure. */
function timeFailure(index: number, ms: number, againCpuMs: number, boundMs: number): Failure | null {
  try {
    stepTimeBounded(ms, againCpuMs, boundMs);
    return null;
  } catch (e) {
    const f = e as FuzzFailure;
    return { step: index, invariant: f.invariant, message: f.message };
  }
}

interface Drive {
  /** Stop after this step index. */
  stopAfter?: number;
  recorded: Step[] | null;
  boundMs: number;
  clock: StepClock;
  /** CPU time of step `index` in a fresh run (called when a step took longer than the bound). */
  again: (index: number) => number;
  /** Called after every step that broke nothing. */
  after?: () => void;
}

/**
 * Executes steps on a world, checking every invariant after each, until
 * one breaks or the steps (or `stopAfter`) end. Returns the failure and
 * the number of steps executed, and the CPU time of the last one.
 */
function drive(world: World, steps: Iterable<Step>, d: Drive): { failure: Failure | null; steps: number; lastCpuMs: number } {
  let index = 0;
  let lastCpuMs = 0;
  for (const step of steps) {
    d.recorded?.push(step);
    const last = index === d.stopAfter;
    const c0 = last ? d.clock.cpu() : 0;
    const t0 = d.clock.wall();
    let failure = execute(world, step, index);
    const ms = d.clock.wall() - t0;
    if (last) lastCpuMs = d.clock.cpu() - c0;
    if (failure === null && ms > d.boundMs) failure = timeFailure(index, ms, d.again(index), d.boundMs);
    if (failure !== null) return { failure, steps: index, lastCpuMs };
    if (last) return { failure: null, steps: index, lastCpuMs };
    index++;
    d.after?.();
  }
  return { failure: null, steps: index, lastCpuMs };
}

/**
 * The steps of a run: priming, then generated steps until the frame
 * budget is spent, re-priming now and then. The generators look at the
 * world, so the steps must be executed as they come. `phase.mainStart`
 * is set to the frame count when the main phase begins.
 */
function* generated(world: World, seed: number, frames: number, phase: { mainStart: number }): Generator<Step> {
  const gen = new StepGenerator(new Rng(seed), world);
  yield* gen.priming();
  phase.mainStart = world.framesIn;
  let nextReprime = REPRIME_EVERY;
  while (world.framesIn - phase.mainStart < frames) {
    yield* gen.next();
    if (world.framesIn - phase.mainStart >= nextReprime) {
      nextReprime += REPRIME_EVERY;
      yield* gen.reprime((nextReprime / REPRIME_EVERY) % world.devices.length);
    }
  }
}

/** CPU time of step `index` of the run from `seed`, in a fresh world (for the step-time check). */
function stepCpuAgain(seed: number, frames: number, clock: StepClock, index: number): number {
  const world = new World(seed);
  const d: Drive = { stopAfter: index, recorded: null, boundMs: Infinity, clock, again: () => 0 };
  return drive(world, generated(world, seed, frames, { mainStart: -1 }), d).lastCpuMs;
}

export function runFuzz(opts: RunOptions): RunResult {
  const t0 = performance.now();
  const world = new World(opts.seed);
  const recorded: Step[] | null = opts.record ? [] : null;
  const every = opts.progressEvery ?? 10_000;
  const clock = opts.clock ?? REAL_CLOCK;
  const phase = { mainStart: -1 };
  let nextReport = every;
  const r = drive(world, generated(world, opts.seed, opts.frames, phase), {
    stopAfter: opts.stopAfter,
    recorded,
    boundMs: opts.stepMs ?? STEP_MS,
    clock,
    again: (index) => stepCpuAgain(opts.seed, opts.frames, clock, index),
    after: () => {
      if (opts.onProgress && phase.mainStart >= 0 && world.framesIn - phase.mainStart >= nextReport) {
        nextReport += every;
        opts.onProgress(world.framesIn - phase.mainStart, performance.now() - t0);
      }
    },
  });
  return {
    seed: opts.seed,
    steps: r.steps,
    framesIn: world.framesIn,
    framesOut: world.framesOut,
    ms: performance.now() - t0,
    failure: r.failure,
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
export function replay(seed: number, steps: Step[], stepMs = STEP_MS, clock: StepClock = REAL_CLOCK): Failure | null {
  const again = (index: number): number => drive(new World(seed), steps, { stopAfter: index, recorded: null, boundMs: Infinity, clock, again: () => 0 }).lastCpuMs;
  return drive(new World(seed), steps, { recorded: null, boundMs: stepMs, clock, again }).failure;
}
