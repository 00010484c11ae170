// Foundation: hostile input is normal input (every field read from a frame
// is bounds-checked, a malformed frame is counted and dropped, and the
// process never crashes on input). From inside the guest, thousands of
// malformed, lying, looping and endless frames are written into the device
// (test/support/hostile.py, seeded and deterministic). Afterwards the
// process must still be alive, silent on stderr, answering pings
// (reassembly included), with bounded memory.
// Replay other inputs with SLIRP_HOSTILE_SEED=N (seeds N and N+1 are used);
// the generator alone: `python3 test/support/hostile.py tun0 tap N`.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { GuestNs } from "../../support/netns.ts";
import { processAlive, statusKiB, withRig, type Rig } from "../../support/rig.ts";

const HOSTILE_PY = join(import.meta.dir, "..", "..", "support", "hostile.py");
const SEED = Number(process.env.SLIRP_HOSTILE_SEED ?? 20240611);
const RSS_LIMIT_MIB = 200;

interface Summary {
  seed: number;
  mode: string;
  total: number;
  sent: number;
  cases: Record<string, { frames: number; sent: number; refused: number }>;
}

async function inject(guest: GuestNs, mode: "tap" | "tun", seed: number, scale: number): Promise<Summary> {
  const r = await guest.exec(["python3", HOSTILE_PY, guest.ifname, mode, String(seed), String(scale)], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`hostile.py exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Summary;
}

async function ping(guest: GuestNs, args: string[]): Promise<void> {
  const r = await guest.exec(["ping", "-c1", "-W5", ...args], { timeoutMs: 15_000 });
  expect({ args, code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
}

/** The guest device's counters: tx = frames towards the stack, rx = frames from it. */
async function linkStats(guest: GuestNs): Promise<{ txDropped: number; rxPackets: number }> {
  const r = await guest.exec(["ip", "-s", "-j", "link", "show", guest.ifname]);
  const [link] = JSON.parse(r.stdout) as { stats64?: { tx?: { dropped?: number }; rx?: { packets?: number } } }[];
  return { txDropped: link?.stats64?.tx?.dropped ?? 0, rxPackets: link?.stats64?.rx?.packets ?? 0 };
}

async function survive(rig: Rig, mode: "tap" | "tun"): Promise<void> {
  const { guest, stack } = rig;
  await ping(guest, ["10.0.2.2"]);
  const rssBefore = statusKiB(stack.pid, "VmRSS");
  const stats0 = await linkStats(guest);
  const t0 = performance.now();
  const summaries: Summary[] = [];
  // The second round is three times larger (about 50k frames, 13k of them never-completing fragments).
  for (const [seed, scale] of [
    [SEED, 1],
    [SEED + 1, 3],
  ] as const) {
    summaries.push(await inject(guest, mode, seed, scale));
    expect(processAlive(stack.pid)).toBe(true);
  }
  const injectMs = performance.now() - t0;
  // The stack is still alive and serving: small and large (fragmented) pings both ways.
  await ping(guest, ["10.0.2.2"]);
  await ping(guest, ["-6", "fd00::2"]);
  await ping(guest, ["-s", "65000", "10.0.2.2"]);
  await ping(guest, ["-6", "-s", "65000", "fd00::2"]);
  await ping(guest, ["10.0.2.77"]);
  expect(processAlive(stack.pid)).toBe(true);
  const rssAfter = statusKiB(stack.pid, "VmRSS");
  const hwm = statusKiB(stack.pid, "VmHWM");
  const stats1 = await linkStats(guest);
  const dropped = stats1.txDropped - stats0.txDropped;
  const answered = stats1.rxPackets - stats0.rxPackets;
  const total = summaries.reduce((a, s) => a + s.total, 0);
  const sent = summaries.reduce((a, s) => a + s.sent, 0);
  console.log(
    `hostile ${mode}: seeds ${summaries.map((s) => s.seed).join(",")}: ${total} frames, ${sent} accepted by the kernel, ` +
      `${dropped} dropped at the device queue, ${answered} frames came back, ${Math.round(injectMs)} ms; ` +
      `RSS ${(rssBefore / 1024).toFixed(1)} -> ${(rssAfter / 1024).toFixed(1)} MiB (peak ${(hwm / 1024).toFixed(1)} MiB)`,
  );
  console.log(`hostile ${mode} cases:`, JSON.stringify(summaries[0]!.cases));
  expect(sent).toBeGreaterThan(total * 0.9);
  // The stack did read them: a good share got past the device queue (what
  // a stack that stopped reading would drop at once), and it answered some
  // (ARP, neighbour advertisements, echo replies, RSTs). Answers are few
  // by design: none toward forged or non-unicast sources, challenge and
  // out-of-window ACKs at most one per 500 ms per connection, ICMP errors
  // through one token bucket.
  expect(sent - dropped).toBeGreaterThan(total * 0.15);
  expect(answered).toBeGreaterThan(100);
  expect(rssAfter / 1024).toBeLessThan(RSS_LIMIT_MIB);
  expect(hwm / 1024).toBeLessThan(RSS_LIMIT_MIB);
  // Nothing on stderr after the startup lines: no stack traces, no warnings.
  expect(stack.stderr.lines.slice(3)).toEqual([]);
  expect(await stack.stop()).toBe(0);
}

describe("hostile frames from the guest", () => {
  // MTU 9000: every generated frame fits, and a 64 KB ping still needs
  // fragmentation, so reassembly is checked after the fragment floods.
  test("tap device", async () => {
    await withRig({ guest: { mtu: 9000 } }, (rig) => survive(rig, "tap"));
  });

  test("tun device", async () => {
    await withRig({ guest: { mode: "tun", mtu: 9000 } }, (rig) => survive(rig, "tun"));
  });
});
