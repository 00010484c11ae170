// Core: logging never holds up the data path. The stack's stdout and
// stderr are a pipe nobody reads (a stalled log reader), and the guest
// makes 20 000 connections to a closed host port, each one a "conn error"
// line. Every connection is still refused at once, UDP ping-pong during the
// flood does not stall, the hostile-case checks (test/support/hostile-checks.ts)
// pass during the flood and after it, a download afterwards takes its
// normal time, /metrics counts the lines dropped and suppressed,
// and the pipe's shared description is left blocking (others write to it
// too). When the reader comes back and the stack is stopped, what was
// kept comes out, with the dropped-lines notice and the closing line.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { GuestNs, HostNs } from "../../support/netns.ts";
import { HostServers, PYTHON, SCRIPT, expectedHash, guestClient, sq } from "../../support/host-servers.ts";
import { BINARY } from "../../support/stack.ts";
import { processAlive, waitUntil } from "../../support/rig.ts";
import { PY_STOP, backgroundAttack, connects, beginCase, hostileChecks, linesLost, whileAttacking, type HostileTarget } from "../../support/hostile-checks.ts";
import { track, untrack } from "../../support/cleanup.ts";
import { CLOSED_PORT, HOST4, HOST_ADDRS } from "./core-rig.ts";

setDefaultTimeout(120_000);

const METRICS_PORT = 9100;
const FLOOD = 20_000;
const DOWNLOAD = 64 << 20;

const dir = mkdtempSync(join(tmpdir(), "slirp-log-stall-"));
let host: HostNs;
let guest: GuestNs;
let servers: HostServers;
let stack: Subprocess;
/** Kills the stack if the file ends early (the cleanup registry runs it). */
const stackGuard = { destroy: async () => void stack?.kill("SIGKILL") };
/** The read end of the stack's stdout and stderr, not read until the end. */
let logRead: number;

function fifo(name: string): { r: number; w: number } {
  const path = join(dir, name);
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  const r = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return { r, w: openSync(path, constants.O_WRONLY) };
}

const readBuf = Buffer.alloc(1 << 16);
/** What a non-blocking fd has now, and whether it is at EOF. */
function readNow(fd: number): { text: string; eof: boolean } {
  let text = "";
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, readBuf, 0, readBuf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") return { text, eof: false };
      throw e;
    }
    if (n === 0) return { text, eof: true };
    text += readBuf.toString("utf8", 0, n);
  }
}

async function metrics(): Promise<string> {
  const r = await host.exec(["curl", "-sS", "--noproxy", "*", "--max-time", "10", `http://127.0.0.1:${METRICS_PORT}/metrics`]);
  if (r.code !== 0) throw new Error(`metrics: curl exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Downloads DOWNLOAD bytes from the host's HTTP server into the guest, checked; returns ms. */
async function download(seed: string): Promise<number> {
  const want = expectedHash(DOWNLOAD, seed);
  const url = `http://${HOST4}:${servers.ports.http}/download?size=${DOWNLOAD}&seed=${seed}`;
  const t0 = performance.now();
  const r = await guest.exec(["bash", "-o", "pipefail", "-c", `curl -sS --fail --noproxy '*' --max-time 30 ${sq(url)} | ${PYTHON} ${SCRIPT} sha256`], { timeoutMs: 40_000 });
  const ms = performance.now() - t0;
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  expect(JSON.parse(r.stdout)).toEqual({ bytes: DOWNLOAD, sha256: await want });
  return ms;
}

// Sequential connects to a closed port, each refused (RST) or a failure
// after 2 s: n of them, and more until stdin closes; stops at the first
// connect that is not refused.
const FLOOD_CLIENT = `${PY_STOP}
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
refused, other, t0 = 0, None, time.monotonic()
i = 0
while i < n or not stop_requested():
    if i == 100:
        print("started", flush=True)
    i += 1
    s = socket.socket()
    s.settimeout(2.0)
    try:
        s.connect((host, port))
        other = "connected"
    except ConnectionRefusedError:
        refused += 1
    except OSError as e:
        other = repr(e)
    finally:
        s.close()
    if other:
        break
print(json.dumps({"tried": i, "refused": refused, "other": other, "ms": (time.monotonic() - t0) * 1000}))
`;

beforeAll(async () => {
  host = await HostNs.create(HOST_ADDRS);
  servers = await HostServers.start(host);
  guest = await GuestNs.create();
  const log = fifo("log");
  const ready = fifo("ready");
  logRead = log.r;
  stack = Bun.spawn(host.enter([BINARY, "-netns", guest.netnsPath, "-enable-host", "-m", `tcp://127.0.0.1:${METRICS_PORT}`, "-ready-fd", "3"]), {
    stdio: ["ignore", log.w, log.w, ready.w],
  });
  track(stackGuard);
  closeSync(log.w);
  closeSync(ready.w);
  await waitUntil("the stack's ready fd", () => readNow(ready.r).text === "1" || !processAlive(stack.pid), 15_000, 10);
  closeSync(ready.r);
  expect(processAlive(stack.pid)).toBe(true);
});

afterAll(async () => {
  if (stack && stack.exitCode === null && stack.signalCode === null) stack.kill("SIGKILL");
  await stack?.exited;
  await servers?.destroy();
  await guest?.destroy();
  await host?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe("a log reader that does not read", () => {
  test(`${FLOOD} refused connections: each refused at once, no stall, a download in its normal time, the stack alive`, async () => {
    const t: HostileTarget = { host, guest, servers, serverAddr: HOST4, pid: stack.pid, metrics };
    const before = await beginCase(t);
    const moved = [connects("refused"), linesLost("dropped")];
    const baseline = await download("log-stall-before");
    const flood = backgroundAttack<{ tried: number; refused: number; other: string | null; ms: number }>(guest, [PYTHON, "-c", FLOOD_CLIENT, HOST4, String(CLOSED_PORT), String(FLOOD)]);
    const got = await whileAttacking(flood, async () => {
      // Mid-flood, with the pipe long full: UDP round trips do not wait for the log.
      await Bun.sleep(1500);
      const pingpong = await guestClient<{ stalls: number[] }>(guest, "udppingpong", [HOST4, servers.ports.udp, 300], 20_000);
      expect(pingpong.stalls).toEqual([]);
      await hostileChecks(t, { phase: "during", since: before, moved });
    });
    console.log(`${got.tried} refused connects in ${got.ms.toFixed(0)} ms; download ${baseline.toFixed(0)} ms before`);
    expect(got).toMatchObject({ refused: got.tried, other: null });
    expect(got.tried).toBeGreaterThanOrEqual(FLOOD);
    // The pipe is still full and its reader still away.
    const after = await download("log-stall-after");
    console.log(`download after the flood: ${after.toFixed(0)} ms`);
    expect(after).toBeLessThan(baseline * 3 + 2000);
    await hostileChecks(t, { phase: "after", since: before, moved });

    const m = await metrics();
    expect(metric(m, 'slirpnetstack_connects_total{outcome="refused"}')).toBeGreaterThanOrEqual(FLOOD);
    expect(metric(m, 'slirpnetstack_log_lines_lost_total{reason="suppressed"}')).toBeGreaterThan(0);
    expect(metric(m, 'slirpnetstack_log_lines_lost_total{reason="dropped"}')).toBeGreaterThan(0);
    // Our writes are non-blocking on a description of our own: the one
    // we were given (shared with whoever else writes to the pipe) is not.
    for (const fd of [1, 2]) {
      const flags = parseInt(/^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${stack.pid}/fdinfo/${fd}`, "utf8"))![1]!, 8);
      expect({ fd, nonblock: (flags & constants.O_NONBLOCK) !== 0 }).toEqual({ fd, nonblock: false });
    }
  });

  test("the reader comes back and the stack stops: kept lines, the dropped-lines notice and the closing line come out", async () => {
    const pid = stack.pid;
    stack.kill("SIGTERM");
    let text = "";
    await waitUntil("EOF on the log pipe", () => {
      const got = readNow(logRead);
      text += got.text;
      return got.eof;
    }, 10_000, 10);
    expect(await stack.exited).toBe(0);
    untrack(stackGuard);
    const lines = text.split("\n").slice(0, -1);
    expect(lines).toContain(`[+] #${pid} Slirpnetstack started`);
    expect(lines).toContain(`[-] #${pid} Slirpnetstack closing`);
    expect(lines.filter((l) => l.endsWith(" Routing conn error: l=0/0 r=[dial tcp 192.0.2.1:9: connect: connection refused]/0")).length).toBeGreaterThan(500);
    expect(lines.some((l) => /^\[!\] Log output not writable: dropped \d+ lines$/.test(l))).toBe(true);
    closeSync(logRead);
  });
});
