// Running things as an ordinary user from root-run tests (rootless paths of
// src/ns/): a throwaway system user, a temporary /dev/net/tun mode, a
// user-owned guest namespace, and the ns-probe.ts program run as that user.
//
// Everything is registered with test/support/cleanup.ts, and the tun mode
// is also restored synchronously at process exit, so a failing or killed
// test never leaves /dev/net/tun world-writable or the user behind.
import type { Subprocess } from "bun";
import { chmodSync, mkdtempSync, rmSync, statSync, readdirSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { track, untrack } from "./cleanup.ts";
import { holderReady, readmeGuestSetup, readyMarker } from "./netns.ts";

export const TEST_USER = "slirpns-test";
export const TUN = "/dev/net/tun";

let probe: Promise<{ argv: string[]; dir: string }> | null = null;

/**
 * The probe, compiled into one executable in a fresh world-readable
 * directory. The test user may not be able to read the checkout (a clone
 * under /root, or a 0700 temporary directory), so nothing it runs may come
 * from there: not the sources, not node_modules' bun, not its cwd.
 */
export function probeCommand(): Promise<{ argv: string[]; dir: string }> {
  probe ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "slirp-ns-probe-"));
    chmodSync(dir, 0o755);
    const exe = join(dir, "ns-probe");
    const r = await exec([process.execPath, "build", "--compile", join(import.meta.dir, "ns-probe.ts"), "--outfile", exe], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`building the probe failed: ${r.stderr}${r.stdout}`);
    const entry = {
      destroy: async () => {
        untrack(entry);
        rmSync(dir, { recursive: true, force: true });
        probe = null;
      },
    };
    track(entry);
    return { argv: [exe], dir };
  })();
  return probe;
}

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to its end (killed after `timeoutMs`, default 30 s); its status and output. */
export async function exec(argv: string[], opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<ExecResult> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: opts.env ?? process.env, cwd: opts.cwd });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function lookupUser(name: string): Promise<TestUser | null> {
  const r = await exec(["getent", "passwd", name]);
  if (r.code !== 0) return null;
  const f = r.stdout.trim().split(":");
  return { name, uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * The test user, created (system user, no home) when missing and then
 * deleted again at teardown.
 */
export async function ensureTestUser(): Promise<TestUser> {
  const have = await lookupUser(TEST_USER);
  if (have !== null) return have;
  const r = await exec(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", TEST_USER]);
  if (r.code !== 0) throw new Error(`useradd ${TEST_USER}: ${r.stderr}`);
  const u = await lookupUser(TEST_USER);
  if (u === null) throw new Error(`useradd ${TEST_USER} made no user`);
  const entry = {
    destroy: async () => {
      untrack(entry);
      // The user's processes (namespace holders, probes) are tracked and
      // destroyed before this entry, which was registered first.
      await exec(["userdel", TEST_USER]);
    },
  };
  track(entry);
  return u;
}

let originalTunMode: number | null = null;

function restoreTunSync(): void {
  if (originalTunMode !== null) {
    try {
      chmodSync(TUN, originalTunMode);
    } catch {
      // nothing more we can do at exit
    }
  }
}

let exitHookInstalled = false;

/**
 * Sets /dev/net/tun's permission bits for the test. The first call records
 * the original mode; teardown (and process exit) put it back.
 */
export function setTunMode(mode: number): void {
  if (originalTunMode === null) {
    originalTunMode = statSync(TUN).mode & 0o7777;
    const entry = {
      destroy: async () => {
        untrack(entry);
        restoreTun();
      },
    };
    track(entry);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on("exit", restoreTunSync);
    }
  }
  chmodSync(TUN, mode);
}

/** Puts the original mode back now (idempotent). */
export function restoreTun(): void {
  restoreTunSync();
  originalTunMode = null;
}

export function tunMode(): number {
  return statSync(TUN).mode & 0o7777;
}

/** A clean environment for the user: no root HOME, a PATH with sbin (ip). */
export function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/tmp", LANG: "C.UTF-8", ...extra };
}

/** argv that runs `argv` as the user, without a fork in between (setpriv execs). */
export function asUser(user: TestUser, argv: string[]): string[] {
  return ["/usr/bin/setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--", ...argv];
}

export interface ProbeRun extends ExecResult {
  /** The parsed PROBE-RESULT object. */
  result: Record<string, any>;
  /** stdout without the result line (a run-mode command's output). */
  output: string;
}

/** Runs test/support/ns-probe.ts (as `user`, or as root when null). */
export async function runProbe(
  user: TestUser | null,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
): Promise<ProbeRun> {
  const p = await probeCommand();
  const argv = [...p.argv, ...args];
  const r = await exec(user ? asUser(user, argv) : argv, { env: opts.env ?? userEnv(), timeoutMs: opts.timeoutMs ?? 30_000, cwd: opts.cwd ?? p.dir });
  return { ...r, ...probeResult(r.stdout, `exit ${r.code}\nstderr:\n${r.stderr}`) };
}

/** The probe's PROBE-RESULT line, parsed, and the output before it; throws (with `context`) when there is none. */
export function probeResult(stdout: string, context = ""): { result: Record<string, any>; output: string } {
  const lines = stdout.split("\n");
  const idx = lines.findIndex((l) => l.startsWith("PROBE-RESULT "));
  if (idx < 0) throw new Error(`probe printed no result\nstdout:\n${stdout}${context === "" ? "" : `\n${context}`}`);
  return { result: JSON.parse(lines[idx]!.slice("PROBE-RESULT ".length)), output: lines.slice(0, idx).join("\n") };
}

/**
 * A user + network namespace created by the test user itself with
 * `unshare -Urn`, holding tap tun0 configured like the upstream README.
 * Needs /dev/net/tun accessible to the user while it is created.
 */
export class UserGuestNs {
  private constructor(
    readonly holder: Subprocess,
    readonly ifname: string,
  ) {
    track(this);
  }

  get pid(): number {
    return this.holder.pid;
  }

  get netnsPath(): string {
    return `/proc/${this.pid}/ns/net`;
  }

  static async create(user: TestUser, opts: { ifname?: string; mtu?: number } = {}): Promise<UserGuestNs> {
    const name = opts.ifname ?? "tun0";
    const marker = readyMarker("userns");
    const script = [...readmeGuestSetup(name, "tap", opts.mtu ?? 65521), `: > ${marker}`, "exec sleep infinity"].join(" && ");
    // setpriv and unshare both exec: the holder's PID is the namespace's.
    const holder = Bun.spawn(asUser(user, ["unshare", "-Urn", "sh", "-c", script]), { stdout: "ignore", stderr: "pipe", env: userEnv() });
    const ns = new UserGuestNs(holder, name);
    await holderReady(holder, marker, ns);
    return ns;
  }

  async destroy(): Promise<void> {
    untrack(this);
    this.holder.kill("SIGKILL");
    await this.holder.exited;
  }
}

/** PIDs of every process whose network namespace is `netns` ("net:[4026…]"). */
export function processesInNetns(netns: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/net`) === netns) out.push(Number(d));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

/** PIDs of the user's processes. */
export async function processesOf(user: TestUser): Promise<number[]> {
  const r = await exec(["pgrep", "-u", String(user.uid)]);
  return r.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map(Number);
}
