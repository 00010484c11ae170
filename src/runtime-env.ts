// Settings of the Bun runtime that it reads from the environment once, as
// it starts, before any of our code runs. To have them without asking
// users to export anything, the process re-executes itself once with them
// added (execve keeps the PID, the fds and the argv), right after the flags
// are parsed: -h, -version and flag errors exit before that, and before
// the stack's modules are loaded (src/main.ts).
//
//   BUN_GC_TIMER_DISABLE=1   Bun's GC timer wakes the process several times
//                            a second to collect while idle; an idle stack
//                            has nothing to collect (measured: 16 wakeups/s
//                            idle with it, under 1/s without). Garbage
//                            collection still runs as memory is allocated.
//   BUN_JSC_useFTLJIT=0      JavaScriptCore's top tier (FTL) spends about
//                            0.9 s of compiler-thread CPU in the first
//                            ten thousand connections, on the one core the
//                            guest and the servers share; the DFG tier below
//                            it compiles for a fifth of that. Measured:
//                            throughput unchanged (16-17 Gbit/s guest->host
//                            either way), cold connection rate up by a
//                            quarter, compiler-thread CPU per connection
//                            from ~30 us to ~0 once warm.
//   MIMALLOC_PURGE_DELAY=0   The allocator returns freed memory to the
//                            kernel at once instead of from a scavenger
//                            thread that wakes on a timer (with a delay
//                            of 0 that thread is never started). Measured:
//                            idle wakeups in the first seconds 2-3/s ->
//                            1-2/s, no cost in connections per second, and
//                            a lower peak RSS.
//   BUN_JSC_useConcurrentJIT=0
//                            JavaScriptCore compiles hot functions on the
//                            main thread instead of handing them to its
//                            compiler threads: each hand-off wakes a
//                            compiler thread, and the first frames of an
//                            idle guest (its IPv6 router solicitations,
//                            MLD reports, ARP probes) run cold code that
//                            gets compiled. Measured (three interleaved
//                            rounds of a side-by-side benchmark): idle
//                            wakeups 1.8/s -> 1.0/s (what remains is the
//                            guest's own frames), throughput, ping-pong and
//                            connection rate unchanged within noise.
//
// The names we added are listed in SLIRPNETSTACK_RUNTIME_ENV so that the
// environment handed to a run-mode command is the user's own.
//
// execve keeps only the fds without close-on-exec, and Bun, as it starts,
// marks every fd from 4 up close-on-exec (close_range(4, ~0U,
// CLOSE_RANGE_CLOEXEC)). The fds a supervisor passes us by number (-fd,
// -ready-fd, -exit-fd) are made inheritable for this one execve, so they
// are still there, at the same number, in the re-executed process (where
// Bun marks them close-on-exec again).
import { readFileSync } from "node:fs";

const RUNTIME_ENV: Readonly<Record<string, string>> = { BUN_GC_TIMER_DISABLE: "1", BUN_JSC_useFTLJIT: "0", MIMALLOC_PURGE_DELAY: "0", BUN_JSC_useConcurrentJIT: "0" };
const MARKER = "SLIRPNETSTACK_RUNTIME_ENV";

/** The environment the process was started with (not Bun's process.env, which may hold .env files). */
function environ(): Map<string, string> {
  const out = new Map<string, string>();
  try {
    for (const entry of readFileSync("/proc/self/environ", "utf8").split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) out.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  } catch {
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out.set(k, v);
  }
  return out;
}

/** The settings the environment lacks, or none if this process was already re-executed. */
function missing(env: Map<string, string>): string[] {
  return env.has(MARKER) ? [] : Object.keys(RUNTIME_ENV).filter((k) => !env.has(k));
}

/**
 * Whether {@link ensureRuntimeEnv} will re-execute the process. Asked on
 * every start, so it looks at process.env (no .env file is loaded into
 * the built binary's) instead of reading /proc/self/environ.
 */
export function willReexec(): boolean {
  return process.env[MARKER] === undefined && Object.keys(RUNTIME_ENV).some((k) => process.env[k] === undefined);
}

/**
 * Re-executes the process with the runtime settings unless it already has
 * them. Returns (and the process carries on as it is) if execve fails.
 * `passedFds`: fds a supervisor passed us by number (-fd, -ready-fd,
 * -exit-fd; cli/passed-fds.ts), kept open across the execve.
 */
export async function ensureRuntimeEnv(passedFds: readonly number[]): Promise<void> {
  const env = environ();
  const added = missing(env);
  if (added.length === 0) return;
  // Loaded only here: dlopen of libc is a good part of the start-up.
  const [{ execve }, { fdIsOpen, setCloseOnExec }] = await Promise.all([import("../ffi/exec.ts"), import("../ffi/sys.ts")]);
  for (const k of added) env.set(k, RUNTIME_ENV[k]!);
  env.set(MARKER, added.join(","));
  // Compiled: argv is [runtime, /$bunfs/root/entry, ...args] and argv0 is
  // what the user typed; from source: [bun, script, ...args].
  const compiled = process.argv[1]?.startsWith("/$bunfs") ?? false;
  const argv = compiled ? [process.argv0, ...process.argv.slice(2)] : [process.argv0, ...process.argv.slice(1)];
  const passed = passedFds.filter(fdIsOpen);
  for (const fd of passed) setCloseOnExec(fd, false);
  execve(process.execPath, argv, [...env].map(([k, v]) => `${k}=${v}`));
  // Still here: carry on as we are, the passed fds close-on-exec as main wants them.
  for (const fd of passed) setCloseOnExec(fd, true);
}

/** The user's environment: what we started with, minus what ensureRuntimeEnv added. */
export function userEnvironment(): Record<string, string> {
  const env = environ();
  const added = env.get(MARKER);
  env.delete(MARKER);
  if (added !== undefined) for (const k of added.split(",")) env.delete(k);
  return Object.fromEntries(env);
}
