// -enable-sandbox on a real kernel, in both modes: slirpnetstack's own
// (-netns, started as root) and slirp4netns's, called the way Podman does
// (from inside the user namespace that owns the container's network
// namespace); and as an ordinary user, with -netns (the target's user
// namespace joined first) and with -fd (a user namespace of its own). Once the stack reports ready, every thread of it must see a
// read-only tmpfs as its root holding only /etc, the main thread must hold
// no capability but CAP_NET_BIND_SERVICE, and everything that runs after
// setup must still work: a download of a few MiB, the DNS forwarder
// (including a resolv.conf changed while sandboxed), forwards added and
// removed through the API socket, and a clean exit on the exit fd or
// SIGTERM. The failures exit with the documented lines and statuses.
//
// The stack runs in a HostNs (lo carries 192.0.2.1, the HTTP server's
// address) inside a mount namespace of the test's, where a test-owned
// resolv.conf is bound over /etc/resolv.conf; two DNS responders on the
// HostNs's loopback answer differently, so the answer tells which server
// the forwarder read from resolv.conf.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, copyFileSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "../../support/stack.ts";
import { GuestNs, HostNs } from "../../support/netns.ts";
import { track, untrack } from "../../support/cleanup.ts";
import { asUser, ensureTestUser, restoreTun, setTunMode, userEnv, UserGuestNs } from "../../support/unpriv.ts";
import { DgramPair } from "../../support/fdpair.ts";
import { BareNs, lineClient, lineServer, untilOutput, waitReady, type Running } from "../slirp4netns/s4n-rig.ts";
import { apiRequest } from "../../support/api-client.ts";

const HOST4 = "192.0.2.1";
const HTTP_PORT = 8000;
const FWD_PORT = 18080;
/** The download: a few MiB, not all the same byte. */
const PAYLOAD = Buffer.alloc(4 << 20, "slirpnetstack sandbox ");
/** CAP_NET_BIND_SERVICE alone, as /proc/PID/status prints a capability set. */
const ONLY_NET_BIND_SERVICE = "0000000000000400";

const dir = mkdtempSync(join(tmpdir(), "slirp-sandbox-"));
const S4N = join(dir, "slirp4netns");
symlinkSync(BINARY, S4N);
const RESOLV = join(dir, "resolv.conf");

/** A DNS server on `bind`:53 that answers every (single-question) A query with `answer`. */
function dnsResponder(bind: string, answer: string): string[] {
  const script = [
    "import socket",
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)",
    `s.bind(('${bind}',53))`,
    `ip=bytes(int(x) for x in '${answer}'.split('.'))`,
    "while True:",
    " q,a=s.recvfrom(512)",
    " i=12",
    " while q[i]: i+=1+q[i]",
    " r=q[:2]+b'\\x81\\x80'+q[4:6]+b'\\x00\\x01\\x00\\x00\\x00\\x00'+q[12:i+5]+b'\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x01\\x00\\x04'+ip",
    " s.sendto(r,a)",
  ].join("\n");
  return ["python3", "-c", script];
}

/** Asks 10.0.2.3 (the stack's DNS forwarder) for sandbox.test's A record; prints the address. */
const DNS_QUERY = [
  "python3",
  "-c",
  [
    "import socket",
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)",
    "q=b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07sandbox\\x04test\\x00\\x00\\x01\\x00\\x01'",
    "s.sendto(q,('10.0.2.3',53));r=s.recv(512);print('.'.join(str(b) for b in r[-4:]))",
  ].join("\n"),
];

/** A world-readable copy of the binary (the test user cannot reach the checkout); removed at teardown. */
let userBinary: string | null = null;
function binaryForUser(): string {
  if (userBinary !== null) return userBinary;
  const bin = mkdtempSync(join(tmpdir(), "slirp-sandbox-bin-"));
  chmodSync(bin, 0o755);
  copyFileSync(BINARY, join(bin, "slirpnetstack"));
  chmodSync(join(bin, "slirpnetstack"), 0o755);
  const entry = {
    destroy: async () => {
      untrack(entry);
      rmSync(bin, { recursive: true, force: true });
      userBinary = null;
    },
  };
  track(entry);
  userBinary = join(bin, "slirpnetstack");
  return userBinary;
}

type Guest = { exec(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }>; destroy(): Promise<void> };

let host: HostNs;

beforeAll(async () => {
  writeFileSync(join(dir, "payload"), PAYLOAD);
  host = await HostNs.create([`${HOST4}/32`]);
  host.spawn(["python3", "-m", "http.server", "--bind", HOST4, "--directory", dir, String(HTTP_PORT)]);
  host.spawn(dnsResponder("127.0.0.1", "198.51.100.1"));
  host.spawn(dnsResponder("127.0.0.2", "198.51.100.2"));
  for (let i = 0; i < 200 && (await host.exec(["curl", "-s", "-o", "/dev/null", `http://${HOST4}:${HTTP_PORT}/`])).code !== 0; i++) await Bun.sleep(20);
}, 15_000);
afterAll(async () => {
  // /dev/net/tun back to its mode now, not at the end of the whole run:
  // later files record the mode they find as the one to restore.
  restoreTun();
  await host.destroy();
  rmSync(dir, { recursive: true, force: true });
});

let running: Running | null = null;
afterEach(() => {
  if (running === null) return;
  running.proc.kill("SIGKILL");
  try {
    closeSync(running.exitEnd);
  } catch {
    // Closed by the test.
  }
  running = null;
});

/**
 * Starts `cmd` in the HostNs, in a mount namespace of its own where
 * RESOLV is /etc/resolv.conf, with fd 3 reading a FIFO (the exit fd) and
 * fd 4 writing a file (the ready fd). `enterUserns`: run it from inside
 * that process's user namespace (Podman's way). `env`: the stack's
 * environment (default: ours).
 */
function start(name: string, cmd: (api: string) => string[], enterUserns: number | null, env?: Record<string, string>): Running {
  writeFileSync(RESOLV, "nameserver 127.0.0.1\n");
  const exitFifo = join(dir, `${name}.exit`);
  rmSync(exitFifo, { force: true });
  Bun.spawnSync(["mkfifo", exitFifo]);
  const exitEnd = openSync(exitFifo, "r+");
  const readyFile = join(dir, `${name}.ready`);
  const api = join(dir, `${name}.sock`);
  const enter = enterUserns === null ? [] : ["nsenter", "-U", "--preserve-credentials", "-t", String(enterUserns), "--"];
  const script = `mount --bind "$0" /etc/resolv.conf && exec 3<"$1" 4>"$2" && shift 2 && exec "$@"`;
  const proc = Bun.spawn(host.enter(["unshare", "-m", "--propagation", "private", "sh", "-c", script, RESOLV, exitFifo, readyFile, ...enter, ...cmd(api)]), {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    ...(env !== undefined ? { env } : {}),
  });
  running = { proc, exitEnd, readyFile, api };
  return running;
}

/** The fields of /proc/PID[/task/TID]/status that say what a thread may do. */
function privileges(statusPath: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(statusPath, "utf8").split("\n")) {
    const m = /^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):\s*(\S+)$/.exec(line);
    if (m !== null) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The mount points and the root's type and options, from /proc/PID[/task/TID]/mountinfo. */
function mounts(mountinfoPath: string): { points: string[]; root: string } {
  const lines = readFileSync(mountinfoPath, "utf8").trim().split("\n");
  const points = lines.map((l) => l.split(" ")[4]!);
  const root = lines.find((l) => l.split(" ")[4] === "/")!;
  const [before, after] = root.split(" - ");
  return { points, root: `${after!.split(" ")[0]} ${before!.split(" ")[5]}` };
}

/**
 * What every test checks once the stack is ready: each thread's root is
 * the same tmpfs, read-only, holding only etc; the mount table has / and
 * /etc (and what was mounted under /etc) only; the main thread has only
 * CAP_NET_BIND_SERVICE and no_new_privs; then a download, DNS before and
 * after a resolv.conf change, and a forward added and removed at run time.
 */
async function checkSandboxed(pid: number, guest: Guest, api: string): Promise<void> {
  const tasks = readdirSync(`/proc/${pid}/task`);
  // Bun's own threads (JavaScriptCore's, its thread pool) are there too.
  expect(tasks.length).toBeGreaterThan(1);
  const rootStat = statSync(`/proc/${pid}/root/`);
  for (const tid of tasks) {
    const st = statSync(`/proc/${pid}/task/${tid}/root/`);
    expect({ tid, dev: st.dev, ino: st.ino }).toEqual({ tid, dev: rootStat.dev, ino: rootStat.ino });
    expect(readdirSync(`/proc/${pid}/task/${tid}/root/`)).toEqual(["etc"]);
    expect(readlinkSync(`/proc/${pid}/task/${tid}/ns/mnt`)).toBe(readlinkSync(`/proc/${pid}/ns/mnt`));
  }
  const m = mounts(`/proc/${pid}/mountinfo`);
  expect(m.root).toMatch(/^tmpfs ro,nosuid,nodev,noexec/);
  expect(m.points.filter((p) => p !== "/" && p !== "/etc" && !p.startsWith("/etc/"))).toEqual([]);
  expect(m.points).toContain("/etc");
  expect(privileges(`/proc/${pid}/status`)).toEqual({
    CapInh: "0000000000000000",
    CapPrm: ONLY_NET_BIND_SERVICE,
    CapEff: ONLY_NET_BIND_SERVICE,
    CapBnd: ONLY_NET_BIND_SERVICE,
    CapAmb: "0000000000000000",
    NoNewPrivs: "1",
  });

  // A download through the stack.
  const get = await guest.exec(["sh", "-c", `curl -sS -m 20 http://${HOST4}:${HTTP_PORT}/payload | sha256sum`]);
  expect(get.stderr).toBe("");
  expect(get.stdout.split(" ")[0]).toBe(new Bun.CryptoHasher("sha256").update(PAYLOAD).digest("hex"));

  // DNS through the forwarder, which reads /etc/resolv.conf again when it changes.
  expect((await untilOutput((c) => guest.exec(c), DNS_QUERY)).stdout).toBe("198.51.100.1\n");
  writeFileSync(RESOLV, "nameserver 127.0.0.2\n");
  let answer = "";
  for (let i = 0; i < 50 && answer !== "198.51.100.2\n"; i++) {
    answer = (await untilOutput((c) => guest.exec(c), DNS_QUERY)).stdout;
    if (answer !== "198.51.100.2\n") await Bun.sleep(100);
  }
  expect(answer).toBe("198.51.100.2\n");

  // A forward added through the API socket reaches the guest; removed, it is gone.
  expect(await apiRequest(api, { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: FWD_PORT, guest_port: 80 } })).toBe('{"return":{"id":1}}');
  const server = guest.exec(lineServer("10.0.2.100", 80, "hello from the guest"));
  try {
    expect((await untilOutput((c) => host.exec(c), lineClient("127.0.0.1", FWD_PORT))).stdout).toBe("hello from the guest\n");
  } finally {
    await guest.exec(["pkill", "-f", "hello from the guest"]);
    await server;
  }
  expect(await apiRequest(api, { execute: "remove_hostfwd", arguments: { id: 1 } })).toBe('{"return":{}}');
  expect((await host.exec(lineClient("127.0.0.1", FWD_PORT))).stderr).toContain("ConnectionRefusedError");
}

/** Starts `command` (see start), checks it once ready (checkSandboxed), ends it with `stop` and expects status 0; the guest goes at the end. */
async function sandboxedRun(name: string, guest: Guest, command: (api: string) => string[], enterUserns: number | null, stop: (r: Running) => void): Promise<void> {
  try {
    const r = start(name, command, enterUserns);
    expect(await waitReady(r)).toBe("1");
    await checkSandboxed(r.proc.pid, guest, r.api);
    stop(r);
    expect(await r.proc.exited).toBe(0);
    running = null;
  } finally {
    await guest.destroy();
  }
}

describe("-enable-sandbox", () => {
  test("slirpnetstack mode (-netns, as root): every thread in the empty root, the main thread without capabilities; the network, DNS and the API still work; SIGTERM exits 0", async () => {
    const guest = await GuestNs.create();
    const command = (api: string) => [BINARY, "-netns", guest.netnsPath, "-interface", "tun0", "-enable-host", "-enable-dns", "-enable-sandbox", "-api-socket", api, "-ready-fd", "4", "-exit-fd", "3"];
    await sandboxedRun("own", guest, command, null, (r) => r.proc.kill("SIGTERM"));
  }, 60_000);

  test("slirp4netns mode, Podman's way (--enable-sandbox --enable-seccomp from inside the container's user namespace): the same; closing the exit fd exits 0", async () => {
    const guest = await BareNs.create();
    const command = (api: string) => [S4N, "--api-socket", api, "--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6", "-c", "-e", "3", "-r", "4", "--netns-type=path", `/proc/${guest.pid}/ns/net`, "tap0"];
    await sandboxedRun("podman", guest, command, guest.pid, (r) => closeSync(r.exitEnd));
  }, 60_000);

  test("as an ordinary user (as RootlessKit starts it): it first joins the user namespace that owns the target, like slirp4netns; the same empty root and capabilities; a download works; SIGTERM exits 0", async () => {
    const user = await ensureTestUser();
    setTunMode(0o666);
    const guest = await UserGuestNs.create(user);
    try {
      const r = start("user", () => asUser(user, [binaryForUser(), "-netns", guest.netnsPath, "-interface", "tun0", "-enable-host", "-enable-sandbox", "-ready-fd", "4", "-exit-fd", "3"]), null, userEnv());
      expect(await waitReady(r)).toBe("1");
      const pid = r.proc.pid;
      expect(readlinkSync(`/proc/${pid}/ns/user`)).toBe(readlinkSync(`/proc/${guest.pid}/ns/user`));
      for (const tid of readdirSync(`/proc/${pid}/task`)) expect(readdirSync(`/proc/${pid}/task/${tid}/root/`)).toEqual(["etc"]);
      expect(privileges(`/proc/${pid}/status`)).toMatchObject({ CapPrm: ONLY_NET_BIND_SERVICE, CapEff: ONLY_NET_BIND_SERVICE, CapBnd: ONLY_NET_BIND_SERVICE, NoNewPrivs: "1" });
      const inGuest = Bun.spawnSync(["nsenter", "-U", "-n", "--preserve-credentials", "-t", String(guest.pid), "--", "sh", "-c", `curl -sS -m 20 http://${HOST4}:${HTTP_PORT}/payload | sha256sum`]);
      expect(inGuest.stdout.toString().split(" ")[0]).toBe(new Bun.CryptoHasher("sha256").update(PAYLOAD).digest("hex"));
      r.proc.kill("SIGTERM");
      expect(await r.proc.exited).toBe(0);
      running = null;
    } finally {
      await guest.destroy();
    }
  }, 60_000);

  test("-fd as an ordinary user: no target to join, so a user namespace of its own; the same empty root; the stack's first frame arrives; SIGTERM exits 0", async () => {
    const user = await ensureTestUser();
    const pair = DgramPair.create();
    const readyFile = join(dir, "fd.ready");
    const ready = openSync(readyFile, "w");
    const proc = Bun.spawn(host.enter(asUser(user, [binaryForUser(), "-fd", "3", "-ready-fd", "4", "-enable-sandbox"])), {
      stdio: ["ignore", "pipe", "pipe", pair.remote, ready],
      env: userEnv(),
    });
    closeSync(ready);
    pair.closeRemote();
    try {
      // The ARP request for the guest, sent once everything is set up (after the pivot).
      const frames = await pair.collect((got) => got.length > 0, 5000);
      expect(frames[0]!.slice(12, 14)).toEqual(new Uint8Array([0x08, 0x06]));
      for (let i = 0; i < 100 && readFileSync(readyFile, "utf8") !== "1"; i++) await Bun.sleep(20);
      expect(readFileSync(readyFile, "utf8")).toBe("1");
      const pid = proc.pid;
      expect(readlinkSync(`/proc/${pid}/ns/user`)).not.toBe(readlinkSync("/proc/self/ns/user"));
      for (const tid of readdirSync(`/proc/${pid}/task`)) expect(readdirSync(`/proc/${pid}/task/${tid}/root/`)).toEqual(["etc"]);
      expect(privileges(`/proc/${pid}/status`)).toMatchObject({ CapEff: ONLY_NET_BIND_SERVICE, CapBnd: ONLY_NET_BIND_SERVICE, NoNewPrivs: "1" });
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      proc.kill("SIGKILL");
      await pair.destroy();
    }
  }, 30_000);
});

describe("-enable-sandbox failures", () => {
  const NO_UNSHARE = "[!] Failed to create sandbox: unshare (util-linux) not found in PATH: exec unshare: ENOENT (no such file or directory)\n";

  test("without util-linux unshare: the line naming it, status 245 (slirpnetstack mode) or 1 (slirp4netns mode), before any setup", async () => {
    for (const [argv, status] of [
      [[BINARY, "-netns", "/proc/1/ns/net", "-enable-sandbox"], 245],
      [[S4N, "--enable-sandbox", "--netns-type=path", "/proc/1/ns/net", "tap0"], 1],
    ] as const) {
      const p = Bun.spawn([...argv], { env: { PATH: "/nonexistent" }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
      expect({ stderr, code }).toEqual({ stderr: NO_UNSHARE, code: status });
    }
  });

  test("in run mode: a usage error (status 2)", async () => {
    const p = Bun.spawn([BINARY, "-enable-sandbox", "true"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    expect({ stderr, code }).toEqual({ stderr: "[!] -enable-sandbox needs -netns or -fd (run mode keeps running its command)\n", code: 2 });
  });

  test("not in a mount namespace of its own (the re-execution skipped): no pivot_root, the line, status 245", async () => {
    const guest = await GuestNs.create();
    try {
      // The variable that says "re-executed" names the namespace the stack
      // runs in, so it must refuse; that namespace is a throwaway one.
      const script = `export SLIRPNETSTACK_SANDBOX="$(readlink /proc/self/ns/mnt) -"; exec "$@"`;
      const p = Bun.spawn(host.enter(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", BINARY, "-netns", guest.netnsPath, "-interface", "tun0", "-enable-sandbox"]), {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
      expect({ last: stderr.trim().split("\n").at(-1), code }).toEqual({
        last: "[!] Failed to create sandbox: not in a mount namespace of its own (the re-execution under unshare --mount did not happen)",
        code: 245,
      });
    } finally {
      await guest.destroy();
    }
  }, 30_000);
});
