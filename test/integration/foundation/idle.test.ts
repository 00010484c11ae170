// Foundation: an idle stack sleeps. Over ~3 s with no traffic it must use
// near-zero CPU and wake up rarely (no busy polling). These are sanity
// bounds, not benchmarks; the measured numbers are printed.
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { DgramPair } from "../../support/fdpair.ts";
import { HostNs } from "../../support/netns.ts";
import { contextSwitches, cpuNs, cpuTicks, statusKiB, withRig } from "../../support/rig.ts";
import { StackProcess } from "../../support/stack.ts";

const WINDOW_MS = 3000;
/** utime+stime over the window, in ms (ticks are 10 ms). */
const MAX_CPU_MS = 50;
/**
 * Context switches of all threads over the window. Measured: about 1/s
 * (the guest's own IPv6 and ARP frames); a 1 ms poll loop would make 3000.
 */
const MAX_SWITCHES = 300;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

function runningThreads(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2)[0] === "R") n++;
    } catch {
      // gone
    }
  }
  return n;
}

interface IdleSample {
  cpuMs: number;
  schedMs: number;
  switches: number;
  runningSamples: number;
  samples: number;
  threads: number;
  rssKiB: number;
}

/**
 * Right after startup the runtime is still busy (JIT, GC helpers warming
 * up); wait until a half-second window is quiet before measuring.
 */
async function settle(pid: number): Promise<void> {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const cs0 = contextSwitches(pid);
    await Bun.sleep(500);
    if (contextSwitches(pid) - cs0 <= 12) return;
  }
}

async function measureIdle(pid: number): Promise<IdleSample> {
  await settle(pid);
  const ticks0 = cpuTicks(pid);
  const ns0 = cpuNs(pid);
  const cs0 = contextSwitches(pid);
  const end = Date.now() + WINDOW_MS;
  let samples = 0;
  let running = 0;
  // Sampling itself must stay cheap and rare; it runs in the test process.
  while (Date.now() < end) {
    await Bun.sleep(100);
    samples++;
    if (runningThreads(pid) > 0) running++;
  }
  return {
    cpuMs: (cpuTicks(pid) - ticks0) * 10,
    schedMs: (cpuNs(pid) - ns0) / 1e6,
    switches: contextSwitches(pid) - cs0,
    runningSamples: running,
    samples,
    threads: readdirSync(`/proc/${pid}/task`).length,
    rssKiB: statusKiB(pid, "VmRSS"),
  };
}

function check(label: string, s: IdleSample): void {
  console.log(
    `idle ${label}: ${s.cpuMs} ms utime+stime, ${s.schedMs.toFixed(2)} ms on-CPU (schedstat), ` +
      `${s.switches} context switches, running in ${s.runningSamples}/${s.samples} samples, ` +
      `${s.threads} threads, RSS ${(s.rssKiB / 1024).toFixed(1)} MiB over ${WINDOW_MS} ms`,
  );
  expect(s.cpuMs).toBeLessThan(MAX_CPU_MS);
  expect(s.schedMs).toBeLessThan(MAX_CPU_MS);
  expect(s.switches).toBeLessThan(MAX_SWITCHES);
  // A busy-polling thread would be seen running in most samples.
  expect(s.runningSamples).toBeLessThanOrEqual(Math.ceil(s.samples / 5));
}

describe("idle", () => {
  test("device mode (tap): near-zero CPU, few wakeups", async () => {
    await withRig({}, async ({ guest, stack }) => {
      // Some traffic first, so every lazily started part is up.
      expect((await guest.exec(["ping", "-c2", "-i0.2", "-W5", "10.0.2.2"])).code).toBe(0);
      expect((await guest.exec(["ping", "-6", "-c1", "-W5", "fd00::2"])).code).toBe(0);
      check("tap", await measureIdle(stack.pid));
    });
  });

  test("the process runs with the runtime settings src/runtime-env.ts adds (GC timer off, no FTL tier, no scavenger thread, no concurrent JIT)", async () => {
    await withRig({}, async ({ stack }) => {
      const env = readFileSync(`/proc/${stack.pid}/environ`, "utf8").split("\0");
      expect(env).toContain("BUN_GC_TIMER_DISABLE=1");
      expect(env).toContain("BUN_JSC_useFTLJIT=0");
      expect(env).toContain("MIMALLOC_PURGE_DELAY=0");
      expect(env).toContain("BUN_JSC_useConcurrentJIT=0");
      // With a purge delay of 0 the allocator's scavenger thread never starts.
      const threads = readdirSync(`/proc/${stack.pid}/task`).map((t) => readFileSync(`/proc/${stack.pid}/task/${t}/comm`, "utf8").trim());
      expect(threads).not.toContain("mi-scavenger");
    });
  });

  test("-fd mode: near-zero CPU, few wakeups", async () => {
    const host = await HostNs.create();
    cleanups.push(() => host.destroy());
    const pair = DgramPair.create();
    cleanups.push(() => pair.destroy());
    const stack = await StackProcess.start(["-fd", "3"], { host, extraFds: [pair.remote] });
    cleanups.push(() => stack.destroy());
    pair.closeRemote();
    await pair.collect((all) => all.length > 0, 2000);
    check("fd", await measureIdle(stack.pid));
    // Reading nothing the whole time: the socket is still the stack's and it still answers.
    expect(await stack.stop()).toBe(0);
  });
});
