// The checks every hostile-case integration test makes against the built
// binary (docs/hostile.md lists the cases), during the attack and after it:
//
//   - the stack process is alive and answers /metrics;
//   - its resident memory has stayed under a bound: the peak (VmHWM), not
//     a sample, so a spike between samples counts too;
//   - the counters of the cap that holds the attack moved since a snapshot
//     taken before it (polled: the stack may still be working through its
//     device queue);
//   - the guest is still served: a fresh 8 MiB download from the host's
//     HTTP server, checked byte for byte, and a UDP echo.
//
// "During" means while the attack is running. The attacks are scripts that
// send at least their stated amount and then go on until told to stop
// (`backgroundAttack`), so the probes run inside the attack whatever the
// machine's speed, and no check depends on how long anything takes.
import { expect } from "bun:test";
import type { Subprocess } from "bun";
import { writeFileSync } from "node:fs";
import { track, untrack } from "./cleanup.ts";
import { PYTHON, SCRIPT, expectedHash, guestClient, sq, type HostServers } from "./host-servers.ts";
import type { GuestNs, HostNs } from "./netns.ts";
import { processAlive, statusKiB } from "./rig.ts";
import { LineReader } from "./stack.ts";

/** What the checks need of a running setup. */
export interface HostileTarget {
  host: HostNs;
  guest: GuestNs;
  /** test/support/host-servers.py serving in `host` (its http and udp services). */
  servers: HostServers;
  /** The host address the guest reaches the servers at (on the host's lo, with -enable-host). */
  serverAddr: string;
  /** The stack's PID. */
  pid: number;
  /** The stack's /metrics text. */
  metrics(): Promise<string>;
}

/** /metrics series by "name{labels}". */
export type Counters = Map<string, number>;

export const limitHits = (name: string): string => `slirpnetstack_limit_hits_total{limit="${name}"}`;
export const drops = (reason: string): string => `slirpnetstack_drops_total{reason="${reason}"}`;
export const connects = (outcome: string): string => `slirpnetstack_connects_total{outcome="${outcome}"}`;
export const linesLost = (reason: string): string => `slirpnetstack_log_lines_lost_total{reason="${reason}"}`;

export function parseMetrics(text: string): Counters {
  const out: Counters = new Map();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export async function counters(t: HostileTarget): Promise<Counters> {
  return parseMetrics(await t.metrics());
}

/**
 * Before an attack: resets the stack's peak RSS to its current RSS (5 to
 * /proc/PID/clear_refs), so that the bound checked later is this case's,
 * not an earlier one's; returns the counters to compare with.
 */
export async function beginCase(t: HostileTarget): Promise<Counters> {
  writeFileSync(`/proc/${t.pid}/clear_refs`, "5");
  return counters(t);
}

export interface HostileCheckOptions {
  /** "during" the attack or "after" it (names the download's seed and the failures). */
  phase: "during" | "after";
  /** Bound on the stack's peak resident memory; 300 MiB unless said. */
  rssMiB?: number;
  /** Series that must have grown since `since`. */
  moved?: string[];
  /** Series that must not have grown since `since`. */
  unmoved?: string[];
  since?: Counters;
  /** How long `moved` may take to show (the stack drains its queue first). */
  counterTimeoutMs?: number;
  /** curl's --max-time for the download; 60 s unless said. */
  downloadTimeoutS?: number;
}

export interface HostileCheckResult {
  rssMiB: number;
  peakMiB: number;
  downloadMs: number;
  /** UDP echo attempts it took (a datagram may be lost under a flood; TCP would retransmit). */
  echoTries: number;
  counters: Counters;
}

export const DOWNLOAD_BYTES = 8 << 20;
const ECHO_TRIES = 5;
let probeSeq = 0;

/** A fresh DOWNLOAD_BYTES download into the guest, checked by hash; its time in ms. */
export async function guestDownload(t: HostileTarget, seed: string, bytes = DOWNLOAD_BYTES, timeoutS = 60): Promise<number> {
  const want = expectedHash(bytes, seed);
  const host = t.serverAddr.includes(":") ? `[${t.serverAddr}]` : t.serverAddr;
  const url = `http://${host}:${t.servers.ports.http}/download?size=${bytes}&seed=${seed}`;
  const t0 = performance.now();
  const r = await t.guest.exec(["bash", "-o", "pipefail", "-c", `curl -sS --fail --noproxy '*' --max-time ${timeoutS} ${sq(url)} | ${PYTHON} ${SCRIPT} sha256`], {
    timeoutMs: timeoutS * 1000 + 10_000,
  });
  const ms = performance.now() - t0;
  expect({ download: seed, code: r.code, stderr: r.stderr }).toEqual({ download: seed, code: 0, stderr: "" });
  expect(JSON.parse(r.stdout)).toEqual({ bytes, sha256: await want });
  return ms;
}

/** A UDP echo from the guest; returns the attempts it took (each a fresh socket). */
export async function guestUdpEcho(t: HostileTarget): Promise<number> {
  let last: unknown = null;
  for (let i = 1; i <= ECHO_TRIES; i++) {
    const r = await guestClient<{ match: boolean; error: string | null }>(t.guest, "udp", [t.serverAddr, t.servers.ports.udp, "ala,ma,kota", "3"]);
    if (r.match) return i;
    last = r;
  }
  throw new Error(`no UDP echo in ${ECHO_TRIES} tries; the last: ${JSON.stringify(last)}`);
}

/** Alive, peak RSS under the bound, counters moved, a download and a UDP echo: see the file's header. */
export async function hostileChecks(t: HostileTarget, opts: HostileCheckOptions): Promise<HostileCheckResult> {
  const bound = opts.rssMiB ?? 300;
  const phase = opts.phase;
  expect({ phase, alive: processAlive(t.pid) }).toEqual({ phase, alive: true });
  const downloadMs = await guestDownload(t, `hostile-${phase}-${process.pid}-${probeSeq++}`, DOWNLOAD_BYTES, opts.downloadTimeoutS);
  const echoTries = await guestUdpEcho(t);
  expect({ phase, alive: processAlive(t.pid) }).toEqual({ phase, alive: true });

  let now = await counters(t);
  if (opts.moved && opts.moved.length > 0) {
    const since = opts.since ?? new Map<string, number>();
    const grew = () => opts.moved!.filter((s) => (now.get(s) ?? 0) > (since.get(s) ?? 0));
    const end = Date.now() + (opts.counterTimeoutMs ?? 20_000);
    while (grew().length < opts.moved.length && Date.now() < end) {
      await Bun.sleep(200);
      now = await counters(t);
    }
    const report = (s: string) => ({ series: s, before: since.get(s) ?? 0, now: now.get(s) ?? 0 });
    expect(opts.moved.map(report).filter((r) => r.now <= r.before)).toEqual([]);
  }
  if (opts.unmoved && opts.unmoved.length > 0) {
    const since = opts.since ?? new Map<string, number>();
    expect(opts.unmoved.map((s) => ({ series: s, grew: (now.get(s) ?? 0) - (since.get(s) ?? 0) }))).toEqual(opts.unmoved.map((s) => ({ series: s, grew: 0 })));
  }

  const rssMiB = statusKiB(t.pid, "VmRSS") / 1024;
  const peakMiB = statusKiB(t.pid, "VmHWM") / 1024;
  console.log(`[${phase}] RSS ${rssMiB.toFixed(1)} MiB (peak ${peakMiB.toFixed(1)}), 8 MiB download ${downloadMs.toFixed(0)} ms, UDP echo in ${echoTries} tries`);
  expect({ phase, peakMiB: Math.round(peakMiB), under: peakMiB < bound }).toEqual({ phase, peakMiB: Math.round(peakMiB), under: true });
  return { rssMiB, peakMiB, downloadMs, echoTries, counters: now };
}

/**
 * Python for attack scripts: stop_requested() is true once the test has
 * closed the script's stdin (backgroundAttack's finish()).
 */
export const PY_STOP = `
import select as _select, sys as _sys
def stop_requested():
    return bool(_select.select([_sys.stdin], [], [], 0)[0])
`;

export interface BackgroundAttack<T> {
  /** Resolves when the script printed "started" (its attack is under way). */
  started: Promise<void>;
  /** Closes its stdin (PY_STOP's signal), waits for it and returns its last JSON line. */
  finish(timeoutMs?: number): Promise<T>;
  /** Ends it at once (a test that failed mid-attack). */
  kill(): void;
}

/**
 * Waits until `attack` is under way, runs `body` (the "during" checks),
 * then stops the attack and returns its result; if `body` fails, the
 * attack is killed, so it does not go on into the next test.
 */
export async function whileAttacking<T>(attack: BackgroundAttack<T>, body: () => Promise<unknown>): Promise<T> {
  try {
    await attack.started;
    await body();
  } catch (e) {
    attack.kill();
    throw e;
  }
  return attack.finish();
}

/**
 * Runs an attack script in `ns`. The script prints "started" once under
 * way, attacks until it has done its stated amount and stop_requested(),
 * then prints one JSON line with what it did.
 */
export function backgroundAttack<T>(ns: { enter(cmd: string[]): string[] }, argv: string[]): BackgroundAttack<T> {
  const proc = Bun.spawn(ns.enter(argv), { stdin: "pipe", stdout: "pipe", stderr: "pipe" }) as Subprocess<"pipe", "pipe", "pipe">;
  const guard = { destroy: async () => void proc.kill("SIGKILL") };
  track(guard);
  const out = new LineReader(proc.stdout);
  const err = new Response(proc.stderr).text();
  const started = out.waitFor("started", 60_000).then(
    () => undefined,
    async (e: Error) => {
      throw new Error(`${e.message}\nstderr: ${await err}`);
    },
  );
  // Not awaited by every test before finish(): keep a rejection from going unhandled.
  started.catch(() => {});
  return {
    started,
    async finish(timeoutMs = 90_000): Promise<T> {
      proc.stdin.end();
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      const code = await proc.exited;
      clearTimeout(timer);
      untrack(guard);
      await out.done;
      const stderr = await err;
      if (code !== 0 || stderr !== "") throw new Error(`attack ${argv.slice(0, 2).join(" ")} exited ${code}: ${stderr}\n${out.text()}`);
      const last = out.lines.filter((l) => l.startsWith("{")).pop();
      if (last === undefined) throw new Error(`attack printed no result: ${out.text()}`);
      return JSON.parse(last) as T;
    },
    kill(): void {
      proc.kill("SIGKILL");
    },
  };
}
