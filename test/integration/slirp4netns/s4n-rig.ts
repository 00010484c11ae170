// What the slirp4netns-mode tests share: a bare user + network namespace
// for the guest (as Podman makes for a container), the binary started as
// slirp4netns in a HostNs with its exit and ready fds (and, for the DNS
// forwarder, a resolv.conf of the test's), the API socket, and small
// python servers and clients.
import { afterEach } from "bun:test";
import { closeSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { HostNs } from "../../support/netns.ts";
import { holderReady, readyMarker } from "../../support/netns.ts";
import { track, untrack } from "../../support/cleanup.ts";

/** A bare TCP server: each client gets `line` and the end of the stream (no name lookups, unlike http.server). */
export function lineServer(bind: string, port: number, line: string): string[] {
  const family = bind.includes(":") ? "socket.AF_INET6" : "socket.AF_INET";
  return ["python3", "-c", `import socket\ns=socket.socket(${family});s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\nif ${family}==socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\ns.bind(('${bind}',${port}));s.listen()\nwhile True:\n c,_=s.accept();c.sendall(b'${line}\\n');c.close()`];
}

/** Connects to host:port and prints what it reads until the end of the stream. */
export function lineClient(host: string, port: number): string[] {
  return ["python3", "-c", `import socket\nc=socket.create_connection(('${host}',${port}),timeout=5);d=b''\nwhile True:\n b=c.recv(4096)\n if not b: break\n d+=b\nprint(d.decode(),end='')`];
}

/**
 * Waits (up to 10 s) until the guest's tap has a global IPv6 address from
 * the router advertisements that is no longer tentative. Before that, the
 * guest kernel sends from ::1 or a link-local source, which no router may
 * answer, and a connect() started then hangs until its own timeout.
 */
export async function waitForSlaac(guest: BareNs, dev = "tap0"): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await guest.exec(["ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "global", "-tentative"]);
    if (r.stdout.includes("inet6 fd00::")) return;
    await Bun.sleep(50);
  }
  throw new Error(`no SLAAC address on ${dev} after 10 s`);
}

/** Runs `cmd` until it prints something (up to ~5 s: the guest may still be taking its IPv6 address). */
export async function untilOutput(run: (cmd: string[]) => Promise<{ stdout: string; stderr: string }>, cmd: string[]): Promise<{ stdout: string; stderr: string }> {
  let r = { stdout: "", stderr: "" };
  for (let i = 0; i < 100 && r.stdout === ""; i++) {
    const { stdout, stderr } = await run(cmd);
    r = { stdout, stderr };
    if (r.stdout === "") await Bun.sleep(50);
  }
  return r;
}

/** A bare user + network namespace (only lo, down), as Podman makes for a container. */
export class BareNs {
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
  /** argv prefix that runs a command in the namespace as its root. */
  enter(cmd: string[]): string[] {
    return ["nsenter", "-U", "-n", "--preserve-credentials", "-t", String(this.pid), "--", ...cmd];
  }
  /** Runs `cmd` in the namespace as its root; returns its status and output. */
  async exec(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const p = Bun.spawn(this.enter(cmd), { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, stdout, stderr };
  }
  async destroy(): Promise<void> {
    untrack(this);
    this.holder.kill("SIGKILL");
    await this.holder.exited;
  }
}

export interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Our end of the --exit-fd pipe (a FIFO opened read-write, so opening it never blocks). */
  exitEnd: number;
  readyFile: string;
  api: string;
}

export interface StartOptions {
  host: HostNs;
  /** The test's directory: the FIFO, the ready file and the API socket go there. */
  dir: string;
  /** The symlink named slirp4netns. */
  s4n: string;
  name: string;
  /** slirp4netns's arguments; "-e 3 -r 4" and "--api-socket" are the caller's to pass (see `running.api`). */
  args: (api: string) => string[];
  /** Run it from inside this process's user namespace (Podman's way); null: from the initial one (RootlessKit's). */
  enterUserns: number | null;
  /** A resolv.conf bound over /etc/resolv.conf in a mount namespace of its own; null: the machine's. */
  resolvConf?: string | null;
}

/** slirp4netns started in the HostNs with fd 3 reading a FIFO (--exit-fd) and fd 4 writing a file (--ready-fd). */
export function startSlirp4netns(o: StartOptions): Running {
  const exitFifo = join(o.dir, `${o.name}.exit`);
  rmSync(exitFifo, { force: true });
  Bun.spawnSync(["mkfifo", exitFifo]);
  const exitEnd = openSync(exitFifo, "r+");
  const readyFile = join(o.dir, `${o.name}.ready`);
  const api = join(o.dir, `${o.name}.sock`);
  const enter = o.enterUserns === null ? [] : ["nsenter", "-U", "--preserve-credentials", "-t", String(o.enterUserns), "--"];
  const cmd = [o.s4n, ...o.args(api)];
  const argv =
    o.resolvConf == null
      ? ["sh", "-c", `exec 3<"$0" 4>"$1"; shift; exec "$@"`, exitFifo, readyFile, ...enter, ...cmd]
      : ["unshare", "-m", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec 3<"$1" 4>"$2" && shift 2 && exec "$@"`, o.resolvConf, exitFifo, readyFile, ...enter, ...cmd];
  const proc = Bun.spawn(o.host.enter(argv), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const run = { proc, exitEnd, readyFile, api };
  live.set(run, true);
  return run;
}

/** Runs started in this test, each with whether our end of its exit fd is still open. */
const live = new Map<Running, boolean>();

/** Closes our end of `r`'s exit fd (--exit-fd: the process should exit 0). */
export function closeExit(r: Running): void {
  closeSync(r.exitEnd);
  live.set(r, false);
}

/** After each test: what it started is killed, and exit fds it left open are closed (never one it closed: the number may be reused). */
afterEach(() => {
  for (const [r, exitOpen] of live) {
    r.proc.kill("SIGKILL");
    if (exitOpen) closeSync(r.exitEnd);
  }
  live.clear();
});

/** What the ready fd got, once it got something; throws if the process exits first or nothing comes in 5 s. */
export async function waitReady(r: Running): Promise<string> {
  for (let i = 0; i < 500; i++) {
    if (existsSync(r.readyFile) && readFileSync(r.readyFile, "utf8") !== "") return readFileSync(r.readyFile, "utf8");
    if (r.proc.exitCode !== null) throw new Error(`exited ${r.proc.exitCode}: ${await new Response(r.proc.stderr).text()}`);
    await Bun.sleep(10);
  }
  throw new Error("not ready after 5 s");
}

