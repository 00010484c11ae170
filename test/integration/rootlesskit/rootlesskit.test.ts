// RootlessKit 1.1 (Debian's rootlesskit) with our binary as its slirp4netns
// (`--net=slirp4netns --slirp4netns-binary=.../slirp4netns`), run the way
// its users run it: as an ordinary user from the initial user namespace
// (the test creates the user; see rig.ts). RootlessKit creates the tap in
// its child's namespaces and configures it; slirp4netns gets a PID target,
// -r 3, --mtu 65520 and, depending on the flags, --disable-host-loopback,
// --enable-ipv6, --api-socket, --enable-sandbox and --enable-seccomp. The
// host is a HostNs: its lo carries 192.0.2.1 (a host address), and its
// HTTP server listens on [::]:8000 (dual-stack) there.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { HostNs } from "../../support/netns.ts";
import { track, untrack } from "../../support/cleanup.ts";
import { exec, processesOf, restoreTun, tunMode, type TestUser } from "../../support/unpriv.ts";
import { ensureRkUser, prepare, requireTools, userCommand, waitForContent, type UserDir } from "./rig.ts";

const HOST4 = "192.0.2.1";
const HTTP_PORT = 8000;
/** The child's own server (prints the peer's address). */
const CHILD_PORT = 8080;
const PAYLOAD_BYTES = 64 << 20;

let user: TestUser;
let dirs: UserDir;
let host: HostNs;
let originalTunMode: number;
let sha = "";

beforeAll(async () => {
  requireTools([["rootlesskit", "rootlesskit"], ["rootlessctl", "rootlesskit"], ["newuidmap", "uidmap"], ["usermod", "passwd"], ["curl", "curl"], ["python3", "python3"]]);
  originalTunMode = tunMode();
  user = await ensureRkUser();
  dirs = prepare(user);
  const payload = randomBytes(PAYLOAD_BYTES);
  sha = new Bun.CryptoHasher("sha256").update(payload).digest("hex");
  await Bun.write(join(dirs.dir, "payload"), payload);
  host = await HostNs.create([`${HOST4}/32`]);
  host.spawn(["python3", "-m", "http.server", "--bind", "::", "--directory", dirs.dir, String(HTTP_PORT)]);
  for (let i = 0; i < 250 && (await host.exec(["curl", "-s", "-o", "/dev/null", `http://127.0.0.1:${HTTP_PORT}/`])).code !== 0; i++) await Bun.sleep(20);
}, 60_000);

afterAll(async () => {
  await host?.destroy();
  restoreTun();
  expect(tunMode()).toBe(originalTunMode);
});

/** A running rootlesskit and a way into its child's namespaces. */
class RootlessKit {
  private constructor(
    readonly proc: Subprocess<"ignore", "pipe", "pipe">,
    readonly stateDir: string,
    readonly childPid: number,
  ) {}

  /** Starts rootlesskit in the HostNs as the user; resolves once its child runs (the network is up then). */
  static async start(name: string, flags: string[]): Promise<RootlessKit> {
    const stateDir = join(dirs.userDir, name);
    const up = join(dirs.userDir, `${name}.up`);
    const argv = ["rootlesskit", `--state-dir=${stateDir}`, "--net=slirp4netns", `--slirp4netns-binary=${dirs.s4n}`, "--copy-up=/etc", "--debug", ...flags, "sh", "-c", `echo up > ${up}; exec sleep infinity`];
    const proc = Bun.spawn(host.enter(userCommand(user, argv)), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const entry = { destroy: async () => void proc.kill("SIGKILL") };
    track(entry);
    const stderr = new Response(proc.stderr).text();
    // --debug: RootlessKit passes slirp4netns's stderr on only then, and a failure shows it.
    await waitForContent(up, 20_000, proc.exited, async () => `rootlesskit ${flags.join(" ")}: ${proc.exitCode ?? "running"}\n${await Promise.race([stderr, Bun.sleep(500).then(() => "(still running)")])}`);
    const childPid = Number((await Bun.file(join(stateDir, "child_pid")).text()).trim());
    const rk = new RootlessKit(proc, stateDir, childPid);
    running.push({ rk, entry });
    return rk;
  }

  /** argv running `cmd` in the child's user, network and mount namespaces, as RootlessKit's README does it. */
  enter(cmd: string[]): string[] {
    return userCommand(user, ["nsenter", "-U", "-n", "-m", "--preserve-credentials", "-t", String(this.childPid), "--", ...cmd]);
  }

  child(cmd: string[], timeoutMs = 60_000) {
    return exec(this.enter(cmd), { timeoutMs });
  }

  /** rootlessctl on this instance's API socket. */
  ctl(args: string[]) {
    return exec(userCommand(user, ["rootlessctl", `--socket=${join(this.stateDir, "api.sock")}`, ...args]));
  }

  /** Starts a server in the child on CHILD_PORT that sends each client its address and closes. */
  peerServer(): void {
    const code = `import socket\ns=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\ns.bind(('::',${CHILD_PORT}));s.listen()\nwhile True:\n c,a=s.accept();c.sendall((a[0].removeprefix('::ffff:')+'\\n').encode());c.close()`;
    const p = Bun.spawn(this.enter(["python3", "-c", code]), { stdin: "ignore", stdout: "ignore", stderr: "inherit" });
    servers.push(p);
  }
}

const running: { rk: RootlessKit; entry: { destroy(): Promise<void> } }[] = [];
/** Servers started in a child: not RootlessKit's processes, so it does not end them. */
const servers: Subprocess[] = [];
afterEach(async () => {
  for (const p of servers.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
  for (const { rk, entry } of running.splice(0)) {
    untrack(entry);
    rk.proc.kill("SIGTERM");
    const timer = setTimeout(() => rk.proc.kill("SIGKILL"), 5000);
    await rk.proc.exited;
    clearTimeout(timer);
  }
  // RootlessKit kills slirp4netns (SIGKILL, its Pdeathsig) and its child when it goes.
  for (let i = 0; i < 100 && (await processesOf(user)).length > 0; i++) await Bun.sleep(20);
  expect(await processesOf(user)).toEqual([]);
});

/** Reads what a TCP server at host:port sends, from the HostNs (a client there connects from `host` itself). */
async function readFrom(address: string, port: number): Promise<{ code: number; stdout: string; stderr: string }> {
  const family = address.includes(":") ? "socket.AF_INET6" : "socket.AF_INET";
  return host.exec(["python3", "-c", `import socket\nc=socket.socket(${family});c.settimeout(5);c.connect(('${address}',${port}));d=b''\nwhile True:\n b=c.recv(4096)\n if not b: break\n d+=b\nprint(d.decode(),end='')`]);
}

/** Retries readFrom until it answers (the child's server may still be starting). */
async function answerFrom(address: string, port: number): Promise<string> {
  let r = await readFrom(address, port);
  for (let i = 0; i < 100 && r.stdout === ""; i++) {
    await Bun.sleep(50);
    r = await readFrom(address, port);
  }
  return r.stdout === "" ? `no answer: ${r.stderr}` : r.stdout;
}

/** The child downloads `url` and prints its sha256 (curl's error text on stderr). */
async function childSha(rk: RootlessKit, url: string): Promise<{ sha: string; stderr: string }> {
  const r = await rk.child(["bash", "-o", "pipefail", "-c", `curl -sS -g -m 60 '${url}' | sha256sum`]);
  return { sha: r.stdout.split(" ")[0] ?? "", stderr: r.stderr };
}

describe("RootlessKit --net=slirp4netns with our binary", () => {
  test("64 MiB from the host's loopback via 10.0.2.2 and from a host address, sha256 intact", async () => {
    const rk = await RootlessKit.start("download", []);
    const t0 = performance.now();
    expect(await childSha(rk, `http://10.0.2.2:${HTTP_PORT}/payload`)).toEqual({ sha, stderr: "" });
    expect(await childSha(rk, `http://${HOST4}:${HTTP_PORT}/payload`)).toEqual({ sha, stderr: "" });
    expect(performance.now() - t0).toBeLessThan(30_000);
  }, 90_000);

  test("--disable-host-loopback: 10.0.2.2:PORT is refused at once; a host address still answers", async () => {
    const rk = await RootlessKit.start("noloopback", ["--disable-host-loopback"]);
    const t0 = performance.now();
    const r = await rk.child(["curl", "-sS", "-m", "10", "-o", "/dev/null", `http://10.0.2.2:${HTTP_PORT}/`]);
    expect(r.code).toBe(7); // CURLE_COULDNT_CONNECT: refused, not timed out (28)
    expect(performance.now() - t0).toBeLessThan(3000);
    const ok = await rk.child(["curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", `http://${HOST4}:${HTTP_PORT}/`]);
    expect(ok).toMatchObject({ code: 0, stdout: "200" });
  }, 60_000);

  test("--ipv6: the child takes an fd00::/64 address from our router advertisements and reaches the host's [::1] via fd00::2", async () => {
    const rk = await RootlessKit.start("ipv6", ["--ipv6"]);
    let addr = "";
    for (let i = 0; i < 300 && addr === ""; i++) {
      const r = await rk.child(["ip", "-6", "-o", "addr", "show", "dev", "tap0", "scope", "global", "-tentative"]);
      addr = /inet6 (fd00::[0-9a-f:]+)\/64/.exec(r.stdout)?.[1] ?? "";
      if (addr === "") await Bun.sleep(50);
    }
    expect(addr).toMatch(/^fd00::/);
    expect((await rk.child(["ip", "-6", "route", "show", "default"])).stdout).toContain("via fe80::");
    expect(await childSha(rk, `http://[fd00::2]:${HTTP_PORT}/payload`)).toEqual({ sha, stderr: "" });
  }, 60_000);

  test("--port-driver=slirp4netns -p: the child's server answers on the host, and sees a host address client as itself (a loopback client as 10.0.2.2, as slirp4netns)", async () => {
    const rk = await RootlessKit.start("ports", ["--port-driver=slirp4netns", "-p", `127.0.0.1:18081:${CHILD_PORT}/tcp`, "-p", `${HOST4}:18082:${CHILD_PORT}/tcp`, "-p", `[::1]:18083:${CHILD_PORT}/tcp`]);
    rk.peerServer();
    expect(await answerFrom("127.0.0.1", 18081)).toBe("10.0.2.2\n");
    expect(await answerFrom(HOST4, 18082)).toBe(`${HOST4}\n`);
    // An IPv6 host address forwards to the child's IPv4 address; the client is of the other family, so it is the gateway.
    expect(await answerFrom("::1", 18083)).toBe("10.0.2.2\n");
  }, 60_000);

  test("rootlessctl add-ports, list-ports, remove-ports; a removed port stops answering", async () => {
    const rk = await RootlessKit.start("ctl", ["--port-driver=slirp4netns"]);
    rk.peerServer();
    const add = await rk.ctl(["add-ports", `${HOST4}:18084:${CHILD_PORT}/tcp`]);
    expect(add).toMatchObject({ code: 0, stderr: "" });
    const id = add.stdout.trim();
    expect(id).toMatch(/^[0-9]+$/);
    const list = await rk.ctl(["list-ports", "--json"]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject({ id: Number(id), spec: { proto: "tcp", parentIP: HOST4, parentPort: 18084, childPort: CHILD_PORT } });
    expect(await answerFrom(HOST4, 18084)).toBe(`${HOST4}\n`);
    expect(await rk.ctl(["remove-ports", id])).toMatchObject({ code: 0 });
    expect((await rk.ctl(["list-ports", "--json"])).stdout.trim()).toBe("");
    const gone = await readFrom(HOST4, 18084);
    expect({ stdout: gone.stdout, refused: gone.stderr.includes("ConnectionRefusedError") }).toEqual({ stdout: "", refused: true });
  }, 60_000);

  test("--slirp4netns-seccomp=true: the download still works", async () => {
    const rk = await RootlessKit.start("seccomp", ["--slirp4netns-seccomp=true"]);
    expect(await childSha(rk, `http://${HOST4}:${HTTP_PORT}/payload`)).toEqual({ sha, stderr: "" });
  }, 60_000);

  test("--slirp4netns-sandbox=true: slirp4netns runs with the empty root and only CAP_NET_BIND_SERVICE; the download still works", async () => {
    const rk = await RootlessKit.start("sandbox-only", ["--slirp4netns-sandbox=true"]);
    const pids = (await exec(["pgrep", "-u", String(user.uid), "-x", "slirp4netns"])).stdout.trim().split("\n");
    expect(pids).toHaveLength(1);
    expect(readdirSync(`/proc/${pids[0]}/root/`)).toEqual(["etc"]);
    expect(/^CapEff:\s*(\S+)$/m.exec(await Bun.file(`/proc/${pids[0]}/status`).text())?.[1]).toBe("0000000000000400");
    expect(await childSha(rk, `http://${HOST4}:${HTTP_PORT}/payload`)).toEqual({ sha, stderr: "" });
  }, 60_000);

  test("--slirp4netns-sandbox=true --slirp4netns-seccomp=true: the download still works", async () => {
    const rk = await RootlessKit.start("sandbox", ["--slirp4netns-sandbox=true", "--slirp4netns-seccomp=true"]);
    expect(await childSha(rk, `http://${HOST4}:${HTTP_PORT}/payload`)).toEqual({ sha, stderr: "" });
  }, 60_000);
});
