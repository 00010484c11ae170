// -enable-seccomp on the real kernel.
//
// 1. The filter denies: a child Bun process installs it (the same
//    installSeccomp the stack calls) and makes every denied syscall, with
//    arguments that make each one fail harmlessly had it run, before and
//    after: after, each gives EPERM, also on a thread that existed before
//    the install (TSYNC), while ordinary syscalls still work.
// 2. The stack never has a syscall denied: the built binary runs with
//    -enable-seccomp under strace (attached once it has started, tracing
//    exactly the denied syscalls, every thread) through bulk TCP both ways,
//    UDP, ping, DNS, a -L forward and the API socket (add, list, use,
//    remove), alone and after -enable-sandbox; strace records nothing
//    but JavaScriptCore naming its new threads (prctl(PR_SET_NAME), which
//    the filter lets through), every thread shows "Seccomp: 2" and
//    "NoNewPrivs: 1", and SIGTERM ends it with status 0.
// 3. Run mode (the command is not filtered) and slirp4netns mode
//    (--enable-seccomp) start filtered too.
// 4. A filter that cannot be installed (strace makes seccomp(2) fail, as
//    a kernel without filters or a thread TSYNC cannot move would) is an
//    error naming the call and errno: exit 244, 1 in slirp4netns mode.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { deniedOn, seccompArch } from "../../../src/sandbox/seccomp.ts";
import { GuestNs, HostNs, holderReady, readyMarker } from "../../support/netns.ts";
import { StackProcess, BINARY } from "../../support/stack.ts";
import { HostServers, PYTHON, SCRIPT, expectedHash, guestClient, sq } from "../../support/host-servers.ts";
import { track, untrack } from "../../support/cleanup.ts";
import { apiRequest } from "../../support/api-client.ts";

setDefaultTimeout(120_000);

const ROOT = join(import.meta.dir, "..", "..", "..");
const dir = mkdtempSync(join(tmpdir(), "seccomp-it-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every thread of `pid`: its Seccomp and NoNewPrivs lines (proc(5)). */
function threadStatus(pid: number | "self"): { tid: string; seccomp: string; noNewPrivs: string }[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const s = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    return { tid, seccomp: /^Seccomp:\s*(\d+)$/m.exec(s)?.[1] ?? "?", noNewPrivs: /^NoNewPrivs:\s*(\d+)$/m.exec(s)?.[1] ?? "?" };
  });
}

describe("the filter on the real kernel", () => {
  test("every denied syscall gets EPERM, on a thread started before too; ordinary ones still work", async () => {
    const worker = join(dir, "worker.ts");
    const child = join(dir, "child.ts");
    writeFileSync(
      worker,
      `import { libc, errno } from ${JSON.stringify(join(ROOT, "ffi/libc.ts"))};
const PR_GET_NO_NEW_PRIVS = 39;
self.onmessage = () => {
  const r = libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  postMessage(r < 0 ? { errno: errno() } : { value: r });
};
`,
    );
    writeFileSync(
      child,
      `import { readFileSync } from "node:fs";
import { libc, errno } from ${JSON.stringify(join(ROOT, "ffi/libc.ts"))};
import { deniedOn, installSeccomp, seccompArch } from ${JSON.stringify(join(ROOT, "src/sandbox/seccomp.ts"))};
// A non-canonical address (EFAULT as a pointer), -1 as an int, a length
// past every limit: each denied syscall fails harmlessly without the filter.
const H = 0x1f_ffff_ffff_ffff;
const call = (nr) => (Number(libc.syscall(nr, H, H, H)) < 0 ? errno() : 0);
const ask = (w) => new Promise((resolve) => { w.onmessage = (e) => resolve(e.data); w.postMessage(0); });
const arch = seccompArch();
const early = new Worker(${JSON.stringify(worker)});
const workerBefore = await ask(early);
const denied = deniedOn(arch);
const before = Object.fromEntries(denied.map((s) => [s.name, call(s.nr)]));
const installed = installSeccomp();
const after = Object.fromEntries(denied.map((s) => [s.name, call(s.nr)]));
const workerAfter = await ask(early);
const late = new Worker(${JSON.stringify(worker)});
const lateWorker = await ask(late);
const getpid = Number(libc.syscall(arch === "x64" ? 39 : 172, 0, 0, 0));
const udp = libc.socket(2, 2, 0);
let spawn;
try { spawn = { exitCode: Bun.spawnSync(["true"]).exitCode }; } catch (e) { spawn = { error: String(e.code ?? e) }; }
console.log(JSON.stringify({ installed, before, after, workerBefore, workerAfter, lateWorker, getpid, pid: process.pid,
  udp: udp >= 0, readsFiles: readFileSync("/proc/self/status", "utf8").includes("Seccomp:"), spawn }));
process.exit(0);
`,
    );
    // Its own UTS, IPC and mount namespaces: even a broken filter could not
    // rename the host or touch its mounts.
    const p = Bun.spawn(["unshare", "--uts", "--ipc", "--mount", "--", process.execPath, child], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    const r = JSON.parse(out);
    const denied = deniedOn(seccompArch());
    const EPERM = 1;
    expect(r.installed).toEqual(denied.map((s) => s.name));
    // After: every one EPERM.
    for (const { name } of denied) expect([name, r.after[name]]).toEqual([name, EPERM]);
    // Before, the core of the list failed otherwise (EINVAL, EBADF, EFAULT):
    // the EPERM after is the filter's.
    for (const name of ["execve", "ptrace", "mount", "umount2", "unshare", "setns", "prctl", "pidfd_open"]) {
      expect([name, r.before[name] !== EPERM]).toEqual([name, true]);
    }
    // A thread started before the install is filtered too (TSYNC), and so is one started after; both still run.
    expect(r.workerBefore).toEqual({ value: 0 });
    expect(r.workerAfter).toEqual({ errno: EPERM });
    expect(r.lateWorker).toEqual({ errno: EPERM });
    // Ordinary syscalls go through.
    expect(r.getpid).toBe(r.pid);
    expect(r.udp).toBe(true);
    expect(r.readsFiles).toBe(true);
    // Running a program needs execve: it fails.
    expect(r.spawn.exitCode === 0).toBe(false);
  });
});

/** Host addresses on the host namespace's lo (reached with -enable-host). */
const HOST4 = "192.0.2.1";
const HOST6 = "2001:db8::1";
/** What the test DNS server answers for every A question. */
const DNS_ANSWER = "192.0.2.7";
const FWD_PORT = 18080;
const API_FWD_PORT = 18081;
const GUEST_ECHO_PORT = 7777;
const MiB = 1 << 20;

/** Answers every query with one A record (RFC 1035 §4.1), on 127.0.0.1:53 of the host namespace. */
const DNS_SERVER = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(4096)
    end = 12
    while q[end] != 0:
        end += 1 + q[end]
    question = q[12:end + 5]
    answer = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("${DNS_ANSWER}")
    s.sendto(q[:2] + b"\\x81\\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + answer, peer)
`;

/** A guest-side query for test.example A to 10.0.2.3: prints the answer's address. */
const DNS_CLIENT = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
name = b"".join(bytes([len(p)]) + p for p in b"test.example".split(b".")) + b"\\x00"
s.sendto(struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1), ("10.0.2.3", 53))
r = s.recv(4096)
print(socket.inet_ntoa(r[-4:]))
`;

/** A TCP echo server in the guest, one thread per client. */
const GUEST_ECHO = `
import socketserver
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            self.request.sendall(d)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
srv = socketserver.ThreadingTCPServer(("0.0.0.0", ${GUEST_ECHO_PORT}), H)
print("ready", flush=True)
srv.serve_forever()
`;

/** A process started for the test, killed at teardown. */
class Helper {
  private constructor(readonly proc: Subprocess<"ignore", "pipe", "inherit">) {
    track(this);
  }
  /** Starts `cmd` and waits for its first output (its "ready"). */
  static async start(cmd: string[]): Promise<Helper> {
    const h = new Helper(Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "inherit" }) as Subprocess<"ignore", "pipe", "inherit">);
    const reader = h.proc.stdout.getReader();
    const first = await Promise.race([reader.read(), Bun.sleep(10_000).then(() => null)]);
    if (first === null || first.done) {
      await h.destroy();
      throw new Error(`${cmd.join(" ")} did not start`);
    }
    return h;
  }
  async destroy(): Promise<void> {
    untrack(this);
    this.proc.kill("SIGKILL");
    await this.proc.exited;
  }
}

// Alone, and after -enable-sandbox (which needs mount, pivot_root and prctl first).
describe.each([
  ["alone", []],
  ["after -enable-sandbox", ["-enable-sandbox"]],
] as [string, string[]][])("the stack with -enable-seccomp %s, under load", (_label, extra) => {
  let host: HostNs;
  let guest: GuestNs;
  let servers: HostServers;
  let stack: StackProcess;
  let strace: Subprocess;
  const helpers: Helper[] = [];
  const straceOut = join(dir, `strace-${extra.length}.out`);
  const apiPath = join(dir, `api-${extra.length}.sock`);

  beforeAll(async () => {
    host = await HostNs.create([`${HOST4}/32`, `${HOST6}/128`]);
    // Unprivileged ICMP sockets for -icmp=forward (icmp(7), ping_group_range).
    expect((await host.exec(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"])).code).toBe(0);
    servers = await HostServers.start(host);
    guest = await GuestNs.create();
    helpers.push(await Helper.start(host.enter([PYTHON, "-c", DNS_SERVER])));
    helpers.push(await Helper.start(guest.enter([PYTHON, "-c", GUEST_ECHO])));
    // The DNS forwarder relays to resolv.conf's servers: the stack gets a
    // mount namespace of its own where /etc/resolv.conf names the test server.
    const resolvConf = join(dir, `resolv-${extra.length}.conf`);
    writeFileSync(resolvConf, "nameserver 127.0.0.1\n");
    stack = await StackProcess.start(
      [
        "--mount", "--", "sh", "-c", `mount --bind ${sq(resolvConf)} /etc/resolv.conf && exec "$0" "$@"`, BINARY,
        "-netns", guest.netnsPath, "-enable-host", "-enable-dns", "-icmp", "forward",
        "-L", `tcp://127.0.0.1:${FWD_PORT}:10.0.2.100:${GUEST_ECHO_PORT}`,
        "-api-socket", apiPath, "-enable-seccomp", ...extra,
      ],
      { host, binary: "unshare" },
    );
    // The stack itself (unshare, sh and the runtime re-exec all exec in place).
    expect(readFileSync(`/proc/${stack.pid}/cmdline`, "utf8")).toContain("-enable-seccomp");
    // From now on every attempt at a denied syscall, on any thread, is recorded.
    const names = deniedOn(seccompArch()).map((s) => `?${s.name}`).join(",");
    strace = Bun.spawn(["strace", "-f", "-qq", "-p", String(stack.pid), "-e", `trace=${names}`, "-e", "signal=none", "-o", straceOut], { stdout: "ignore", stderr: "pipe" });
    // strace has attached once the tracer shows in the stack's status.
    const end = Date.now() + 10_000;
    while (!/^TracerPid:\s*[1-9]/m.test(readFileSync(`/proc/${stack.pid}/status`, "utf8"))) {
      if (Date.now() > end) throw new Error("strace did not attach");
      await Bun.sleep(20);
    }
  });

  afterAll(async () => {
    strace?.kill("SIGKILL");
    await stack?.destroy();
    for (const h of helpers) await h.destroy();
    await guest?.destroy();
    await servers?.destroy();
    await host?.destroy();
  });

  test("it says what it denies; every thread is filtered, with no_new_privs", async () => {
    // Before "started" (StackProcess.start waited for that line).
    const lines = stack.stderr.lines;
    const at = lines.findIndex((l) => l.includes("[+] seccomp: denied "));
    expect(lines[at]).toEndWith(`[+] seccomp: denied ${deniedOn(seccompArch()).map((s) => s.name).join(" ")}`);
    expect(at).toBeLessThan(lines.findIndex((l) => l.includes("Slirpnetstack started")));
    const threads = threadStatus(stack.pid);
    expect(threads.length).toBeGreaterThan(1);
    for (const t of threads) expect(t).toEqual({ tid: t.tid, seccomp: "2", noNewPrivs: "1" });
  });

  test("bulk TCP both ways, SHA-256 checked", async () => {
    const size = 8 * MiB;
    const down = await guest.exec(
      ["bash", "-o", "pipefail", "-c", `curl -sS --fail --noproxy '*' --max-time 60 ${sq(`http://${HOST4}:${servers.ports.http}/download?size=${size}&seed=down`)} | ${PYTHON} ${SCRIPT} sha256`],
      { timeoutMs: 70_000 },
    );
    expect({ code: down.code, stderr: down.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(down.stdout)).toEqual({ bytes: size, sha256: await expectedHash(size, "down") });
    const up = await guest.exec(
      ["bash", "-o", "pipefail", "-c", `${PYTHON} ${SCRIPT} gen ${size} up | curl -sS --fail --noproxy '*' --max-time 60 -T - ${sq(`http://[${HOST6}]:${servers.ports.http}/upload`)}`],
      { timeoutMs: 70_000 },
    );
    expect({ code: up.code, stderr: up.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(up.stdout)).toEqual({ bytes: size, sha256: await expectedHash(size, "up") });
  });

  test("UDP, ping and DNS", async () => {
    const udp = await guestClient<{ match: boolean }>(guest, "udp", [HOST4, servers.ports.udp, "100,1400,8000"]);
    expect(udp.match).toBe(true);
    const ping = await guest.exec(["ping", "-n", "-c2", "-i0.2", "-W3", HOST4], { timeoutMs: 20_000 });
    expect(ping.stdout).toContain("2 received");
    const dns = await guest.exec([PYTHON, "-c", DNS_CLIENT], { timeoutMs: 20_000 });
    expect({ code: dns.code, out: dns.stdout.trim(), err: dns.stderr }).toEqual({ code: 0, out: DNS_ANSWER, err: "" });
  });

  test("a -L forward, and one added, listed, used and removed through the API socket", async () => {
    const through = async (port: number) => JSON.parse((await host.exec([PYTHON, SCRIPT, "client", "concurrent", "127.0.0.1", String(port), "4", String(MiB)], { timeoutMs: 70_000 })).stdout);
    expect(await through(FWD_PORT)).toMatchObject({ ok: 4, failed: 0 });
    const add = { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: API_FWD_PORT, guest_addr: "10.0.2.100", guest_port: GUEST_ECHO_PORT } };
    expect(await apiRequest(apiPath, add)).toBe(`{"return":{"id":1}}`);
    expect(await apiRequest(apiPath, { execute: "list_hostfwd" })).toBe(
      `{"entries":[{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":${API_FWD_PORT},"guest_addr":"10.0.2.100","guest_port":${GUEST_ECHO_PORT}}]}`,
    );
    expect(await through(API_FWD_PORT)).toMatchObject({ ok: 4, failed: 0 });
    expect(await apiRequest(apiPath, { execute: "remove_hostfwd", arguments: { id: 1 } })).toBe(`{"return":{}}`);
    expect(await apiRequest(apiPath, { execute: "list_hostfwd" })).toBe(`{"entries":[]}`);
    const gone = await host.exec([PYTHON, SCRIPT, "client", "connect", "127.0.0.1", String(API_FWD_PORT)]);
    expect(JSON.parse(gone.stdout)).toMatchObject({ ok: false, error: "ECONNREFUSED" });
  });

  test("SIGTERM: a clean exit, status 0; strace saw no denied syscall on any thread", async () => {
    expect(await stack.stop("SIGTERM")).toBe(0);
    expect(stack.stderr.text()).toContain("Slirpnetstack closing");
    // strace ends with its last tracee.
    expect(await Promise.race([strace.exited, Bun.sleep(10_000).then(() => "strace still running")])).toBe(0);
    // The one call of the table the stack makes: JavaScriptCore names the
    // helper threads it starts later (the GC's "HeapHelper") with
    // prctl(PR_SET_NAME), which the filter allows; it must succeed.
    const calls = readFileSync(straceOut, "utf8").split("\n").filter((l) => l !== "");
    expect(calls.filter((l) => !/^\d+ +prctl\(PR_SET_NAME, "[^"]*"\) += 0$/.test(l))).toEqual([]);
  });
});

describe("the other ways to start", () => {
  test("run mode: the stack is filtered, the command (started by its own helper process) is not; its status comes back", async () => {
    const script = [
      // $PPID is the stack: unshare and the namespace helper exec in place.
      `grep -h '^Seccomp:' /proc/$PPID/task/*/status | sort | uniq -c | sed 's/^ *[0-9]* *//'`,
      "grep '^Seccomp:' /proc/self/status",
      "/bin/true && echo exec works",
      "exit 7",
    ].join("; ");
    const s = StackProcess.spawn(["-enable-seccomp", "--", "sh", "-c", script]);
    expect(await s.exitCode(20_000)).toBe(7);
    await s.stdout.done;
    expect(s.stdout.lines.map((l) => l.replace(/\s+/g, " "))).toEqual(["Seccomp: 2", "Seccomp: 0", "exec works"]);
  });

  test("slirp4netns mode: --enable-seccomp is carried out; a download works; SIGTERM exits 0", async () => {
    const s4n = join(dir, "slirp4netns");
    symlinkSync(BINARY, s4n);
    const host = await HostNs.create([`${HOST4}/32`]);
    const servers = await HostServers.start(host);
    const marker = readyMarker("s4n-target");
    const holder = Bun.spawn(["unshare", "-Urn", "sh", "-c", `: > ${marker} && exec sleep infinity`], { stdout: "ignore", stderr: "inherit" });
    const target = { destroy: async () => void holder.kill("SIGKILL") };
    track(target);
    try {
      await holderReady(holder, marker, target);
      const stack = await StackProcess.start(["--enable-seccomp", "-c", String(holder.pid), "tap0"], { host, binary: s4n });
      expect(stack.stderr.lines.some((l) => l.includes("[+] seccomp: denied execve "))).toBe(true);
      for (const t of threadStatus(stack.pid)) expect(t).toEqual({ tid: t.tid, seccomp: "2", noNewPrivs: "1" });
      const size = 4 * MiB;
      const get = Bun.spawn(
        ["nsenter", "-U", "-n", "--preserve-credentials", "-t", String(holder.pid), "--", "bash", "-o", "pipefail", "-c",
          `curl -sS --fail --noproxy '*' --max-time 30 ${sq(`http://${HOST4}:${servers.ports.http}/download?size=${size}&seed=s4n`)} | ${PYTHON} ${SCRIPT} sha256`],
        { stdout: "pipe", stderr: "pipe" },
      );
      const [out, err, code] = await Promise.all([new Response(get.stdout).text(), new Response(get.stderr).text(), get.exited]);
      expect({ code, err }).toEqual({ code: 0, err: "" });
      expect(JSON.parse(out)).toEqual({ bytes: size, sha256: await expectedHash(size, "s4n") });
      expect(await stack.stop("SIGTERM")).toBe(0);
    } finally {
      untrack(target);
      await target.destroy();
      await servers.destroy();
      await host.destroy();
    }
  });
});

describe("a filter that cannot be installed", () => {
  /** Runs the binary under strace, which makes every seccomp(2) call return `fault` (strace(1), -e inject). */
  async function failing(fault: string, args: string[], binary = BINARY, host?: HostNs): Promise<{ code: number; stderr: string }> {
    const cmd = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=seccomp", "-e", `inject=seccomp:${fault}`, binary, ...args];
    const p = Bun.spawn(host ? host.enter(cmd) : cmd, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    return { code, stderr };
  }

  test("seccomp(2) fails: the call and errno are named, exit 244", async () => {
    expect(await failing("error=EINVAL", ["-enable-seccomp", "--", "true"])).toEqual({ code: 244, stderr: "[!] Failed to install seccomp filter: seccomp SECCOMP_SET_MODE_FILTER: EINVAL\n" });
  });

  test("TSYNC could not move a thread (a positive return is its TID): exit 244", async () => {
    expect(await failing("retval=4242", ["-enable-seccomp", "--", "true"])).toEqual({
      code: 244,
      stderr: "[!] Failed to install seccomp filter: seccomp SECCOMP_SET_MODE_FILTER TSYNC: thread 4242 could not be synchronised\n",
    });
  });

  test("slirp4netns mode: exit 1, as slirp4netns", async () => {
    // The mode goes by the program's name: another directory for another link.
    mkdirSync(join(dir, "failing"));
    const s4n = join(dir, "failing", "slirp4netns");
    symlinkSync(BINARY, s4n);
    const host = await HostNs.create();
    const marker = readyMarker("s4n-failing");
    const holder = Bun.spawn(["unshare", "-Urn", "sh", "-c", `: > ${marker} && exec sleep infinity`], { stdout: "ignore", stderr: "inherit" });
    const target = { destroy: async () => void holder.kill("SIGKILL") };
    track(target);
    try {
      await holderReady(holder, marker, target);
      const r = await failing("error=EACCES", ["--enable-seccomp", "-c", String(holder.pid), "tap0"], s4n, host);
      expect(r.code).toBe(1);
      expect(r.stderr).toEndWith("[!] Failed to install seccomp filter: seccomp SECCOMP_SET_MODE_FILTER: EACCES\n");
    } finally {
      untrack(target);
      await target.destroy();
      await host.destroy();
    }
  });
});
