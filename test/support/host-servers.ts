// Test servers that run inside a HostNs, and the matching guest clients,
// both from test/support/host-servers.py (see its docstring for what each
// service and client does).
//
//   const srv = await HostServers.start(rig.host);
//   const r = await guestClient(rig.guest, "connect", ["192.0.2.1", srv.ports.echo]);
//   expect(srv.acceptCount("echo")).toBe(1);
//
// The server prints one JSON event per line; they are collected in
// `events` and can be awaited with `waitEvent`. Every server is registered
// with the cleanup registry, so a failing test never leaves one running.
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { track, untrack } from "./cleanup.ts";
import type { GuestNs, HostNs } from "./netns.ts";
import { LineReader } from "./stack.ts";

export const SCRIPT = join(import.meta.dir, "host-servers.py");

/** The system interpreter (no pyenv shim: it is slow to start and reads $HOME). */
export const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : (Bun.which("python3") ?? "python3");

export type Service = "http" | "echo" | "reply" | "halfclose" | "halfclose-slow" | "lateclose" | "rst" | "watch" | "udp";

export interface ServerEvent {
  event: "ready" | "accept" | "closed" | "udp" | "http" | "pushed" | "command-error";
  svc?: string;
  peer?: string;
  bytes?: number;
  sha256?: string | null;
  error?: string | null;
  len?: number;
  method?: string;
  ports?: Record<Service, number>;
}

export class HostServers {
  readonly events: ServerEvent[] = [];
  private readonly out: LineReader;
  private readonly errText: Promise<string>;
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly proc: Subprocess<"pipe", "pipe", "pipe">,
    readonly ports: Record<Service, number>,
    out: LineReader,
  ) {
    this.out = out;
    this.errText = new Response(proc.stderr).text();
    track(this);
    void this.collect();
  }

  static async start(host: HostNs): Promise<HostServers> {
    const proc = Bun.spawn(host.enter([PYTHON, SCRIPT, "serve"]), {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    }) as Subprocess<"pipe", "pipe", "pipe">;
    const out = new LineReader(proc.stdout);
    let ready: ServerEvent;
    try {
      ready = JSON.parse(await out.waitFor('"ready"', 10_000)) as ServerEvent;
    } catch (e) {
      proc.kill("SIGKILL");
      throw new Error(`host servers did not start: ${(e as Error).message}\n${await new Response(proc.stderr).text()}`);
    }
    return new HostServers(proc, ready.ports!, out);
  }

  /** Moves new lines of the reader into `events` as they come, and wakes waiters. */
  private async collect(): Promise<void> {
    let seen = 0;
    let ended = false;
    void this.out.done.then(() => {
      ended = true;
    });
    while (!ended || seen < this.out.lines.length) {
      while (seen < this.out.lines.length) {
        const line = this.out.lines[seen++]!;
        if (line.startsWith("{")) this.events.push(JSON.parse(line) as ServerEvent);
      }
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
      await Bun.sleep(5);
    }
  }

  /** Accepted TCP connections of a service so far. */
  acceptCount(svc: Service): number {
    return this.events.filter((e) => e.event === "accept" && e.svc === svc).length;
  }

  /** Datagrams the UDP echo service received so far. */
  udpCount(): number {
    return this.events.filter((e) => e.event === "udp").length;
  }

  /**
   * Waits for the first event at index `from` or later (take
   * `events.length` before acting) that satisfies `pred`.
   */
  async waitEvent(what: string, pred: (e: ServerEvent) => boolean, timeoutMs = 10_000, from = 0): Promise<ServerEvent> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.slice(from).find(pred);
      if (hit) return hit;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for server event: ${what}; events:\n${this.events.map((e) => JSON.stringify(e)).join("\n")}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends an unsolicited datagram from the UDP service to `peer` (as in its "udp" events). */
  async udpPush(peer: string, data: string): Promise<void> {
    const n = this.events.length;
    this.proc.stdin.write(JSON.stringify({ cmd: "udp-push", peer, data }) + "\n");
    this.proc.stdin.flush();
    const ev = await this.waitEvent("push", (e) => e.event === "pushed" || e.event === "command-error", 10_000, n);
    if (ev.event !== "pushed") throw new Error(`udp-push failed: ${ev.error}`);
  }

  async stderr(): Promise<string> {
    return this.errText;
  }

  async destroy(): Promise<void> {
    untrack(this);
    this.proc.kill("SIGKILL");
    await this.proc.exited;
  }
}

/** Runs a client of host-servers.py inside the guest and returns its JSON result. */
export async function guestClient<T = Record<string, unknown>>(guest: GuestNs, cmd: string, args: Array<string | number>, timeoutMs = 60_000): Promise<T> {
  const r = await guest.exec([PYTHON, SCRIPT, "client", cmd, ...args.map(String)], { timeoutMs });
  if (r.code !== 0) throw new Error(`guest client ${cmd} ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as T;
}

const hashCache = new Map<string, string>();

/** SHA-256 of gen(size, seed), computed outside the namespaces. */
export async function expectedHash(size: number, seed: string): Promise<string> {
  const key = `${size}/${seed}`;
  let h = hashCache.get(key);
  if (h === undefined) {
    const p = Bun.spawn([PYTHON, SCRIPT, "hash", String(size), seed], { stdout: "pipe", stderr: "inherit" });
    h = (await new Response(p.stdout).text()).trim();
    if ((await p.exited) !== 0 || !/^[0-9a-f]{64}$/.test(h)) throw new Error(`hash ${size} ${seed} failed: ${h}`);
    hashCache.set(key, h);
  }
  return h;
}

/** A shell-quoted word. */
export function sq(s: string | number): string {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/** An URL host: IPv6 in brackets. */
export function urlHost(ip: string): string {
  return ip.includes(":") ? `[${ip}]` : ip;
}
