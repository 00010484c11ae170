// Side-by-side benchmark: this project's ./slirpnetstack against slirp4netns
// and pasta, in one run, on the same machine, with the same clients.
//
//   npm run bench            (= bun build.ts && bun bench/bench.ts; as root)
//
// See bench/README.md for what is measured and how. Knobs (environment):
//   BENCH_MTUS=65520,1500      MTUs to run (BENCH_MTU=N: just one); 65520 means
//                              65521 for slirpnetstack's tap, as in its README
//   BENCH_IMPLS=slirpnetstack,slirp4netns,pasta   (also sns-slirp4netns: our binary
//                              started as slirp4netns, with its command line)
//   BENCH_TESTS=launch,startup,idle,tput,rr,crr    BENCH_MODES=free,1cpu
//   BENCH_REPS=5 (iperf3 samples per direction)  BENCH_RR_REPS=7 (ping-pong and
//   connect-rate samples per mode)  BENCH_STARTUP_REPS=5  BENCH_LAUNCH_REPS=15
//   BENCH_IPERF_SECS=3  BENCH_IPERF_OMIT=1  BENCH_RR_COUNT=2000
//   BENCH_UDP_COUNT=2000  BENCH_CRR_COUNT=500  BENCH_IDLE_SECS=5  BENCH_PIN_CPU=0
//   BENCH_REF=slirp4netns  BENCH_OUT=FILE (JSON lines)  BENCH_KEEP=1 (keep logs)
//   BENCH_BIN=./slirpnetstack  BENCH_SNS_ARGS="..." (extra flags for it)
import type { Subprocess } from "bun";
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { ECHO_PORT, HOST_ADDR, IPERF_PORT, pasta, slirp4netns, slirpnetstack, slirpnetstackAsSlirp4netns, type Impl } from "./lib/impls.ts";
import { foreignCpu, machineCpu, processTree, rates, rxPackets, TCP_LISTEN, TCP_TIME_WAIT, tcpSockets, usage, type Usage } from "./lib/procfs.ts";
import { LAUNCH_KEYS, launchTable, mediansTable, ratioTable, Result } from "./lib/report.ts";
import { alive, lastJson, log, Output, run, silence, sleep, start, stop, stopAll, tail } from "./lib/sys.ts";
import { runInSandbox } from "./lib/sandbox.ts";

const BENCH_DIR = import.meta.dir;
const ROOT = dirname(BENCH_DIR);
const CLIENT = join(BENCH_DIR, "netclient.py");
const env = process.env;

// ------------------------------------------------------------------ settings
function die(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

function int(name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) die(`${name} must be an integer from ${min} to ${max}, not '${raw}'`);
  return Number(raw);
}

function list(name: string, def: string, allowed?: string[]): string[] {
  const items = (env[name] || def).split(/[\s,]+/).filter(Boolean);
  if (allowed) for (const x of items) if (!allowed.includes(x)) die(`${name}: unknown '${x}' (choose from ${allowed.join(", ")})`);
  return items;
}

const mtus = list(env.BENCH_MTU ? "BENCH_MTU" : "BENCH_MTUS", "65520,1500").map((m) => {
  // 1280: every guest has IPv6, which Linux turns off below it; 65520: slirp4netns's limit is 65521
  if (!/^\d+$/.test(m) || Number(m) < 1280 || Number(m) > 65520) die(`MTU must be an integer from 1280 to 65520, not '${m}'`);
  return Number(m);
});
const cfg = {
  mtus,
  impls: list("BENCH_IMPLS", "slirpnetstack,slirp4netns,pasta", ["slirpnetstack", "sns-slirp4netns", "slirp4netns", "pasta"]),
  tests: new Set(list("BENCH_TESTS", "launch,startup,idle,tput,rr,crr", ["launch", "startup", "idle", "tput", "rr", "crr"])),
  modes: list("BENCH_MODES", "free,1cpu", ["free", "1cpu"]),
  reps: int("BENCH_REPS", 5, 1, 100),
  rrReps: int("BENCH_RR_REPS", 7, 1, 100),
  startupReps: int("BENCH_STARTUP_REPS", 5, 1, 100),
  launchReps: int("BENCH_LAUNCH_REPS", 15, 1, 1000),
  iperfSecs: int("BENCH_IPERF_SECS", 3, 1, 600),
  iperfOmit: int("BENCH_IPERF_OMIT", 1, 0, 60),
  rrCount: int("BENCH_RR_COUNT", 2000, 10, 10_000_000),
  udpCount: int("BENCH_UDP_COUNT", 2000, 10, 10_000_000),
  crrCount: int("BENCH_CRR_COUNT", 500, 10, 20_000),
  idleSecs: int("BENCH_IDLE_SECS", 5, 1, 600),
  pinCpu: int("BENCH_PIN_CPU", 0, 0, 4095),
  ref: env.BENCH_REF || "slirp4netns",
  out: env.BENCH_OUT || "",
  keep: !!env.BENCH_KEEP && env.BENCH_KEEP !== "0",
  bin: env.BENCH_BIN ? (env.BENCH_BIN.startsWith("/") ? env.BENCH_BIN : join(process.cwd(), env.BENCH_BIN)) : join(ROOT, "slirpnetstack"),
  snsArgs: (env.BENCH_SNS_ARGS ?? "").split(/\s+/).filter(Boolean),
};

// ------------------------------------------------------------------ outside the sandbox
// Re-run this script as PID 1 of a private network + PID + mount namespace:
// the benchmark's "host" has only lo and a veth into a sink, and everything
// we start dies with us, whatever happens.
if (env.BENCH_SANDBOX !== "1") {
  if (process.getuid?.() !== 0) die("must run as root (it creates network namespaces and taps)");
  for (const t of ["unshare", "nsenter", "ip", "taskset", "iperf3", "python3", "sh"]) {
    if (!Bun.which(t)) die(`missing tool: ${t}`);
  }
  if (cfg.pinCpu >= navigator.hardwareConcurrency) die(`BENCH_PIN_CPU=${cfg.pinCpu}: this machine has ${navigator.hardwareConcurrency} CPUs`);
  // the real interpreter, not a pyenv-style shim script (slow, and a shell in the process tree)
  const py = Bun.spawnSync({ cmd: ["python3", "-c", "import sys; print(sys.executable)"], stdout: "pipe" }).stdout.toString().trim();
  const tck = Bun.spawnSync({ cmd: ["getconf", "CLK_TCK"], stdout: "pipe" }).stdout.toString().trim() || "100";
  const work = mkdtempSync("/tmp/slirpnetstack-bench.");
  // Run a copy: a rebuild of ./slirpnetstack during the run must not mix versions.
  if ((cfg.impls.includes("slirpnetstack") || cfg.impls.includes("sns-slirp4netns")) && existsSync(cfg.bin)) {
    copyFileSync(cfg.bin, join(work, "slirpnetstack"));
    symlinkSync("slirpnetstack", join(work, "slirp4netns"));
  }
  const code = await runInSandbox(import.meta.path, [], { ...env, BENCH_SANDBOX: "1", BENCH_WORK: work, BENCH_PYTHON: py || "python3", BENCH_CLK_TCK: tck }, 10_000);
  if (cfg.keep) process.stderr.write(`bench: logs kept in ${work}\n`);
  else rmSync(work, { recursive: true, force: true });
  process.exit(code ?? 1);
}

// ------------------------------------------------------------------ inside the sandbox
const WORK = env.BENCH_WORK!;
const PY = env.BENCH_PYTHON || "python3";
const SINK = "bsink0";
const ALL_CPUS = (readFileSync("/proc/self/status", "utf8").match(/^Cpus_allowed_list:\s*(\S+)/m) ?? [])[1] ?? "0-1023";

let aborting = false;
async function abort(why: string, code: number): Promise<never> {
  if (!aborting) {
    aborting = true;
    log(`${why}; stopping everything`);
    silence();
    await stopAll(1000);
  }
  process.exit(code);
}
process.on("SIGINT", () => void abort("interrupted", 130));
process.on("SIGTERM", () => void abort("terminated", 143));
process.on("SIGHUP", () => void abort("hangup", 129));

async function must(cmd: string[]): Promise<void> {
  const r = await run(cmd, 15_000);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${tail(r.err || r.out)}`);
}

function sysctl(path: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${path}`, value);
  } catch (e) {
    log(`sysctl ${path}: ${(e as Error).message}`);
  }
}

/** lo for the servers; a default route into a veth whose peer (the sink) goes nowhere. */
async function setupHost(): Promise<void> {
  // New interfaces: no router solicitations or DAD, MLD reports over at once,
  // so that the sink's counter only moves for packets some stack let out.
  for (const scope of ["default", "all"]) {
    sysctl(`net/ipv6/conf/${scope}/accept_ra`, "0");
    sysctl(`net/ipv6/conf/${scope}/router_solicitations`, "0");
    sysctl(`net/ipv6/conf/${scope}/dad_transmits`, "0");
    sysctl(`net/ipv6/conf/${scope}/mldv1_unsolicited_report_interval`, "10");
    sysctl(`net/ipv6/conf/${scope}/mldv2_unsolicited_report_interval`, "10");
  }
  await must(["ip", "link", "set", "lo", "up"]);
  await must(["ip", "link", "add", "bup0", "type", "veth", "peer", "name", SINK]);
  sysctl(`net/ipv6/conf/${SINK}/disable_ipv6`, "1");
  await must(["ip", "link", "set", SINK, "up"]);
  await must(["ip", "link", "set", "bup0", "up"]);
  await must(["ip", "addr", "add", "192.0.2.2/24", "dev", "bup0"]);
  await must(["ip", "-6", "addr", "add", "2001:db8::2/64", "dev", "bup0", "nodad"]);
  await must(["ip", "route", "add", "default", "via", "192.0.2.1", "dev", "bup0"]);
  await must(["ip", "-6", "route", "add", "default", "via", "2001:db8::1", "dev", "bup0"]);
  await sleep(1000); // let the interfaces' own MLD reports pass before we count
}

// ------------------------------------------------------------------ servers on host 127.0.0.1
let echo: Subprocess | null = null;
let iperfd: Subprocess | null = null;

async function startEcho(): Promise<void> {
  const errFd = openSync(join(WORK, "echo.log"), "a");
  echo = start([PY, CLIENT, "serve", "--port", String(ECHO_PORT)], "pipe", errFd);
  closeSync(errFd);
  if (!(await new Output(echo.stdout as ReadableStream<Uint8Array>).waitFor("ready", 10_000))) {
    throw new Error(`echo server did not start: ${tail(readFileSync(join(WORK, "echo.log"), "utf8"))}`);
  }
}

async function startIperf(): Promise<void> {
  await stop(iperfd, 1000);
  const fd = openSync(join(WORK, "iperf3-server.log"), "a");
  iperfd = start(["iperf3", "-s", "-B", "127.0.0.1", "-p", String(IPERF_PORT)], fd, fd);
  closeSync(fd);
  for (let i = 0; i < 500; i++) {
    if (tcpSockets("self", TCP_LISTEN, IPERF_PORT) > 0) return;
    if (!alive(iperfd)) break;
    await sleep(10);
  }
  throw new Error(`iperf3 server did not start: ${tail(readFileSync(join(WORK, "iperf3-server.log"), "utf8"))}`);
}

// ------------------------------------------------------------------ guests and stacks
interface Instance {
  impl: Impl;
  guest: Subprocess; // `sleep` inside the guest's user + network namespace
  stack: Subprocess;
}

const inGuest = (inst: Instance | Subprocess, pinned = false): string[] => [
  ...(pinned ? ["taskset", "-c", String(cfg.pinCpu)] : []),
  "nsenter", `--net=/proc/${"guest" in inst ? inst.guest.pid : inst.pid}/ns/net`, "--",
];

let seq = 0;

/** A fresh guest (unshare -Urn) and the stack attached to it; measures exec -> first guest TCP echo. */
async function launch(impl: Impl, mtu: number, res: Result, measure: boolean): Promise<Instance | null> {
  const n = ++seq;
  const guest = start(["unshare", "-Urn", "sh", "-c", `${impl.guestSetup(mtu)} && echo guest-ready && exec sleep 1000000`], "pipe", "pipe");
  const gout = new Output(guest.stdout as ReadableStream<Uint8Array>);
  const gerr = new Output(guest.stderr as ReadableStream<Uint8Array>);
  if (!(await gout.waitFor("guest-ready", 10_000))) {
    res.error("guest", `setup failed: ${tail(gerr.text)}`);
    await stop(guest, 500);
    return null;
  }
  // The probe waits in the guest for the link to come up, then tries to
  // connect every 5 ms; the stack is started once the probe is waiting.
  const stamp = join(WORK, `t0-${n}`);
  const probe = start(
    [...inGuest(guest), PY, CLIENT, "probe", "--iface", impl.iface, "--host", HOST_ADDR, "--port", String(ECHO_PORT), "--stamp", stamp],
    "pipe",
    "pipe",
  );
  const pout = new Output(probe.stdout as ReadableStream<Uint8Array>);
  const perr = new Output(probe.stderr as ReadableStream<Uint8Array>);
  if (!(await pout.waitFor("waiting", 10_000))) {
    res.error("startup", `probe did not start: ${tail(perr.text)}`);
    await Promise.all([stop(probe, 0), stop(guest, 500)]);
    return null;
  }
  const logPath = join(WORK, `${impl.name}-mtu${mtu}.log`);
  const cmd = impl.command(guest.pid, mtu);
  const fd = openSync(logPath, "a");
  writeSync(fd, `+ ${cmd.join(" ")}\n`);
  // The launcher resets signal dispositions (Bun and Python ignore SIGPIPE,
  // which pasta refuses) and stamps CLOCK_MONOTONIC right before execve.
  const stack = start([PY, CLIENT, "exec", "--stamp", stamp, "--", ...cmd], fd, fd);
  closeSync(fd);
  const first = await Promise.race([
    probe.exited.then(() => "probe"),
    stack.exited.then(() => "stack"),
    sleep(30_000).then(() => "timeout"),
  ]);
  const fail = async (msg: string) => {
    res.error("startup", msg);
    await Promise.all([stop(probe, 0), stop(stack, 3000)]);
    await stop(guest, 500);
    return null;
  };
  const logTail = () => tail(readFileSync(logPath, "utf8"), 4);
  if (first === "stack") return fail(`stack exited with ${stack.exitCode ?? stack.signalCode} before the guest got through; log: ${logTail()}`);
  if (first === "timeout") return fail(`no guest TCP echo within 30 s; log: ${logTail()}`);
  const r = lastJson(await pout.all(2000));
  if (!r || r.ok !== true) return fail(`${(r?.error as string) ?? tail(perr.text)}; log: ${logTail()}`);
  if (measure) res.add("startup_ms", r.startup_ms as number);
  return { impl, guest, stack };
}

async function shutdown(inst: Instance): Promise<void> {
  await stop(inst.stack, 3000);
  await stop(inst.guest, 500);
}

// ------------------------------------------------------------------ measurements
/** Runs fn and charges any packet that reached the sink meanwhile to `results`. */
async function contained<T>(results: Result[], what: string, fn: () => Promise<T>): Promise<T> {
  const before = rxPackets(SINK);
  const v = await fn();
  const leaked = rxPackets(SINK) - before;
  if (leaked > 0) {
    for (const r of results) r.error("containment", `${leaked} packet(s) reached the sink during ${what}`);
    log(`  ! ${leaked} packet(s) reached the sink during ${what}`);
  }
  return v;
}

/** Runs a netclient.py client in the guest; returns its JSON result or records an error. */
async function client(inst: Instance, res: Result, test: string, args: string[], pinned: boolean, timeoutMs: number) {
  const began = performance.now();
  const r = await run([...inGuest(inst, pinned), PY, CLIENT, ...args], timeoutMs);
  const took = (performance.now() - began) / 1000;
  if (took > 10) log(`  (slow: ${inst.impl.name} ${test} took ${took.toFixed(1)} s)`);
  const j = lastJson(r.out);
  if (!j || j.ok === false) {
    const msg = r.timedOut ? `no result within ${timeoutMs / 1000} s` : ((j?.error as string) ?? tail(r.err || r.out));
    res.error(test, msg);
    log(`  ! ${inst.impl.name} ${test}: ${msg}`);
    return null;
  }
  return j;
}

// UDP clients use a fresh source port below the ephemeral range (32768+)
// every time. pasta binds its host socket to the guest's source port and
// drops the flow when that port is taken on the host, which the other
// stacks' host-side sockets (ephemeral ports) would sometimes do.
let udpPort = 20000;
const nextUdpPort = () => String(udpPort >= 29999 ? (udpPort = 20000) : ++udpPort);

const rotate = <T>(xs: T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

/** One progress line per implementation with the medians of `keys` so far. */
function progress(results: Iterable<Result>, keys: string[]): void {
  for (const r of results) {
    const parts = keys.filter((k) => r.samples[k]?.length).map((k) => `${k}=${Number(r.med(k)!.toPrecision(3))}`);
    if (parts.length) log(`    ${r.impl.padEnd(13)} ${parts.join(" ")}`);
  }
}

async function idleWindow(insts: Instance[], results: Map<string, Result>, prefix: "idle" | "idle_after"): Promise<void> {
  await sleep(1000);
  const rs = insts.map((i) => results.get(i.impl.name)!);
  await contained(rs, prefix.replace("_", " "), async () => {
    // all stacks at once: each one's window is the same few quiet seconds
    const a = insts.map((i) => usage(i.stack.pid));
    await sleep(cfg.idleSecs * 1000);
    const b = insts.map((i) => usage(i.stack.pid));
    rs.forEach((res, k) => {
      if (!a[k] || !b[k]) return res.error(prefix, "stack process is gone");
      const r = rates(a[k]!, b[k]!);
      res.add(`${prefix}_cpu_pct`, r.cpuPct);
      res.add(`${prefix}_wakeups_per_s`, r.wakeupsPerS);
      if (prefix === "idle") {
        res.add("rss_idle_mib", b[k]!.rssKiB / 1024);
        res.note("idle_threads", b[k]!.threads);
        res.note("idle_pids", b[k]!.pids.length);
      }
    });
  });
}

async function iperfSample(inst: Instance, res: Result, dir: "g2h" | "h2g"): Promise<void> {
  const secs = cfg.iperfSecs + cfg.iperfOmit;
  const a = usage(inst.stack.pid);
  const r = await run(
    [
      ...inGuest(inst), "iperf3", "-c", HOST_ADDR, "-p", String(IPERF_PORT), "-t", String(cfg.iperfSecs),
      "-O", String(cfg.iperfOmit), "-J", "--connect-timeout", "3000", ...(dir === "h2g" ? ["-R"] : []),
    ],
    (secs + 20) * 1000,
  );
  const b = usage(inst.stack.pid);
  let j: any = null;
  try {
    j = JSON.parse(r.out);
  } catch {
    // reported below
  }
  const bps = j?.end?.sum_received?.bits_per_second;
  if (typeof bps !== "number" || j?.error) {
    const msg = j?.error ?? (r.timedOut ? "iperf3 timed out" : tail(r.err || r.out) || `exit ${r.code}`);
    res.error(`tcp_${dir}`, msg);
    log(`  ! ${inst.impl.name} iperf3 ${dir}: ${msg}`);
    await startIperf(); // an aborted test can leave the server busy for the next client
    return;
  }
  res.add(`tcp_${dir}_gbps`, bps / 1e9);
  res.note(`tcp_${dir}_retransmits`, j.end?.sum_sent?.retransmits ?? null);
  if (a && b) res.add(`tcp_${dir}_cpu_pct`, rates(a, b).statCpuPct);
}

/** Every thread of every stack process, and the echo server, onto `cpus`. */
async function pin(insts: Instance[], cpus: string, results: Map<string, Result>): Promise<void> {
  const jobs: Promise<void>[] = [];
  for (const inst of insts) {
    for (const pid of processTree(inst.stack.pid)) {
      jobs.push(
        run(["taskset", "-a", "-p", "-c", cpus, String(pid)], 5000).then((r) => {
          if (r.code !== 0) results.get(inst.impl.name)!.error("pin", `taskset ${pid}: ${tail(r.err)}`);
        }),
      );
    }
  }
  if (echo) jobs.push(run(["taskset", "-a", "-p", "-c", cpus, String(echo.pid)], 5000).then(() => {}));
  await Promise.all(jobs);
}

/**
 * Untimed: a few hundred round trips and connections through each fresh
 * stack before the first timed sample, so that no implementation's first
 * sample pays for lazy initialisation (or, for Bun, for the JIT compiling
 * the connection paths) while the others' do not.
 */
async function warmUp(inst: Instance, res: Result): Promise<void> {
  const target = ["--host", HOST_ADDR, "--port", String(ECHO_PORT)];
  await client(inst, res, "warm-up", ["tcp-rr", ...target, "--count", "1000"], false, 60_000);
  await client(inst, res, "warm-up", ["udp-rr", ...target, "--count", "1000", "--sport", nextUdpPort()], false, 60_000);
  await client(inst, res, "warm-up", ["crr", ...target, "--count", "300"], false, 60_000);
}

async function latencySamples(inst: Instance, res: Result, pinned: boolean): Promise<void> {
  const sfx = pinned ? "_1cpu" : "";
  const target = ["--host", HOST_ADDR, "--port", String(ECHO_PORT)];
  if (cfg.tests.has("rr")) {
    const t = await client(inst, res, `tcp_rr${sfx}`, ["tcp-rr", ...target, "--count", String(cfg.rrCount)], pinned, 60_000);
    if (t) {
      res.add(`tcp_rr${sfx}_us`, t.us_per_rt as number);
      res.note(`tcp_rr${sfx}_p99_us`, t.p99_us);
    }
    const u = await client(inst, res, `udp_rr${sfx}`, ["udp-rr", ...target, "--count", String(cfg.udpCount), "--deadline", "20", "--sport", nextUdpPort()], pinned, 40_000);
    if (u) {
      res.add(`udp_rr${sfx}_us`, u.us_per_rt as number);
      res.note(`udp_rr${sfx}_p99_us`, u.p99_us);
      res.add(`udp_rr${sfx}_loss_pct`, u.loss_pct as number);
      if ((u.lost as number) > 0) log(`  (${inst.impl.name} udp_rr${sfx}: ${u.lost} of ${u.sent} datagrams lost)`);
    }
  }
  if (cfg.tests.has("crr")) {
    // TIME-WAIT left by earlier samples (guest: its own closes; host: the stack's sockets)
    res.note(`crr${sfx}_timewait_before`, { guest: tcpSockets(inst.guest.pid, TCP_TIME_WAIT), host: tcpSockets("self", TCP_TIME_WAIT) });
    const c = await client(inst, res, `tcp_crr${sfx}`, ["crr", ...target, "--count", String(cfg.crrCount)], pinned, 120_000);
    if (c) {
      res.add(`tcp_crr${sfx}_per_s`, c.conn_per_s as number);
      if ((c.errors as number) > 0) res.note(`tcp_crr${sfx}_errors`, { errors: c.errors, last: c.last_error });
    }
  }
}

// ------------------------------------------------------------------ launch
/** A `bun build --compile` hello-world: what any compiled Bun program pays to start and exit. */
async function buildHello(): Promise<string> {
  const entry = join(WORK, "hello.ts");
  const out = join(WORK, "hello");
  writeFileSync(entry, 'console.log("hello");\n');
  const r = await run([process.execPath, "build", "--compile", entry, "--outfile", out], 120_000);
  if (r.code !== 0) throw new Error(`bun build --compile hello.ts: ${tail(r.err || r.out)}`);
  return out;
}

/**
 * slirpnetstack's own start-up, against the hello-world, in turns: exec to
 * exit for -version, -h and a flag error, exec to "Slirpnetstack started"
 * in attach mode (the README's guest, tap pre-made), and `-- /bin/true`
 * (run mode: namespaces, tap, the command, its exit).
 */
async function launchSamples(impl: Impl, res: Result): Promise<void> {
  const hello = await buildHello();
  const guest = start(["unshare", "-Urn", "sh", "-c", `${impl.guestSetup(1500)} && echo guest-ready && exec sleep 1000000`], "pipe", "pipe");
  try {
    if (!(await new Output(guest.stdout as ReadableStream<Uint8Array>).waitFor("guest-ready", 10_000))) throw new Error("launch: guest setup failed");
    const bin = impl.command(guest.pid, 1500)[0]!;
    const cases: [string, string[], string[], number | null][] = [
      ["launch_hello_ms", [], [hello], 0],
      ["launch_version_ms", [], [bin, "-version"], 0],
      ["launch_help_ms", [], [bin, "-h"], 2],
      ["launch_flag_error_ms", [], [bin, "-no-such-flag"], 2],
      ["launch_attach_ms", ["--until", "Slirpnetstack started"], [bin, "-netns", `/proc/${guest.pid}/ns/net`, "-interface", "tun0"], null],
      ["launch_run_true_ms", [], [bin, "--", "/bin/true"], 0],
    ];
    for (let rep = 0; rep < cfg.launchReps; rep++) {
      for (const [key, opts, argv, code] of rotate(cases, rep)) {
        const r = await run([PY, CLIENT, "launch", ...opts, "--", ...argv], 30_000);
        const j = lastJson(r.out);
        if (!j || j.ok !== true) res.error(key, (j?.error as string) ?? tail(r.err || r.out));
        else if (code !== null && j.code !== code) res.error(key, `exit status ${j.code}, expected ${code}`);
        else res.add(key, j.ms as number);
      }
    }
  } finally {
    await stop(guest, 500);
  }
}

// ------------------------------------------------------------------ one MTU
async function runMtu(mtu: number, impls: Impl[], versions: Map<string, string>): Promise<Result[]> {
  const results = new Map<string, Result>();
  for (const impl of impls) {
    results.set(impl.name, new Result(impl.name, mtu, impl.linkMtu(mtu), versions.get(impl.name)!, impl.command("{pid}", mtu).join(" ")));
  }
  const R = (i: Impl | Instance) => results.get("impl" in i ? i.impl.name : i.name)!;
  const insts = new Map<string, Instance>();
  const live = () => impls.filter((i) => insts.has(i.name)).map((i) => insts.get(i.name)!);
  const sinkStart = rxPackets(SINK);
  const cpuStart = machineCpu();
  const loadStart = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  try {
    // Launch times do not depend on the MTU: measured in the first pass.
    const sns = impls.find((i) => i.name === "slirpnetstack");
    if (cfg.tests.has("launch") && sns && mtu === cfg.mtus[0]) {
      log(`launch x${cfg.launchReps}: hello-world, -version, -h, flag error, attach, -- /bin/true`);
      await contained([R(sns)], "launch", () => launchSamples(sns, R(sns)));
      progress([R(sns)], LAUNCH_KEYS);
    }
    // Startup: a fresh guest and stack per sample, implementations taking
    // turns; the last instance of each is the one the other tests use.
    const measure = cfg.tests.has("startup");
    const n = measure ? cfg.startupReps : 1;
    log(`MTU ${mtu}: ${measure ? `startup x${n}` : "starting the stacks"}`);
    for (let rep = 0; rep < n; rep++) {
      for (const impl of rotate(impls, rep)) {
        const old = insts.get(impl.name);
        if (old) {
          insts.delete(impl.name);
          await shutdown(old);
        }
        const inst = await contained([R(impl)], `${impl.name} startup`, () => launch(impl, mtu, R(impl), measure));
        if (inst) insts.set(impl.name, inst);
        else log(`  ! ${impl.name}: ${R(impl).errors.at(-1)}`);
      }
    }
    if (measure) progress(results.values(), ["startup_ms"]);
    for (const impl of impls) if (!insts.has(impl.name)) log(`  ${impl.name} did not start; no further tests for it at MTU ${mtu}`);

    if (cfg.tests.has("idle") && live().length) {
      log(`MTU ${mtu}: idle ${cfg.idleSecs} s`);
      await idleWindow(live(), results, "idle");
      progress(results.values(), ["idle_cpu_pct", "idle_wakeups_per_s", "rss_idle_mib"]);
    }

    if (cfg.tests.has("tput") && live().length) {
      log(`MTU ${mtu}: iperf3 ${cfg.iperfSecs}+${cfg.iperfOmit} s x${cfg.reps} each way`);
      for (let rep = 0; rep < cfg.reps; rep++) {
        for (const dir of ["g2h", "h2g"] as const) {
          for (const inst of rotate(live(), rep)) {
            await contained([R(inst)], `${inst.impl.name} iperf3`, () => iperfSample(inst, R(inst), dir));
          }
        }
      }
      for (const inst of live()) {
        const u: Usage | null = usage(inst.stack.pid);
        if (u) R(inst).add("peak_rss_mib", u.hwmKiB / 1024);
      }
      progress(results.values(), ["tcp_g2h_gbps", "tcp_h2g_gbps", "tcp_g2h_cpu_pct", "tcp_h2g_cpu_pct", "peak_rss_mib"]);
    }

    if ((cfg.tests.has("rr") || cfg.tests.has("crr")) && live().length) {
      log(`MTU ${mtu}: warm-up (untimed)`);
      for (const inst of live()) await contained([R(inst)], `${inst.impl.name} warm-up`, () => warmUp(inst, R(inst)));
      for (const mode of cfg.modes) {
        const pinned = mode === "1cpu";
        log(`MTU ${mtu}: ping-pong / connect rate, ${pinned ? `all on CPU ${cfg.pinCpu}` : "free"} x${cfg.rrReps}`);
        if (pinned) await pin(live(), String(cfg.pinCpu), results);
        try {
          for (let rep = 0; rep < cfg.rrReps; rep++) {
            for (const inst of rotate(live(), rep)) {
              await contained([R(inst)], `${inst.impl.name} ping-pong`, () => latencySamples(inst, R(inst), pinned));
            }
          }
        } finally {
          if (pinned) await pin(live(), ALL_CPUS, results);
        }
        const sfx = pinned ? "_1cpu" : "";
        progress(results.values(), [`tcp_rr${sfx}_us`, `udp_rr${sfx}_us`, `tcp_crr${sfx}_per_s`]);
      }
    }

    if (cfg.tests.has("idle") && live().length) {
      log(`MTU ${mtu}: idle after load ${cfg.idleSecs} s`);
      await idleWindow(live(), results, "idle_after");
      progress(results.values(), ["idle_after_cpu_pct", "idle_after_wakeups_per_s"]);
    }

    for (const inst of live()) {
      if (!alive(inst.stack)) R(inst).error("stack", `exited with ${inst.stack.exitCode ?? inst.stack.signalCode} during the run`);
    }
  } finally {
    await Promise.all(live().map(shutdown));
  }
  const leaked = rxPackets(SINK) - sinkStart;
  const machine = { ...foreignCpu(cpuStart, machineCpu()), load1: [loadStart, readFileSync("/proc/loadavg", "utf8").split(" ")[0]] };
  machine.othersPct = Math.round(machine.othersPct * 10) / 10;
  machine.stealPct = Math.round(machine.stealPct * 10) / 10;
  log(`MTU ${mtu}: done; ${leaked} packet(s) at the sink; other processes used ${machine.othersPct}% of a core, steal ${machine.stealPct}%`);
  for (const r of results.values()) {
    r.note("sink_packets", leaked);
    r.note("machine", machine);
  }
  return [...results.values()];
}

// ------------------------------------------------------------------ main
async function main(): Promise<void> {
  const began = performance.now();
  const all: Record<string, () => Impl> = {
    slirpnetstack: () => slirpnetstack(cfg.bin, cfg.snsArgs, join(WORK, "slirpnetstack")),
    "sns-slirp4netns": () => slirpnetstackAsSlirp4netns(cfg.bin, join(WORK, "slirp4netns")),
    slirp4netns,
    pasta,
  };
  const impls: Impl[] = [];
  const skipped: string[] = [];
  const versions = new Map<string, string>();
  for (const name of cfg.impls) {
    const impl = all[name]!();
    const why = impl.missing();
    if (why) {
      skipped.push(`${name}: skipped, ${why}`);
      log(`skipping ${name}: ${why}`);
      continue;
    }
    impls.push(impl);
    versions.set(name, impl.version());
  }
  if (impls.length === 0) throw new Error("no implementation to run");

  await setupHost();
  await startEcho();
  await startIperf();
  log(`work dir ${WORK}; ${impls.map((i) => `${i.name} (${versions.get(i.name)})`).join(", ")}; MTUs ${cfg.mtus.join(", ")}`);

  const byMtu: Result[][] = [];
  for (const mtu of cfg.mtus) byMtu.push(await runMtu(mtu, impls, versions));
  await stop(iperfd, 1000);
  await stop(echo, 1000);

  // ---- report
  const py = Bun.spawnSync({ cmd: [PY, "--version"], stdout: "pipe" }).stdout.toString().trim();
  const settings = {
    reps: cfg.reps, rr_reps: cfg.rrReps, startup_reps: cfg.startupReps, launch_reps: cfg.launchReps, iperf_secs: cfg.iperfSecs,
    iperf_omit: cfg.iperfOmit, rr_count: cfg.rrCount, udp_count: cfg.udpCount, crr_count: cfg.crrCount,
    idle_secs: cfg.idleSecs, pin_cpu: cfg.pinCpu, tests: [...cfg.tests], modes: cfg.modes,
    cpus: navigator.hardwareConcurrency, kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    iperf3: Bun.spawnSync({ cmd: ["iperf3", "--version"], stdout: "pipe" }).stdout.toString().split("\n")[0]?.trim(),
    python: py, target: HOST_ADDR,
  };
  const out: string[] = [];
  for (const results of byMtu) {
    const mtu = results[0]!.mtu;
    out.push("", `## MTU ${mtu} (guest link MTU: ${results.map((r) => `${r.impl} ${r.linkMtu}`).join(", ")})`, "");
    out.push(mediansTable(results), "");
    out.push("Medians of the samples, [min..max] of the samples.", "");
    const launched = results.find((r) => r.samples.launch_hello_ms?.length);
    if (launched) out.push(launchTable(launched), "", "Ratio = median / median of the compiled hello-world.", "");
    const ref = results.find((r) => r.impl === cfg.ref);
    if (ref && results.length > 1) out.push(ratioTable(results, ref), "", `Ratio = median / median of ${ref.impl}; "better" says which direction is good.`, "");
    else out.push(`(no ratio table: ${cfg.ref} was not measured)`, "");
    for (const r of results) for (const e of r.errors) out.push(`error: ${r.impl} @ MTU ${mtu}: ${e}`);
    const leaked = (results[0]!.notes.sink_packets?.[0] as number) ?? 0;
    out.push(`containment: ${leaked} packet(s) reached the sink at MTU ${mtu}${leaked ? " (SOMETHING LEAKED)" : ""}`);
    const m = results[0]!.notes.machine?.[0] as { othersPct: number; stealPct: number; load1: string[] } | undefined;
    if (m) {
      out.push(
        `machine during MTU ${mtu}: other processes used ${m.othersPct}% of a core on average, steal ${m.stealPct}%, ` +
          `load average ${m.load1[0]} -> ${m.load1[1]}${m.othersPct > 10 ? " (NOISY: something else was running)" : ""}`,
      );
    }
  }
  for (const s of skipped) out.push(`note: ${s}`);
  const seconds = (performance.now() - began) / 1000;
  out.push(`runtime: ${seconds.toFixed(0)} s`, "");
  const lines = byMtu.flat().map((r) => r.json(settings));
  lines.push(JSON.stringify({ type: "run", seconds: Math.round(seconds), mtus: cfg.mtus, skipped, ref: cfg.ref }));
  process.stdout.write(out.join("\n") + "\n" + lines.join("\n") + "\n");
  if (cfg.out) writeFileSync(cfg.out.startsWith("/") ? cfg.out : join(process.cwd(), cfg.out), lines.join("\n") + "\n");
}

try {
  await main();
  await stopAll(1000);
  process.exit(0);
} catch (e) {
  await abort(`failed: ${(e as Error).stack ?? e}`, 1);
}
