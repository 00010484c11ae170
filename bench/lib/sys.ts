// Process helpers for the benchmark: every child is tracked so that it can
// be stopped on exit, Ctrl-C or failure; commands run with a time limit.
import type { Subprocess } from "bun";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const t0 = performance.now();
let silenced = false;
/** No more progress lines (while tearing down after Ctrl-C, failures are expected). */
export function silence(): void {
  silenced = true;
}
export function log(msg: string): void {
  if (silenced) return;
  const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${s}s] ${msg}\n`);
}

/** Every child process still running that we started. */
const live = new Set<Subprocess>();

type Sink = "pipe" | "ignore" | "inherit" | number;

export function start(cmd: string[], out: Sink = "ignore", err: Sink = "ignore"): Subprocess {
  const p = Bun.spawn({ cmd, stdin: "ignore", stdout: out, stderr: err });
  live.add(p);
  void p.exited.then(() => live.delete(p));
  return p;
}

export function alive(p: Subprocess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** SIGTERM, up to graceMs to exit, then SIGKILL; resolves once it is gone. */
export async function stop(p: Subprocess | null | undefined, graceMs = 3000): Promise<void> {
  if (!p) return;
  if (alive(p)) {
    p.kill("SIGTERM");
    const gone = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!gone) p.kill("SIGKILL");
  }
  await p.exited;
}

export async function stopAll(graceMs = 1000): Promise<void> {
  await Promise.all([...live].map((p) => stop(p, graceMs)));
}

export interface RunResult {
  code: number | null;
  out: string;
  err: string;
  timedOut: boolean;
}

/** Runs cmd to completion (SIGKILL after timeoutMs) and collects its output. */
export async function run(cmd: string[], timeoutMs = 30_000): Promise<RunResult> {
  const p = start(cmd, "pipe", "pipe");
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGKILL");
  }, timeoutMs);
  const [out, err] = await Promise.all([
    new Response(p.stdout as ReadableStream).text(),
    new Response(p.stderr as ReadableStream).text(),
  ]);
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode, out, err, timedOut };
}

/** The last line of a client's stdout, parsed as JSON (clients print one object last). */
export function lastJson(text: string): Record<string, unknown> | null {
  const lines = text.trim().split("\n");
  try {
    const v = JSON.parse(lines[lines.length - 1] ?? "");
    return v && typeof v === "object" ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Collects a child's output as it arrives, so that we can wait for a marker. */
export class Output {
  text = "";
  ended = false;
  private wake: Array<() => void> = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    const dec = new TextDecoder();
    void (async () => {
      try {
        for await (const chunk of stream) {
          this.text += dec.decode(chunk, { stream: true });
          this.notify();
        }
      } catch {
        // the child went away; what we have is all there is
      }
      this.ended = true;
      this.notify();
    })();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  /** True once `marker` is in the output; false if the stream ends or timeoutMs passes first. */
  async waitFor(marker: string, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.text.includes(marker)) return true;
      const left = deadline - performance.now();
      if (this.ended || left <= 0) return false;
      await Promise.race([new Promise<void>((r) => this.wake.push(r)), sleep(left)]);
    }
  }

  /** Waits (up to timeoutMs) for the end of the stream and returns everything. */
  async all(timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (!this.ended && performance.now() < deadline) {
      await Promise.race([new Promise<void>((r) => this.wake.push(r)), sleep(deadline - performance.now())]);
    }
    return this.text;
  }
}

export function tail(text: string, lines = 3): string {
  return text.trim().split("\n").slice(-lines).join(" | ");
}
