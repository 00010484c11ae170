// Runs a TestDnsServer (test/support/dns-server.ts) inside a test
// namespace, where the stack under test can reach it on its loopback.
//
// As a script (run by HostDnsServer below, inside the namespace):
//   bun dns-agent.ts HOST '<records JSON>'
// prints "PORT N" once listening, then obeys JSON lines on stdin:
//   {"op":"set","records":[...]}  -> "OK"
//   {"op":"queries"}              -> "QUERIES <json>"
//   {"op":"stop"}                 -> "OK", and the sockets are closed
// and exits when stdin closes.
import type { Subprocess } from "bun";
import { join } from "node:path";
import { track, untrack } from "./cleanup.ts";
import type { LoggedQuery, TestDnsRecord } from "./dns-server.ts";

export interface Namespace {
  enter(cmd: string[]): string[];
}

/** The test side: a TestDnsServer in another namespace. */
export class HostDnsServer {
  private buffered = "";
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;

  private constructor(
    private readonly proc: Subprocess<"pipe", "pipe", "inherit">,
    readonly host: "127.0.0.1" | "::1",
    public port: number,
  ) {
    track(this);
  }

  static async start(ns: Namespace, records: TestDnsRecord[], host: "127.0.0.1" | "::1" = "127.0.0.1"): Promise<HostDnsServer> {
    const cmd = ns.enter([process.execPath, join(import.meta.dir, "dns-agent.ts"), host, JSON.stringify(records)]);
    const proc = Bun.spawn(cmd, { stdin: "pipe", stdout: "pipe", stderr: "inherit" }) as Subprocess<"pipe", "pipe", "inherit">;
    const s = new HostDnsServer(proc, host, 0);
    void s.pump();
    const first = await s.nextLine(10_000);
    const m = /^PORT (\d+)$/.exec(first);
    if (!m) {
      await s.destroy();
      throw new Error(`dns-agent: unexpected first line ${first}`);
    }
    s.port = Number(m[1]);
    return s;
  }

  /** "HOST:PORT" as an `@srv-` label expects it ("[::1]:PORT" for IPv6). */
  get address(): string {
    return this.host.includes(":") ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  private async pump(): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of this.proc.stdout) {
      const parts = (this.buffered + dec.decode(chunk, { stream: true })).split("\n");
      this.buffered = parts.pop()!;
      this.lines.push(...parts);
      const w = this.wake;
      this.wake = null;
      w?.();
    }
  }

  private async nextLine(timeoutMs = 5000): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      const left = end - Date.now();
      if (left <= 0 || this.proc.exitCode !== null) throw new Error("dns-agent: no reply");
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    return this.lines.shift()!;
  }

  private async command(cmd: object): Promise<string> {
    this.proc.stdin.write(JSON.stringify(cmd) + "\n");
    this.proc.stdin.flush();
    return this.nextLine();
  }

  async setRecords(records: TestDnsRecord[]): Promise<void> {
    if ((await this.command({ op: "set", records })) !== "OK") throw new Error("dns-agent: set failed");
  }

  async queries(): Promise<LoggedQuery[]> {
    const line = await this.command({ op: "queries" });
    return JSON.parse(line.replace(/^QUERIES /, "")) as LoggedQuery[];
  }

  /** Closes the server's sockets (queries then meet a closed port); the process stays for `queries`. */
  async stop(): Promise<void> {
    await this.command({ op: "stop" });
  }

  async destroy(): Promise<void> {
    untrack(this);
    this.proc.kill("SIGKILL");
    await this.proc.exited;
  }
}

// ---------------------------------------------------------------------------

async function agentMain(): Promise<void> {
  const { TestDnsServer } = await import("./dns-server.ts");
  const host = (process.argv[2] ?? "127.0.0.1") as "127.0.0.1" | "::1";
  const records = JSON.parse(process.argv[3] ?? "[]") as TestDnsRecord[];
  const server = await TestDnsServer.start({ host, records });
  const out = (line: string) => process.stdout.write(line + "\n");
  out(`PORT ${server.port}`);
  let partial = "";
  for await (const chunk of Bun.stdin.stream()) {
    const parts = (partial + new TextDecoder().decode(chunk)).split("\n");
    partial = parts.pop()!;
    for (const line of parts) {
      if (line.trim() === "") continue;
      const cmd = JSON.parse(line) as { op: string; records?: TestDnsRecord[] };
      if (cmd.op === "set") {
        server.setRecords(cmd.records ?? []);
        out("OK");
      } else if (cmd.op === "queries") {
        out(`QUERIES ${JSON.stringify(server.queries)}`);
      } else if (cmd.op === "stop") {
        await server.stop();
        out("OK");
      } else {
        out(`ERR unknown op ${cmd.op}`);
      }
    }
  }
  await server.stop();
  process.exit(0);
}

if (import.meta.main) await agentMain();
