// slirp4netns mode running the network. Mostly called the way Podman calls
// slirp4netns: from inside the user namespace that owns the container's
// bare network namespace (this test runs as root and gets there with
// `nsenter -U --preserve-credentials`), with --configure, --ready-fd,
// --exit-fd and --api-socket, the tap created by us in the target
// namespace; once the way RootlessKit calls it (a PID target, from the
// initial user namespace). The stack runs in a HostNs whose lo carries
// 192.0.2.1, a host address the guest reaches by the slirp4netns policy
// (everything the host can reach).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { BINARY } from "../../support/stack.ts";
import { HostNs, holderReady, readyMarker } from "../../support/netns.ts";
import { track, untrack } from "../../support/cleanup.ts";

const HOST4 = "192.0.2.1";
const HTTP_PORT = 8000;
const FWD_PORT = 18080;
const LOOPBACK_PORT = 8001;
/** What the guests download from the host's server. */
const payload = "x".repeat(200_000);

/** A bare TCP server: each client gets `line` and the end of the stream (no name lookups, unlike http.server). */
function lineServer(bind: string, port: number, line: string): string[] {
  const family = bind.includes(":") ? "socket.AF_INET6" : "socket.AF_INET";
  return ["python3", "-c", `import socket\ns=socket.socket(${family});s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\nif ${family}==socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\ns.bind(('${bind}',${port}));s.listen()\nwhile True:\n c,_=s.accept();c.sendall(b'${line}\\n');c.close()`];
}

/** Connects to host:port and prints what it reads until the end of the stream. */
function lineClient(host: string, port: number): string[] {
  return ["python3", "-c", `import socket\nc=socket.create_connection(('${host}',${port}),timeout=5);d=b''\nwhile True:\n b=c.recv(4096)\n if not b: break\n d+=b\nprint(d.decode(),end='')`];
}

/** Runs `cmd` until it prints something (up to ~5 s: the guest may still be taking its IPv6 address). */
async function untilOutput(run: (cmd: string[]) => Promise<{ stdout: string; stderr: string }>, cmd: string[]): Promise<{ stdout: string; stderr: string }> {
  let r = { stdout: "", stderr: "" };
  for (let i = 0; i < 100 && r.stdout === ""; i++) {
    const { stdout, stderr } = await run(cmd);
    r = { stdout, stderr };
    if (r.stdout === "") await Bun.sleep(50);
  }
  return r;
}

const dir = mkdtempSync(join(tmpdir(), "slirp4netns-run-"));
const S4N = join(dir, "slirp4netns");
symlinkSync(BINARY, S4N);

/** A bare user + network namespace (only lo, down), as Podman makes for a container. */
class BareNs {
  private constructor(readonly holder: Subprocess) {
    track(this);
  }
  static async create(): Promise<BareNs> {
    const marker = readyMarker("bare");
    const holder = Bun.spawn(["unshare", "-Urn", "sh", "-c", `: > ${marker} && exec sleep infinity`], { stdout: "ignore", stderr: "inherit" });
    const ns = new BareNs(holder);
    await holderReady(holder, marker, ns);
    return ns;
  }
  get pid(): number {
    return this.holder.pid;
  }
  /** Runs `cmd` in the namespace as its root; returns its status and output. */
  async exec(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const p = Bun.spawn(["nsenter", "-U", "-n", "--preserve-credentials", "-t", String(this.pid), "--", ...cmd], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, stdout, stderr };
  }
  async destroy(): Promise<void> {
    untrack(this);
    this.holder.kill("SIGKILL");
    await this.holder.exited;
  }
}

let host: HostNs;
let server: Subprocess;

beforeAll(async () => {
  await Bun.write(join(dir, "payload"), payload);
  host = await HostNs.create([`${HOST4}/32`]);
  server = host.spawn(["python3", "-m", "http.server", "--bind", HOST4, "--directory", dir, String(HTTP_PORT)]);
  for (let i = 0; i < 200 && (await host.exec(["curl", "-s", "-o", "/dev/null", `http://${HOST4}:${HTTP_PORT}/`])).code !== 0; i++) await Bun.sleep(20);
}, 15_000);
afterAll(async () => {
  server.kill("SIGKILL");
  await host.destroy();
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Our end of the --exit-fd pipe (a FIFO opened read-write, so opening it never blocks). */
  exitEnd: number;
  readyFile: string;
  api: string;
}
let running: Running | null = null;
afterEach(() => {
  if (running !== null) {
    running.proc.kill("SIGKILL");
    try {
      closeSync(running.exitEnd);
    } catch {
      // Already closed by the test.
    }
    running = null;
  }
});

/**
 * slirp4netns started in the HostNs with fd 3 reading a FIFO (--exit-fd)
 * and fd 4 writing a file (--ready-fd). Podman's way (`podman`): inside
 * the user namespace that owns `guest`'s network namespace, the target a
 * path. RootlessKit's way (`rootlesskit`): from the parent's (here the
 * initial) user namespace, the target the PID of the child.
 */
function start(guest: BareNs, name: string, way: "podman" | "rootlesskit", hostLoopback = false): Running {
  const exitFifo = join(dir, `${name}.exit`);
  Bun.spawnSync(["mkfifo", exitFifo]);
  const exitEnd = openSync(exitFifo, "r+");
  const readyFile = join(dir, `${name}.ready`);
  const api = join(dir, `${name}.sock`);
  const loopback = hostLoopback ? [] : ["--disable-host-loopback"];
  const args =
    way === "podman"
      ? ["--api-socket", api, ...loopback, "--mtu=65520", "--enable-sandbox", "--enable-ipv6", "-c", "-e", "3", "-r", "4", "--netns-type=path", `/proc/${guest.pid}/ns/net`, "tap0"]
      : ["--mtu", "65520", "-r", "4", "-e", "3", "--configure", ...loopback, "--api-socket", api, String(guest.pid), "tap0"];
  const enter = way === "podman" ? `nsenter -U --preserve-credentials -t ${guest.pid} --` : "";
  const script = `exec 3<"$0" 4>"$1"; shift; exec ${enter} "$@"`;
  const proc = Bun.spawn(host.enter(["sh", "-c", script, exitFifo, readyFile, S4N, ...args]), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  running = { proc, exitEnd, readyFile, api };
  return running;
}

async function waitReady(r: Running): Promise<string> {
  for (let i = 0; i < 500; i++) {
    if (existsSync(r.readyFile) && readFileSync(r.readyFile, "utf8") !== "") return readFileSync(r.readyFile, "utf8");
    if (r.proc.exitCode !== null) throw new Error(`exited ${r.proc.exitCode}: ${await new Response(r.proc.stderr).text()}`);
    await Bun.sleep(10);
  }
  throw new Error("not ready after 5 s");
}

/** One request on the API socket, one reply line. */
function apiCall(path: string, request: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let reply = "";
    s.on("data", (d) => {
      reply += d.toString();
      s.end();
    });
    s.on("end", () => resolve(reply));
    s.on("error", reject);
    s.write(JSON.stringify(request));
  });
}

describe("slirp4netns mode runs the network", () => {
  test("ready on fd 4; -c configures tap0; a host address downloads; the gateway is refused; add_hostfwd works; closing fd 3 exits 0 within a second", async () => {
    const guest = await BareNs.create();
    const r = start(guest, "podman", "podman");
    expect(await waitReady(r)).toBe("1");

    // --configure: 10.0.2.100/24 on tap0, MTU 65520, up; default route via 10.0.2.2 (IPv4 only, as slirp4netns).
    const addr = await guest.exec(["ip", "-4", "-o", "addr", "show", "dev", "tap0"]);
    expect(addr.stdout).toContain("inet 10.0.2.100/24");
    const link = await guest.exec(["ip", "-o", "link", "show", "dev", "tap0"]);
    expect(link.stdout).toContain("mtu 65520");
    expect(link.stdout).toContain(",UP");
    expect((await guest.exec(["ip", "route", "show", "default"])).stdout).toContain("default via 10.0.2.2 dev tap0");

    // A file from the host's server, through the stack.
    const get = await guest.exec(["curl", "-sS", "-m", "10", `http://${HOST4}:${HTTP_PORT}/payload`]);
    expect(get.stderr).toBe("");
    expect(get.stdout).toBe(payload);

    // --disable-host-loopback: the gateway's ports are refused at once.
    const t0 = performance.now();
    const gw = await guest.exec(["curl", "-sS", "-m", "5", "http://10.0.2.2:1/"]);
    expect(gw.code).toBe(7); // CURLE_COULDNT_CONNECT: refused, not timed out (28)
    expect(performance.now() - t0).toBeLessThan(2000);

    // add_hostfwd through the API socket: the host's 127.0.0.1:FWD_PORT reaches the guest's port 80.
    expect(await apiCall(r.api, { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: FWD_PORT, guest_port: 80 } })).toBe('{"return":{"id":1}}');
    const guestServer = Bun.spawn(["nsenter", "-U", "-n", "--preserve-credentials", "-t", String(guest.pid), "--", ...lineServer("10.0.2.100", 80, "hello from the guest")], { stdout: "ignore", stderr: "inherit" });
    try {
      expect((await untilOutput((c) => host.exec(c), lineClient("127.0.0.1", FWD_PORT))).stdout).toBe("hello from the guest\n");
    } finally {
      guestServer.kill("SIGKILL");
    }

    // --exit-fd: closing our end ends the process, status 0, within a second.
    const t1 = performance.now();
    closeSync(r.exitEnd);
    expect(await r.proc.exited).toBe(0);
    expect(performance.now() - t1).toBeLessThan(1000);
    running = null;
    await guest.destroy();
  }, 30_000);

  test("without --disable-host-loopback, 10.0.2.2:PORT reaches the host's 127.0.0.1:PORT and [fd00::2]:PORT its [::1]:PORT", async () => {
    const server = host.spawn(lineServer("::", LOOPBACK_PORT, "hello from the host loopback"));
    try {
      const guest = await BareNs.create();
      const r = start(guest, "loopback", "podman", true);
      expect(await waitReady(r)).toBe("1");
      expect(await untilOutput((c) => guest.exec(c), lineClient("10.0.2.2", LOOPBACK_PORT))).toEqual({ stdout: "hello from the host loopback\n", stderr: "" });
      expect(await untilOutput((c) => guest.exec(c), lineClient("fd00::2", LOOPBACK_PORT))).toEqual({ stdout: "hello from the host loopback\n", stderr: "" });
      closeSync(r.exitEnd);
      expect(await r.proc.exited).toBe(0);
      running = null;
      await guest.destroy();
    } finally {
      server.kill("SIGKILL");
    }
  }, 30_000);

  test("RootlessKit's way: a PID target from the initial user namespace; -c configures tap0 and a host address downloads", async () => {
    const guest = await BareNs.create();
    const r = start(guest, "rootlesskit", "rootlesskit");
    expect(await waitReady(r)).toBe("1");
    expect((await guest.exec(["ip", "-4", "-o", "addr", "show", "dev", "tap0"])).stdout).toContain("inet 10.0.2.100/24");
    const get = await guest.exec(["curl", "-sS", "-m", "10", `http://${HOST4}:${HTTP_PORT}/payload`]);
    expect({ stderr: get.stderr, ok: get.stdout === payload }).toEqual({ stderr: "", ok: true });
    closeSync(r.exitEnd);
    expect(await r.proc.exited).toBe(0);
    running = null;
    await guest.destroy();
  }, 30_000);
});
