// The soak: the built ./slirpnetstack under mixed real traffic and hostile
// frames for a long time, with its memory and file descriptors sampled;
// both must stay flat once it is warm.
//
//   npm run soak                     (= bun build.ts && bun test/soak/soak.ts; as root)
//   npm run soak -- --minutes 3 --sample-seconds 15
//
// Options: --minutes N (run time, default 30), --sample-seconds N (how often
// RSS, fds and /metrics are sampled, default 60), --hostile-rate N (hostile
// frames per second, default 100), --binary PATH (the binary to soak, default
// ./slirpnetstack). Not part of `npm test`.
//
// Everything runs inside a private PID + mount + network namespace (the
// script re-executes itself there), so nothing can reach beyond loopback and
// the namespaces it creates, and whatever it started dies with it, also when
// it is killed. Inside: a host namespace with 192.0.2.1 and 2001:db8::1 on
// its lo and the servers of test/soak/traffic.py, a README-style guest, and
// a copy of the binary (a rebuild during the run cannot swap it) with
// -enable-host, two -R and two -L forwards, and -m on 127.0.0.1.
//
// Load (test/soak/traffic.py, test/soak/hostile-stream.py): HTTP downloads
// and uploads of 1 KiB to 4 MiB from the guest (to the host over IPv4 and
// IPv6, and through -R), short echo connections (some reset), DNS-like UDP
// queries to 32 ports from fresh source ports (and through -R udp), pings,
// -L TCP and UDP echoes from host clients into the guest, and a stream of
// hostile frames from the guest. Every few minutes a probe checks that a
// fresh 8 MiB download and a UDP echo still work, and times them.
//
// Verdict, on the samples after the warm-up (the first sixth of the run, at
// least one sample): the largest value in their second half is compared
// with the largest in their first half (both halves hold as many samples,
// so that each catches the tops of the garbage collector's sawtooth alike).
//   - RSS (VmRSS) and its anonymous part (RssAnon: what the process
//     allocated, without the pages of the binary it maps, which the kernel
//     drops and reads back as memory gets short) may each grow by
//     RSS_TOLERANCE at most.
//   - Open fds may grow by FD_TOLERANCE, or FD_NOISE of their number if
//     that is more: most of them belong to UDP flows, which live 125 s
//     after their last datagram, and the load is random, so their number
//     wanders by a few percent around its steady state.
//   - Live flows (TCP in TIME-WAIT aside, which holds no socket and is
//     capped) may grow by FLOW_TOLERANCE: a flow that never ends is a leak
//     even when it holds no descriptor.
// Every probe must succeed, every traffic kind must fail (an error or wrong
// data; a timeout is reported but not held against the stack, see
// traffic.py) less than MAX_FAIL_RATE of the time, and the stack must exit
// 0 on SIGINT at the end. The table of samples is printed either way; the exit status is 0
// when the soak passed, 1 when it failed, 2 for bad options.
import type { Subprocess } from "bun";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { destroyAll } from "../support/cleanup.ts";
import { PYTHON } from "../support/host-servers.ts";
import { GuestNs, HostNs } from "../support/netns.ts";
import { LineReader, StackProcess } from "../support/stack.ts";
import { runInSandbox } from "../../bench/lib/sandbox.ts";

const RSS_TOLERANCE = 0.1;
const FD_TOLERANCE = 8;
const FD_NOISE = 0.05;
const FLOW_TOLERANCE = 0.25;
const MAX_FAIL_RATE = 0.01;
/** The same plan as test/soak/traffic.py. */
const HOST_ADDRS = ["192.0.2.1/32", "2001:db8::1/128"];
const FORWARDS = [
  ["-R", "10.0.2.2:8080:127.0.0.1:8000"],
  ["-R", "udp://10.0.2.2:5353:127.0.0.1:5300"],
  ["-L", "127.0.0.1:18080:10.0.2.100:8080"],
  ["-L", "udp://127.0.0.1:18053:10.0.2.100:8053"],
].flat();

const TRAFFIC = join(import.meta.dir, "traffic.py");
const HOSTILE = join(import.meta.dir, "hostile-stream.py");
const ROOT_BINARY = join(import.meta.dir, "..", "..", "slirpnetstack");

function die(msg: string): never {
  process.stderr.write(`soak: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): { minutes: number; sampleSecs: number; hostileRate: number; binary: string } {
  const o = { minutes: 30, sampleSecs: 60, hostileRate: 100, binary: ROOT_BINARY };
  const names: Record<string, "minutes" | "sampleSecs" | "hostileRate"> = { "--minutes": "minutes", "--sample-seconds": "sampleSecs", "--hostile-rate": "hostileRate" };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split("=", 2) as [string, string | undefined];
    const raw = inline ?? argv[++i];
    if (flag === "--binary" && raw) {
      o.binary = resolve(raw);
      continue;
    }
    const key = names[flag];
    if (key === undefined) die(`unknown option ${argv[i]} (options: --minutes N, --sample-seconds N, --hostile-rate N, --binary PATH)`);
    const v = Number(raw);
    if (raw === undefined || !Number.isFinite(v) || v <= 0) die(`${flag} needs a positive number, not '${raw ?? ""}'`);
    o[key] = v;
  }
  if (o.sampleSecs * 2 > o.minutes * 60) die(`--minutes ${o.minutes} is too short for samples every ${o.sampleSecs} s`);
  return o;
}

const opts = parseArgs(process.argv.slice(2));

// ------------------------------------------------------------------ outside the sandbox
if (process.env.SOAK_SANDBOX !== "1") {
  if (process.getuid?.() !== 0) die("must run as root (it creates network namespaces and a tap)");
  for (const t of ["unshare", "nsenter", "ip", "ping", "curl", PYTHON]) if (!Bun.which(t)) die(`missing tool: ${t}`);
  if (!existsSync(opts.binary)) die(`no ${opts.binary}: run it as \`npm run soak\`, which builds it first`);
  const work = mkdtempSync("/tmp/slirpnetstack-soak.");
  copyFileSync(opts.binary, join(work, "slirpnetstack"));
  const code = await runInSandbox(import.meta.path, process.argv.slice(2), { ...process.env, SOAK_SANDBOX: "1", SOAK_BINARY: join(work, "slirpnetstack") }, 20_000);
  rmSync(work, { recursive: true, force: true });
  process.exit(code ?? 1);
}

// ------------------------------------------------------------------ inside the sandbox
const BINARY = process.env.SOAK_BINARY!;
const totalSecs = Math.round(opts.minutes * 60);
const sampleSecs = opts.sampleSecs;
const warmupSecs = Math.max(sampleSecs, Math.round(totalSecs / 6));
const probeSecs = Math.min(180, Math.max(30, Math.round(totalSecs / 5)));
const t0 = Date.now();

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function elapsed(): number {
  return (Date.now() - t0) / 1000;
}

// ---------------------------------------------------------- what is collected
interface Sample {
  secs: number;
  rssKiB: number;
  anonKiB: number;
  fds: number;
  /** Live flows (all but TCP TIME-WAIT), and TCP flows in TIME-WAIT. */
  flows: number;
  timeWait: number;
  /** Traffic operations since the previous sample: succeeded, failed, timed out. */
  ok: number;
  failed: number;
  timedOut: number;
  hostile: number;
}

interface Probe {
  secs: number;
  downloadMs?: number;
  udpMs?: number;
  error?: string;
}

const samples: Sample[] = [];
const probes: Probe[] = [];
const totals = new Map<string, [number, number, number]>();
const errorExamples: string[] = [];
let sinceOk = 0;
let sinceFailed = 0;
let sinceTimedOut = 0;
let sinceHostile = 0;
let hostileTotal = 0;
let hostileRefused = 0;
/** The guest kernel's TcpExtTCPAbortOnMemory at the last sample (abortsOnMemory). */
let guestAbortsOnMemory = 0;
const failures: string[] = [];

/** Reads the JSON lines of a traffic or hostile process as they come. */
async function consume(name: string, out: LineReader): Promise<void> {
  let seen = 0;
  let ended = false;
  void out.done.then(() => {
    ended = true;
  });
  for (;;) {
    const last = ended;
    while (seen < out.lines.length) {
      const line = out.lines[seen++]!;
      if (!line.startsWith("{")) continue;
      const m = JSON.parse(line) as { stats?: Record<string, [number, number, number]>; errors?: string[]; hostile?: number; refused?: number };
      for (const [kind, [ok, bad, slow]] of Object.entries(m.stats ?? {})) {
        const t = totals.get(kind) ?? [0, 0, 0];
        t[0] += ok;
        t[1] += bad;
        t[2] += slow;
        totals.set(kind, t);
        sinceOk += ok;
        sinceFailed += bad;
        sinceTimedOut += slow;
      }
      for (const e of m.errors ?? []) if (errorExamples.length < 20) errorExamples.push(`${name} ${e}`);
      if (m.hostile !== undefined) {
        sinceHostile += m.hostile;
        hostileTotal += m.hostile;
        hostileRefused += m.refused ?? 0;
      }
    }
    if (last) return;
    await Promise.race([out.done, Bun.sleep(1000)]);
  }
}

// ---------------------------------------------------------- the stack's /proc and /metrics
/** VmRSS and RssAnon of /proc/PID/status, in KiB. */
function memory(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status);
    if (!m) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rss: field("VmRSS"), anon: field("RssAnon") };
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * TcpExtTCPAbortOnMemory of a namespace's kernel (/proc/net/netstat):
 * connections it reset for want of TCP memory. That memory is the
 * machine's, shared by every namespace (net.ipv4.tcp_mem): other work on
 * the machine can exhaust it, and the guest's echo server then resets the
 * -L clients it was closing (docs/soak.md, Resets of L-tcp clients).
 */
async function abortsOnMemory(ns: GuestNs): Promise<number> {
  const rows = (await ns.exec(["cat", "/proc/net/netstat"])).stdout.split("\n").filter((l) => l.startsWith("TcpExt:"));
  if (rows.length < 2) return 0;
  const i = rows[0]!.split(/\s+/).indexOf("TCPAbortOnMemory");
  return i < 0 ? 0 : Number(rows[1]!.split(/\s+/)[i]);
}

type Metrics = Map<string, number>;

async function metrics(host: HostNs, port: number): Promise<Metrics> {
  const r = await host.exec(["curl", "-sS", "--noproxy", "*", "--max-time", "10", `http://127.0.0.1:${port}/metrics`]);
  if (r.code !== 0) throw new Error(`/metrics: curl exited ${r.code}: ${r.stderr}`);
  const out: Metrics = new Map();
  for (const l of r.stdout.split("\n")) {
    const m = /^(\S+) (\S+)$/.exec(l);
    if (m && !l.startsWith("#")) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

function flowCounts(m: Metrics): { flows: number; timeWait: number } {
  let flows = 0;
  let timeWait = 0;
  for (const [k, v] of m) {
    if (!k.startsWith("slirpnetstack_flows{")) continue;
    if (k.includes('state="TIME-WAIT"')) timeWait += v;
    else flows += v;
  }
  return { flows, timeWait };
}

function byLabel(m: Metrics, name: string): Array<[string, number]> {
  const rows: Array<[string, number]> = [];
  for (const [k, v] of m) {
    if (k.startsWith(`${name}{`)) rows.push([k.slice(name.length + 1, -1), v]);
  }
  return rows.sort((a, b) => b[1] - a[1]);
}

// ---------------------------------------------------------- report
const mib = (kib: number) => (kib / 1024).toFixed(1);
const pad = (s: string | number, n: number) => String(s).padStart(n);

function sampleRow(s: Sample): string {
  const warm = s.secs < warmupSecs ? " warm-up" : "";
  return `${pad((s.secs / 60).toFixed(1), 6)} ${pad(mib(s.rssKiB), 8)} ${pad(mib(s.anonKiB), 9)} ${pad(s.fds, 6)} ${pad(s.flows, 6)} ${pad(s.timeWait, 6)} ${pad(s.ok, 7)} ${pad(s.failed, 6)} ${pad(s.timedOut, 8)} ${pad(s.hostile, 8)}${warm}`;
}

const HEADER = `${pad("min", 6)} ${pad("RSS MiB", 8)} ${pad("anon MiB", 9)} ${pad("fds", 6)} ${pad("flows", 6)} ${pad("tw", 6)} ${pad("ops ok", 7)} ${pad("failed", 6)} ${pad("timeouts", 8)} ${pad("hostile", 8)}`;

interface Check {
  what: string;
  first: number;
  last: number;
  limit: number;
  ok: boolean;
}

function verdict(): Check[] {
  const warm = samples.filter((s) => s.secs >= warmupSecs);
  if (warm.length < 2) return [];
  const head = warm.slice(0, Math.floor(warm.length / 2));
  const tail = warm.slice(warm.length - head.length);
  const max = (xs: Sample[], f: (s: Sample) => number) => Math.max(...xs.map(f));
  const check = (what: string, f: (s: Sample) => number, limit: (first: number) => number): Check => {
    const first = max(head, f);
    const last = max(tail, f);
    return { what, first, last, limit: limit(first), ok: last <= limit(first) };
  };
  return [
    check("RSS KiB", (s) => s.rssKiB, (b) => Math.round(b * (1 + RSS_TOLERANCE))),
    check("RssAnon KiB", (s) => s.anonKiB, (b) => Math.round(b * (1 + RSS_TOLERANCE))),
    check("open fds", (s) => s.fds, (b) => b + Math.max(FD_TOLERANCE, Math.round(b * FD_NOISE))),
    check("live flows", (s) => s.flows, (b) => Math.round(b * (1 + FLOW_TOLERANCE))),
  ];
}

function report(final: Metrics | null, stackExit: number | null, interrupted: boolean): boolean {
  log("");
  log(`samples (every ${sampleSecs} s; warm-up ${warmupSecs} s; flows = live flows but TCP TIME-WAIT, tw = TCP TIME-WAIT):`);
  log(HEADER);
  for (const s of samples) log(sampleRow(s));
  log("");
  log("traffic (ok / failed / timed out):");
  for (const [kind, [ok, bad, slow]] of [...totals].sort()) log(`  ${kind.padEnd(9)} ${pad(ok, 7)} / ${bad} / ${slow}`);
  log(`  hostile frames sent: ${hostileTotal} (refused by the kernel: ${hostileRefused})`);
  log(`  connections the guest kernel reset for want of TCP memory (TcpExtTCPAbortOnMemory): ${guestAbortsOnMemory}`);
  if (errorExamples.length > 0) log(`  examples of failures:\n    ${errorExamples.slice(0, 10).join("\n    ")}`);
  log("");
  log("probes (fresh 8 MiB download, UDP echo):");
  for (const p of probes) log(`  ${pad((p.secs / 60).toFixed(1), 5)} min  ${p.error ?? `download ${p.downloadMs} ms, UDP echo ${p.udpMs} ms`}`);
  if (final) {
    log("");
    log("/metrics at the end:");
    const line = (name: string, rows: Array<[string, number]>, n = 12) =>
      log(`  ${name}: ${rows.length === 0 ? "none" : rows.slice(0, n).map(([l, v]) => `${l} ${v}`).join(", ")}${rows.length > n ? `, ... (${rows.length - n} more)` : ""}`);
    line("limit hits", byLabel(final, "slirpnetstack_limit_hits_total"));
    line("drops", byLabel(final, "slirpnetstack_drops_total"));
    line("flows", byLabel(final, "slirpnetstack_flows"));
    line("connects", byLabel(final, "slirpnetstack_connects_total"));
    line("frames", byLabel(final, "slirpnetstack_frames_total"));
    line("log lines lost", byLabel(final, "slirpnetstack_log_lines_lost_total"));
  }
  log("");
  const checks = verdict();
  for (const c of checks) {
    log(`${c.ok ? "ok  " : "FAIL"} ${c.what}: ${c.first} at most in the first half after warm-up, ${c.last} in the second (limit ${c.limit})`);
    if (!c.ok) failures.push(`${c.what} grew from ${c.first} to ${c.last} (limit ${c.limit})`);
  }
  if (checks.length === 0 && !interrupted) failures.push("too few samples after the warm-up for a verdict");
  for (const [kind, [ok, bad, slow]] of totals) {
    const all = ok + bad + slow;
    if (all > 0 && bad / all > MAX_FAIL_RATE) failures.push(`${kind}: ${bad} of ${all} operations failed`);
  }
  if (stackExit !== null && stackExit !== 0) failures.push(`the stack exited ${stackExit} on SIGINT`);
  if (interrupted) failures.push("interrupted");
  if (failures.length === 0) {
    log(`soak passed: ${(elapsed() / 60).toFixed(1)} minutes, RSS and fds flat after warm-up`);
    return true;
  }
  log(`soak FAILED:\n  ${[...new Set(failures)].join("\n  ")}`);
  return false;
}

// ---------------------------------------------------------- run
let stack: StackProcess | null = null;
let lastMetrics: Metrics | null = null;
let finishing = false;

async function finish(interrupted: boolean): Promise<never> {
  if (finishing) process.exit(1);
  finishing = true;
  let stackExit: number | null = null;
  if (stack && !interrupted && stack.proc.exitCode === null && stack.proc.signalCode === null) stackExit = await stack.stop("SIGINT");
  const passed = report(lastMetrics, stackExit, interrupted);
  if (stack && stack.proc.exitCode !== null && stack.proc.exitCode !== 0) log(`the stack's stderr:\n${stack.stderr.text()}`);
  await destroyAll();
  process.exit(interrupted ? 130 : passed ? 0 : 1);
}

process.on("SIGINT", () => void finish(true));
process.on("SIGTERM", () => void finish(true));
process.on("SIGHUP", () => void finish(true));

function spawnIn(ns: HostNs | GuestNs, cmd: string[]): { proc: Subprocess<"pipe", "pipe", "pipe">; out: LineReader } {
  const proc = ns.spawn(cmd, { stdin: "pipe" }) as Subprocess<"pipe", "pipe", "pipe">;
  return { proc, out: new LineReader(proc.stdout) };
}

try {
  log(`soak: ${opts.minutes} min, samples every ${sampleSecs} s, warm-up ${warmupSecs} s, probes every ${probeSecs} s, ${opts.hostileRate} hostile frames/s`);
  const host = await HostNs.create(HOST_ADDRS);
  const hostTraffic = spawnIn(host, [PYTHON, TRAFFIC, "host"]);
  await hostTraffic.out.waitFor('"ready"', 20_000);
  const guest = await GuestNs.create();
  stack = await StackProcess.start(["-netns", guest.netnsPath, "-m", "tcp://127.0.0.1:0", "-quiet", "-enable-host", "-exit-with-parent", ...FORWARDS], {
    host,
    binary: BINARY,
  });
  // Printed before "started", which StackProcess.start waited for.
  const m = /Running metrics on 127\.0\.0\.1:(\d+)$/.exec(stack.stderr.lines.find((l) => l.includes("Running metrics on")) ?? "");
  if (!m) throw new Error(`no metrics line in:\n${stack.stderr.text()}`);
  const metricsPort = Number(m[1]);
  const pid = stack.pid;
  log(`stack: pid ${pid} (${readFileSync(`/proc/${pid}/comm`, "utf8").trim()}), metrics on 127.0.0.1:${metricsPort}`);
  const guestTraffic = spawnIn(guest, [PYTHON, TRAFFIC, "guest"]);
  await guestTraffic.out.waitFor('"ready"', 20_000);
  hostTraffic.proc.stdin.write("start -L clients\n");
  hostTraffic.proc.stdin.flush();
  const hostile = spawnIn(guest, [PYTHON, HOSTILE, guest.ifname, String(opts.hostileRate)]);
  const procs = { "host traffic": hostTraffic, "guest traffic": guestTraffic, "hostile frames": hostile };
  for (const [name, p] of Object.entries(procs)) void consume(name, p.out);

  log(HEADER);
  // Probes run beside the sampling, one at a time; a sample that comes late
  // (the machine stalled) is taken at once and the next one on the grid.
  let nextProbe = probeSecs;
  let probing: Promise<void> | null = null;
  const probe = async () => {
    const secs = elapsed();
    const r = await guest.exec([PYTHON, TRAFFIC, "probe"], { timeoutMs: 120_000 });
    const p = JSON.parse(r.stdout.trim().split("\n").pop() || "{}") as { download_ms?: number; udp_ms?: number; download_error?: string; udp_error?: string };
    const error = r.code !== 0 ? `probe exited ${r.code}: ${r.stderr.trim()}` : [p.download_error, p.udp_error].filter(Boolean).join("; ") || undefined;
    probes.push({ secs, downloadMs: p.download_ms, udpMs: p.udp_ms, error });
    if (error) failures.push(`probe at ${(secs / 60).toFixed(1)} min: ${error}`);
    probing = null;
  };
  for (let due = 0; ; due = Math.max(due + sampleSecs, Math.ceil(elapsed() / sampleSecs) * sampleSecs)) {
    while (elapsed() < due) {
      await Bun.sleep(Math.min(1000, (due - elapsed()) * 1000));
      if (elapsed() >= nextProbe && probing === null && elapsed() < totalSecs - 10) {
        nextProbe += probeSecs;
        probing = probe();
      }
    }
    if (stack.proc.exitCode !== null || stack.proc.signalCode !== null) {
      failures.push(`the stack died (code ${stack.proc.exitCode}, signal ${stack.proc.signalCode}):\n${stack.stderr.text()}`);
      stack = null;
      break;
    }
    let dead = false;
    for (const [name, p] of Object.entries(procs)) {
      if (p.proc.exitCode === null && p.proc.signalCode === null) continue;
      dead = true;
      failures.push(`${name} exited ${p.proc.exitCode ?? p.proc.signalCode}: ${await new Response(p.proc.stderr).text()}`);
    }
    if (dead) break;
    const fds = fdCount(pid);
    const mem = memory(pid);
    lastMetrics = await metrics(host, metricsPort);
    guestAbortsOnMemory = await abortsOnMemory(guest);
    const { flows, timeWait } = flowCounts(lastMetrics);
    const s: Sample = { secs: elapsed(), rssKiB: mem.rss, anonKiB: mem.anon, fds, flows, timeWait, ok: sinceOk, failed: sinceFailed, timedOut: sinceTimedOut, hostile: sinceHostile };
    sinceOk = sinceFailed = sinceTimedOut = sinceHostile = 0;
    samples.push(s);
    log(sampleRow(s));
    if (due >= totalSecs) break;
  }
  if (probing) await probing;
  // Stop the load; the last /metrics sample stands for the end of the run.
  for (const p of [hostTraffic, guestTraffic]) p.proc.stdin.end();
  hostile.proc.kill("SIGKILL");
  await Promise.race([Promise.all([hostTraffic.proc.exited, guestTraffic.proc.exited]), Bun.sleep(5000)]);
  await Bun.sleep(1500);
} catch (e) {
  failures.push(`soak error: ${(e as Error).stack ?? String(e)}`);
}
await finish(false);
