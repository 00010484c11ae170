// src/ns as an ordinary user (the test runs as root and creates one): attach
// through the nsenter helper into a namespace the user made with
// `unshare -Urn`, run mode under unshare, and one clear line per
// environment error. /dev/net/tun gets mode 0666 for the duration (0600 for
// the "not accessible" cases) and its original mode back afterwards.
import { test, expect, beforeAll, afterAll, describe } from "bun:test";
import { symlinkSync, unlinkSync, writeFileSync, readFileSync, chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import {
  ensureTestUser,
  setTunMode,
  restoreTun,
  tunMode,
  runProbe,
  userEnv,
  asUser,
  UserGuestNs,
  processesInNetns,
  probeCommand,
  probeResult,
  type TestUser,
} from "../../support/unpriv.ts";
import { track } from "../../support/cleanup.ts";

const OFFLOADS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const tmp = `/tmp/slirp-ns-test-${process.pid}`;

let user: TestUser;
let guest: UserGuestNs;
let originalMode: number;

beforeAll(async () => {
  if (process.geteuid?.() !== 0) throw new Error("these tests run as root (they create a user)");
  originalMode = tunMode();
  user = await ensureTestUser();
  setTunMode(0o666);
  guest = await UserGuestNs.create(user);
});

/**
 * The probe's run mode as the test user (`args` follow "run"), killed at
 * teardown if the test ends early. `readUntil` reads stdout until `enough`
 * holds for all read so far, or to its end, and returns all read so far.
 */
async function startProbeRun(args: string[]) {
  const probe = await probeCommand();
  const p = Bun.spawn(asUser(user, [...probe.argv, "run", ...args]), {
    cwd: probe.dir,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: userEnv(),
  });
  track({ destroy: async () => void p.kill("SIGKILL") });
  const reader = p.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const readUntil = async (enough: (text: string) => boolean): Promise<string> => {
    while (!enough(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    return text;
  };
  return { p, readUntil };
}

afterAll(async () => {
  await guest?.destroy();
  restoreTun();
  expect(tunMode()).toBe(originalMode);
  for (const f of [`${tmp}-link`, `${tmp}-resolv`, `${tmp}-noexec`]) if (existsSync(f)) unlinkSync(f);
});

/** True while the process exists and is not a zombie (init here may take seconds to reap orphans). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Runs `fn` with /dev/net/tun at 0600, as distributions never ship it but this machine does. */
async function withTunClosed<T>(fn: () => Promise<T>): Promise<T> {
  setTunMode(0o600);
  try {
    return await fn();
  } finally {
    setTunMode(0o666);
  }
}

describe("attach as an ordinary user", () => {
  test("via /proc/PID/ns/net: a working tap with offloads (kernel ARP reply through the fd)", async () => {
    const r = await runProbe(user, ["attach", guest.netnsPath, "tun0", "--offloads", String(OFFLOADS)]);
    expect(r.result).toMatchObject({ ok: true, opened: true, arpReply: true, device: { kind: "tap", mtu: 65521, vnetHdr: true } });
    expect(r.result.device.offloads & 0x07).toBe(0x07);
  });

  test("without offloads: plain tap framing", async () => {
    const r = await runProbe(user, ["attach", guest.netnsPath, "tun0"]);
    expect(r.result).toMatchObject({ ok: true, arpReply: true, device: { kind: "tap", vnetHdr: false, offloads: 0 } });
  });

  test("via another path to the netns: the owning user namespace is found (NS_GET_USERNS) or given", async () => {
    symlinkSync(guest.netnsPath, `${tmp}-link`);
    try {
      const r = await runProbe(user, ["attach", `${tmp}-link`, "tun0"]);
      expect(r.result).toMatchObject({ ok: true, arpReply: true });
      // ... or given explicitly (nsenter --user=USERNS --net=PATH).
      const u = await runProbe(user, ["attach", `${tmp}-link`, "tun0", "--userns", `/proc/${guest.pid}/ns/user`]);
      expect(u.result).toMatchObject({ ok: true, arpReply: true });
    } finally {
      unlinkSync(`${tmp}-link`);
    }
  });
});

describe("run mode as an ordinary user", () => {
  test("the command sees tun0 configured, its status comes back, nothing remains", async () => {
    const script = [
      "id -u",
      "readlink /proc/self/ns/net /proc/self/ns/user",
      "ip -o link show tun0",
      "ip -o addr show",
      "ip route",
      "ip -6 route",
      "echo FOO=$FOO",
      "grep -E '^Sig(Ign|Blk)' /proc/self/status",
      "ping -c1 -W1 10.0.2.2 >/dev/null 2>&1",
      "exit 7",
    ].join("; ");
    const r = await runProbe(user, ["run", "--offloads", String(OFFLOADS), "--", "sh", "-c", script], { env: userEnv({ FOO: "bar baz" }) });
    expect(r.result).toMatchObject({ ok: true, status: 7, sawArp: true, device: { kind: "tap", mtu: 65520, vnetHdr: true } });
    const out = r.output;
    const lines = out.split("\n");
    expect(lines[0]).toBe("0"); // root inside its own user namespace
    const [netns, userns] = [lines[1]!, lines[2]!];
    expect(netns).toMatch(/^net:\[\d+\]$/);
    expect(userns).toMatch(/^user:\[\d+\]$/);
    expect(out).toMatch(/tun0: <[^>]*\bUP\b[^>]*> mtu 65520/);
    expect(out).toMatch(/lo +inet 127\.0\.0\.1\/8/);
    expect(out).toMatch(/tun0 +inet 10\.0\.2\.100\/24/);
    expect(out).toMatch(/tun0 +inet6 fd00::100\/64 scope global nodad/);
    expect(out).toContain("default via 10.0.2.2 dev tun0");
    expect(out).toContain("default via fd00::2 dev tun0");
    expect(out).toContain("FOO=bar baz");
    expect(out).toContain("SigIgn:\t0000000000000000"); // Bun's SIGPIPE/SIGXFSZ ignores were undone
    expect(out).toContain("SigBlk:\t0000000000000000");
    // The command (which had the helper's PID) and its namespaces are gone.
    expect(existsSync(`/proc/${r.result.pid}`)).toBe(false);
    expect(processesInNetns(netns)).toEqual([]);
  });

  test("a file is bind-mounted over /etc/resolv.conf inside only", async () => {
    const before = readFileSync("/etc/resolv.conf", "utf8");
    writeFileSync(`${tmp}-resolv`, "nameserver 10.0.2.3\n", { mode: 0o644 });
    const r = await runProbe(user, ["run", "--resolv", `${tmp}-resolv`, "--", "cat", "/etc/resolv.conf"]);
    expect(r.result).toMatchObject({ ok: true, status: 0 });
    expect(r.output).toBe("nameserver 10.0.2.3");
    expect(readFileSync("/etc/resolv.conf", "utf8")).toBe(before);
  });

  test("default command is $SHELL; a signal death reads as 128+N", async () => {
    const shell = await runProbe(user, ["run", "--"], { env: userEnv({ SHELL: "/usr/bin/id" }) });
    expect(shell.result).toMatchObject({ ok: true, status: 0 });
    expect(shell.output).toMatch(/^uid=0\(root\)/);
    const killed = await runProbe(user, ["run", "--", "sh", "-c", "kill -TERM $$"]);
    expect(killed.result).toMatchObject({ ok: true, status: 143 });
  });

  test("the command gets our environment, not .env files Bun loaded from the working directory", async () => {
    const dir = `${tmp}-envdir`;
    mkdirSync(dir, { mode: 0o755 });
    try {
      writeFileSync(`${dir}/.env`, "SNEAKY_DOTENV=1\n", { mode: 0o644 });
      const r = await runProbe(user, ["run", "--", "env"], { cwd: dir, env: userEnv({ MINE: "yes" }) });
      expect(r.result).toMatchObject({ ok: true, status: 0 });
      expect(r.output).toContain("MINE=yes");
      expect(r.output).not.toContain("SNEAKY_DOTENV");
      // The runtime settings the stack re-executed itself with are ours alone.
      expect(r.output).not.toMatch(/BUN_GC_TIMER_DISABLE|BUN_JSC_|MIMALLOC_|SLIRPNETSTACK_RUNTIME_ENV/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("without go the command never runs", async () => {
    const r = await runProbe(user, ["run", "--no-go", "--", "sh", "-c", "echo RAN"]);
    expect(r.result).toMatchObject({ ok: true, aborted: true, status: 1 });
    expect(r.output).not.toContain("RAN");
  });

  test("signals: the stack survives SIGINT; SIGTERM is forwarded to the command", async () => {
    const script = 'trap "echo GOT-TERM; exit 9" TERM; trap "echo GOT-INT" INT; echo ready; while :; do sleep 0.02; done';
    const { p, readUntil } = await startProbeRun(["--forward-signals", "--", "sh", "-c", script]);
    expect(await readUntil((t) => t.includes("ready\n"))).toContain("ready");
    p.kill("SIGINT"); // only the stack: it must ignore it (a terminal would have sent it to the command too)
    await Bun.sleep(150);
    expect(p.exitCode).toBe(null);
    p.kill("SIGTERM");
    const text = await readUntil(() => false);
    expect(await p.exited).toBe(0);
    expect(text).toContain("GOT-TERM");
    expect(text).not.toContain("GOT-INT");
    expect(probeResult(text).result).toMatchObject({ ok: true, status: 9 });
  });

  test("when the stack dies, the command gets SIGTERM", async () => {
    const { p, readUntil } = await startProbeRun(["--", "sh", "-c", "echo $$; exec sleep 30"]);
    const text = await readUntil((t) => t.includes("\n"));
    const pid = Number(text.trim().split("\n")[0]);
    expect(pid).toBeGreaterThan(0);
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    p.kill("SIGKILL");
    await p.exited;
    const end = Date.now() + 3000;
    while (isRunning(pid) && Date.now() < end) await Bun.sleep(10);
    expect(isRunning(pid)).toBe(false);
  });
});

describe("one clear line per environment error", () => {
  test("/dev/net/tun not accessible (0600 as non-root): attach and run mode", async () => {
    await withTunClosed(async () => {
      const a = await runProbe(user, ["attach", guest.netnsPath, "tun0"]);
      expect(a.result).toMatchObject({ ok: false, exitCode: 253, step: "open", reason: "tun-inaccessible" });
      expect(a.result.lines).toHaveLength(2);
      expect(a.result.lines[0]).toMatch(/^\[!\] \/dev\/net\/tun is not accessible to uid \d+ \(mode 0600/);
      expect(a.result.lines[1]).toBe("Failed to open TUN/TAP: permission denied");
      const r = await runProbe(user, ["run", "--", "true"]);
      expect(r.result).toMatchObject({ ok: false, exitCode: 253, reason: "tun-inaccessible" });
      expect(r.result.lines[0]).toMatch(/^\[!\] \/dev\/net\/tun is not accessible/);
    });
  });

  test("the target process is gone", async () => {
    const p = Bun.spawn(["true"]);
    await p.exited;
    const r = await runProbe(user, ["attach", `/proc/${p.pid}/ns/net`, "tun0"]);
    expect(r.result).toMatchObject({ ok: false, exitCode: 253, step: "netns", reason: "pid-gone" });
    expect(r.result.lines).toEqual([
      `[!] process ${p.pid} is gone: its network namespace /proc/${p.pid}/ns/net no longer exists`,
      `Failed to open TUN/TAP: joining net namespace "/proc/${p.pid}/ns/net": no such file or directory`,
    ]);
  });

  test("a namespace the user does not own", async () => {
    const r = await runProbe(user, ["attach", "/proc/1/ns/net", "tun0"]);
    expect(r.result).toMatchObject({ ok: false, exitCode: 253, step: "netns", reason: "netns-not-owned" });
    expect(r.result.lines[0]).toMatch(/^\[!\] cannot open \/proc\/1\/ns\/user: it belongs to another user/);
  });

  test("nsenter / unshare missing from PATH", async () => {
    const env = userEnv({ PATH: "/nonexistent" });
    const a = await runProbe(user, ["attach", guest.netnsPath, "tun0"], { env });
    expect(a.result).toMatchObject({ ok: false, exitCode: 253, reason: "tool-missing" });
    expect(a.result.lines).toEqual([
      "[!] nsenter not found in PATH; rootless mode runs util-linux's nsenter (install util-linux, or run as root)",
      'Failed to open TUN/TAP: exec: "nsenter": executable file not found in $PATH',
    ]);
    const r = await runProbe(user, ["run", "--", "true"], { env });
    expect(r.result).toMatchObject({ ok: false, exitCode: 253, reason: "tool-missing" });
    expect(r.result.lines[0]).toStartWith("[!] unshare not found in PATH");
  });

  test("user namespaces disabled (user.max_user_namespaces = 0, set inside a throwaway user namespace)", async () => {
    const probe = await probeCommand();
    const p = Bun.spawn(
      ["unshare", "-U", "--map-root-user", "sh", "-c", 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh", ...probe.argv, "run", "--", "true"],
      { cwd: probe.dir, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: userEnv() },
    );
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    const { result } = probeResult(out);
    expect(result).toMatchObject({ ok: false, exitCode: 253, reason: "userns-disabled" });
    expect(result.lines[0]).toBe("[!] user namespaces are disabled (sysctl user.max_user_namespaces = 0); rootless mode needs them, or run as root");
  });

  test("run mode: command not found (127) or not executable (126)", async () => {
    const r = await runProbe(user, ["run", "--", "no-such-command-xyz", "arg"]);
    expect(r.result).toMatchObject({ ok: false, exitCode: 127, step: "exec", reason: "command-not-found" });
    expect(r.result.lines).toEqual(["[!] no-such-command-xyz: command not found"]);
    writeFileSync(`${tmp}-noexec`, "#!/bin/sh\n", { mode: 0o644 });
    chmodSync(`${tmp}-noexec`, 0o644);
    const n = await runProbe(user, ["run", "--", `${tmp}-noexec`]);
    expect(n.result).toMatchObject({ ok: false, exitCode: 126, reason: "command-not-executable" });
    expect(n.result.lines).toEqual([`[!] ${tmp}-noexec: permission denied`]);
  });
});
