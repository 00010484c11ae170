// fast-check run parameters for the property tests, from the environment:
//
//   TCP_PROPERTY_RUNS=N     runs each property N times (a soak) instead of
//                           its default count;
//   FC_SEED=S FC_PATH=P     replays a failure: fast-check prints both
//                           ("seed: S, path: P") with the shrunk
//                           counterexample. Select the failing property
//                           with `bun test -t "<its name>"`: the path only
//                           means something to the property that printed it;
//   FC_SEED=random          explores schedules never run before (with
//                           TCP_PROPERTY_RUNS, a bug hunt).
//
// Without FC_SEED the seed is fixed, so `npm test` runs the same cases
// every time and a red run is never a roll of the dice.
import type * as fc from "fast-check";

const DEFAULT_SEED = 0x5eed;

/** Runs requested through TCP_PROPERTY_RUNS, or `defaultRuns`. */
export function propertyRuns(defaultRuns: number): number {
  const env = process.env.TCP_PROPERTY_RUNS;
  if (env === undefined || env === "") return defaultRuns;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new Error(`TCP_PROPERTY_RUNS: want a positive integer, got "${env}"`);
  return n;
}

/** Parameters for fc.assert: run count, and the replay seed and path when given. */
export function fcParams<Ts>(defaultRuns: number): fc.Parameters<Ts> {
  // The failing run's error (what went wrong) goes into the report with the seed and path.
  const p: fc.Parameters<Ts> = { numRuns: propertyRuns(defaultRuns), includeErrorInReport: true };
  const seed = process.env.FC_SEED;
  if (seed === undefined || seed === "") p.seed = DEFAULT_SEED;
  else if (seed === "random") p.seed = Date.now() | 0;
  else {
    const s = Number(seed);
    if (!Number.isInteger(s)) throw new Error(`FC_SEED: want an integer or "random", got "${seed}"`);
    p.seed = s;
  }
  const path = process.env.FC_PATH;
  if (path !== undefined && path !== "") p.path = path;
  return p;
}

/**
 * A bun test timeout for a property of `defaultRuns` runs taking about
 * `msPerRun` each (scaled when TCP_PROPERTY_RUNS asks for more runs).
 */
export function propertyTimeout(defaultRuns: number, msPerRun: number): number {
  return Math.max(30_000, propertyRuns(defaultRuns) * msPerRun * 4);
}
