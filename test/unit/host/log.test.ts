// The logger against real pipes and sockets whose reader does not read:
// writes return at once, lines wait in a bounded queue, the rest are
// dropped and counted, and what was kept comes out in order once the
// reader reads, followed by a line saying how many were dropped. The flag
// that makes our writes non-blocking stays off the description we were
// given (others share it). Per-flow lines are rate-limited per kind and
// summed up; -quiet hides them; an exit flushes what waits, in bounded time.
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { libc, check } from "../../../ffi/libc.ts";
import { BURST_LINES, LINES_PER_SECOND, LineSink, Logger, SUMMARY_MS } from "../../../src/host/control/log.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { waitUntil } from "../../support/rig.ts";

const dir = mkdtempSync(join(tmpdir(), "slirp-log-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fifos = 0;

/** A FIFO: a non-blocking read end for the test, and a blocking write end like a shell's `| reader`. */
function fifo(): { r: number; w: number; path: string } {
  const path = join(dir, `p${fifos++}`);
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  const r = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const w = openSync(path, constants.O_WRONLY);
  return { r, w, path };
}

/** A unix stream socket pair (like journald's stdout stream): [ours, peer]. */
function streamPair(): [number, number] {
  const sv = new Int32Array(2);
  check("socketpair", libc.socketpair(1 /* AF_UNIX */, 1 /* SOCK_STREAM */, 0, new Uint8Array(sv.buffer)));
  return [sv[0]!, sv[1]!];
}

const readBuf = Buffer.alloc(1 << 16);

/** Everything readable now from a non-blocking fd. */
function readNow(fd: number): string {
  let s = "";
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, readBuf, 0, readBuf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") return s;
      throw e;
    }
    if (n === 0) return s;
    s += readBuf.toString("utf8", 0, n);
  }
}

/** The status flags of an fd's open file description. */
function statusFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
  return parseInt(m![1]!, 8);
}

const pad = "x".repeat(80);
const lineText = (i: number) => `[!] line ${String(i).padStart(5, "0")} ${pad}`;

/** Reads lines from `r` until the reader has seen `want` (a predicate on all lines so far). */
async function readUntil(r: number, want: (lines: string[]) => boolean, timeoutMs = 4000): Promise<string[]> {
  let text = "";
  await waitUntil("lines from the pipe", () => {
    text += readNow(r);
    return want(text.split("\n").slice(0, -1));
  }, timeoutMs);
  return text.split("\n").slice(0, -1);
}

/** Checks that `lines` are lineText(0), lineText(1), ... and returns how many. */
function consecutive(lines: string[]): number {
  let i = 0;
  while (i < lines.length && lines[i] === lineText(i)) i++;
  return i;
}

function stalledOutput(kind: string, make: () => { fd: number; readable: number; close(): void }) {
  test(`${kind} nobody reads: writes return at once, the queue holds what it can, the rest is dropped and counted; then all that was kept comes out in order, and the notice`, async () => {
    const out = make();
    const stats = new Stats();
    const sink = new LineSink(out.fd, 8192);
    sink.stats = stats;
    const flagsBefore = statusFlags(out.fd);
    const t0 = performance.now();
    const total = 5000;
    for (let i = 0; i < total; i++) sink.write(lineText(i));
    // 5000 lines of 96 bytes, far more than the kernel buffer and the
    // queue hold: a blocking write would never have returned.
    expect(performance.now() - t0).toBeLessThan(1000);
    const dropped = stats.eventCount("log-dropped");
    expect(dropped).toBeGreaterThan(0);
    expect(sink.queued).toBeGreaterThan(8192 - 96);
    expect(sink.queued).toBeLessThanOrEqual(8192);
    // Our non-blocking writes did not change the description others share.
    expect(statusFlags(out.fd)).toBe(flagsBefore);
    expect(statusFlags(out.fd) & constants.O_NONBLOCK).toBe(0);

    const notice = `[!] Log output not writable: dropped ${dropped} lines`;
    const lines = await readUntil(out.readable, (l) => l.includes(notice));
    const kept = consecutive(lines);
    expect(kept).toBe(total - dropped);
    expect(lines.slice(kept)).toEqual([notice]);
    expect(sink.queued).toBe(0);
    // Writable again: the next line goes out at once.
    sink.write("[ ] after");
    expect(readNow(out.readable)).toBe("[ ] after\n");
    out.close();
  });
}

describe("a stalled output", () => {
  stalledOutput("a pipe", () => {
    const p = fifo();
    return { fd: p.w, readable: p.r, close: () => (closeSync(p.w), closeSync(p.r)) };
  });
  stalledOutput("a unix stream socket", () => {
    const [ours, peer] = streamPair();
    // The test's end reads without blocking; ours stays as given (blocking).
    const fl = libc.fcntl(peer, 3 /* F_GETFL */, null);
    libc.fcntl(peer, 4 /* F_SETFL */, Number(fl) | constants.O_NONBLOCK);
    return { fd: ours, readable: peer, close: () => (closeSync(ours), closeSync(peer)) };
  });

  test("a reader that comes back in time gets every line: nothing dropped when the queue holds the backlog", async () => {
    const p = fifo();
    const stats = new Stats();
    const sink = new LineSink(p.w);
    sink.stats = stats;
    const total = 1000; // 96 KB: 64 KiB in the pipe, the rest queued
    for (let i = 0; i < total; i++) sink.write(lineText(i));
    expect(sink.queued).toBeGreaterThan(0);
    const lines = await readUntil(p.r, (l) => l.length === total);
    expect(consecutive(lines)).toBe(total);
    expect(stats.eventCount("log-dropped")).toBe(0);
    closeSync(p.w);
    closeSync(p.r);
  });
  test("two sinks on one pipe (stdout and stderr both the log pipe): a backlog drains in whole lines, so the other's line never lands inside one", () => {
    const p = fifo();
    const out = new LineSink(p.w);
    const err = new LineSink(p.w);
    const total = 1000; // 96 KB: 64 KiB in the pipe, the rest queued
    for (let i = 0; i < total; i++) out.write(lineText(i));
    expect(out.queued).toBeGreaterThan(0);
    // The reader takes a little over a page: room for one page frees up,
    // the backlog's next write fills it, and the reader then takes all.
    let text = readSync(p.r, readBuf, 0, 5000, null) === 5000 ? readBuf.toString("utf8", 0, 5000) : "";
    out.flush();
    text += readNow(p.r);
    // stderr's line goes straight into the now empty pipe.
    err.write("[-] closing");
    while (!out.flush()) text += readNow(p.r);
    text += readNow(p.r);
    const lines = text.split("\n").slice(0, -1);
    expect(lines.filter((l) => l !== "[-] closing" && !/^\[!\] line \d{5} x{80}$/.test(l))).toEqual([]);
    expect(lines.filter((l) => l === "[-] closing").length).toBe(1);
    expect(lines.length).toBe(total + 1);
    closeSync(p.w);
    closeSync(p.r);
  });
});

describe("Logger", () => {
  function rig(quiet: boolean) {
    const o = fifo();
    const e = fifo();
    const stats = new Stats();
    const clock = { t: 0 };
    const log = new Logger(quiet, { stdout: new LineSink(o.w), stderr: new LineSink(e.w), now: () => clock.t });
    log.countIn(stats);
    return { log, stats, clock, out: () => readNow(o.r), err: () => readNow(e.r), outFd: o.r };
  }

  test("per-flow lines are rate-limited per kind, and what was held back is summed up", async () => {
    const { log, stats, clock, out, outFd } = rig(false);
    for (let i = 0; i < BURST_LINES + 50; i++) log.flow("dial-error", `[!] refused ${i}`);
    // Another kind has its own budget.
    log.flow("conn-new", "[+] new 0");
    let lines = out().split("\n").slice(0, -1);
    expect(lines.length).toBe(BURST_LINES + 1);
    expect(lines[BURST_LINES - 1]).toBe(`[!] refused ${BURST_LINES - 1}`);
    expect(lines[BURST_LINES]).toBe("[+] new 0");
    expect(stats.eventCount("log-suppressed")).toBe(50);
    // One second later, LINES_PER_SECOND more.
    clock.t += 1000;
    for (let i = 0; i < LINES_PER_SECOND + 5; i++) log.flow("dial-error", `[!] later ${i}`);
    lines = out().split("\n").slice(0, -1);
    expect(lines.length).toBe(LINES_PER_SECOND);
    expect(stats.eventCount("log-suppressed")).toBe(55);
    // The summary comes SUMMARY_MS after the first held line, once.
    const summary = await readUntil(outFd, (l) => l.length > 0, SUMMARY_MS + 2000);
    expect(summary).toEqual(["[ ] Log rate limit: suppressed 55 dial-error lines"]);
    await Bun.sleep(SUMMARY_MS + 200);
    expect(out()).toBe("");
    // Lifecycle lines are never limited.
    for (let i = 0; i < BURST_LINES + 10; i++) log.err(`[ ] err ${i}`);
    expect(stats.eventCount("log-suppressed")).toBe(55);
  });

  test("-quiet: no per-flow line of any kind and no listen line; lifecycle and error lines still print", () => {
    const { log, stats, out, err } = rig(true);
    for (const k of ["conn-new", "conn-done", "dial-error", "dns-error", "local-fwd-error"] as const) log.flow(k, `[!] ${k}`);
    log.listen("[+] Accepting on remote side tcp://10.0.2.2:2222");
    expect(out()).toBe("");
    expect(stats.eventCount("log-suppressed")).toBe(0);
    log.status("[+] #1 Slirpnetstack started");
    log.err("[!] an error");
    expect(out()).toBe("");
    expect(err()).toBe("[+] #1 Slirpnetstack started\n[!] an error\n");
  });
});

describe("exit", () => {
  const LOG_TS = join(import.meta.dir, "../../../src/host/control/log.ts");
  // A process whose stdout is a pipe not read yet: it logs more than the
  // pipe holds, a closing line on stderr, and exits.
  const child = (p: { w: number }, lines: number) =>
    Bun.spawn(
      [
        process.execPath,
        "-e",
        `import { Logger } from ${JSON.stringify(LOG_TS)};
         const log = new Logger(false);
         for (let i = 0; i < ${lines}; i++) log.listen(${JSON.stringify(lineText(0).slice(0, -pad.length - 6))} + String(i).padStart(5, "0") + " " + ${JSON.stringify(pad)});
         log.err("[-] closing");
         process.exit(3);`,
      ],
      { stdin: "ignore", stdout: p.w, stderr: "pipe" },
    );

  test("what waits is written before the process exits, once the reader reads", async () => {
    const p = fifo();
    const proc = child(p, 1000);
    closeSync(p.w);
    await Bun.sleep(300); // the child has filled the pipe and waits in its exit
    const lines = await readUntil(p.r, (l) => l.length === 1000);
    expect(consecutive(lines)).toBe(1000);
    expect(await proc.exited).toBe(3);
    expect(await new Response(proc.stderr).text()).toBe("[-] closing\n");
    closeSync(p.r);
  });

  test("a reader that never reads holds the exit for a bounded time only", async () => {
    const p = fifo();
    const t0 = performance.now();
    const proc = child(p, 1000);
    closeSync(p.w);
    expect(await proc.exited).toBe(3);
    expect(performance.now() - t0).toBeLessThan(3000);
    closeSync(p.r);
  });
});
