// Runs the built ./slirpnetstack binary for integration tests and reads its
// output line by line, the way the upstream suite does: tests wait for a
// substring on stdout or stderr, in order.
import type { Subprocess } from "bun";
import { join } from "node:path";
import { track, untrack } from "./cleanup.ts";
import type { HostNs } from "./netns.ts";

/**
 * The binary under test: ./slirpnetstack, or $SLIRPNETSTACK_BINARY (a copy
 * built with `bun build.ts PATH`, so that a rebuild of the shared
 * ./slirpnetstack cannot change the binary in the middle of a run, or a
 * build of another tree to try a change).
 */
export const BINARY = process.env.SLIRPNETSTACK_BINARY || join(import.meta.dir, "..", "..", "slirpnetstack");

/** Reads a byte stream as lines; waiters match substrings in arrival order. */
export class LineReader {
  readonly lines: string[] = [];
  private cursor = 0;
  private partial = "";
  private ended = false;
  private wake: (() => void) | null = null;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.pump(stream);
  }

  private async pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      const text = this.partial + dec.decode(chunk, { stream: true });
      const parts = text.split("\n");
      this.partial = parts.pop()!;
      this.lines.push(...parts);
      this.notify();
    }
    if (this.partial) this.lines.push(this.partial);
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /**
   * Waits for the next line (after the previous match) that contains
   * `needle`, and returns it. Lines before it are skipped, like the
   * upstream suite's reader.
   */
  async waitFor(needle: string | RegExp, timeoutMs = 10_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.lines.length) {
        const line = this.lines[this.cursor++]!;
        if (typeof needle === "string" ? line.includes(needle) : needle.test(line)) return line;
      }
      if (this.ended) throw new Error(`stream ended before ${String(needle)}; saw:\n${this.lines.join("\n")}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${String(needle)}; saw:\n${this.lines.join("\n")}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  text(): string {
    return this.lines.join("\n");
  }
}

export interface StackOptions {
  /** Run inside this private host namespace (recommended for every test). */
  host?: HostNs;
  /** Extra fds to pass: index 3 onward. */
  extraFds?: number[];
  env?: Record<string, string>;
  binary?: string;
  cwd?: string;
}

/** One running slirpnetstack process. */
export class StackProcess {
  readonly stdout: LineReader;
  readonly stderr: LineReader;

  private constructor(readonly proc: Subprocess<"ignore", "pipe", "pipe">) {
    this.stdout = new LineReader(proc.stdout);
    this.stderr = new LineReader(proc.stderr);
    track(this);
  }

  static spawn(args: string[], opts: StackOptions = {}): StackProcess {
    const cmd = [opts.binary ?? BINARY, ...args];
    const argv = opts.host ? opts.host.enter(cmd) : cmd;
    const proc = Bun.spawn(argv, {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: opts.extraFds ? ["ignore", "pipe", "pipe", ...opts.extraFds] : undefined,
    } as Parameters<typeof Bun.spawn>[1]) as Subprocess<"ignore", "pipe", "pipe">;
    return new StackProcess(proc);
  }

  /** Starts the stack and waits for "Slirpnetstack started". */
  static async start(args: string[], opts: StackOptions = {}): Promise<StackProcess> {
    const s = StackProcess.spawn(args, opts);
    try {
      await s.stderr.waitFor("Slirpnetstack started", 15_000);
    } catch (e) {
      await s.destroy();
      throw e;
    }
    return s;
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Waits for exit and returns the exit code (or 128+signal). */
  async exitCode(timeoutMs = 10_000): Promise<number> {
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), timeoutMs);
    const code = await this.proc.exited;
    clearTimeout(timer);
    await Promise.all([this.stdout.done, this.stderr.done]);
    untrack(this);
    const sig = this.proc.signalCode;
    return sig ? 128 + signalNumber(String(sig)) : code;
  }

  /** Sends SIGINT (as the upstream suite's teardown does) and waits. */
  async stop(signal: NodeJS.Signals = "SIGINT"): Promise<number> {
    this.proc.kill(signal);
    return this.exitCode();
  }

  /** Open file descriptors of the process, for leak checks. */
  async fdCount(): Promise<number> {
    const { readdir } = await import("node:fs/promises");
    return (await readdir(`/proc/${this.pid}/fd`)).length;
  }

  async destroy(): Promise<void> {
    untrack(this);
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGKILL");
    }
    await this.proc.exited;
  }
}

function signalNumber(name: string): number {
  const table: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGSEGV: 11, SIGABRT: 6 };
  return table[name] ?? 0;
}
