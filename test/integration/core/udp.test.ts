// Core: UDP flows through the stack, guest -> host echo server
// (-enable-host), IPv4 and IPv6 (docs/compatibility.md, Flows):
//   - datagrams sent back to back are neither lost nor merged;
//   - large datagrams, fragmented on the guest link, round-trip whole;
//   - an ICMP error from the host ends the flow at once;
//   - an idle flow ends after the idle timeout without traffic in either
//     direction, and the next datagram makes a new flow with a new host port.
//
// The idle test runs on its own rig with the timeout shortened from the
// default 125 s through the SLIRPNETSTACK_UDP_IDLE_MS test hook, started
// in beforeAll in the background while the other tests run, and is checked
// by the last test.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { PYTHON, SCRIPT, guestClient } from "../../support/host-servers.ts";
import { LineReader } from "../../support/stack.ts";
import { processAlive } from "../../support/rig.ts";
import { CLOSED_PORT, GUEST4, GUEST6, HOST4, HOST6, LeakGuard, createCoreRig, destroyCoreRig, endpointIs, flowTable, goHostPort, re, waitNoFlows, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(60_000);

interface UdpResult {
  sent: number[];
  got: number[];
  texts: Array<string | null>;
  match: boolean;
  error: string | null;
  local_port: number;
}

const FAMILIES = [
  { name: "IPv4", ip: HOST4, guest: GUEST4, max: 65507 },
  { name: "IPv6", ip: HOST6, guest: GUEST6, max: 65527 },
] as const;

/** The idle timeout is 125 s (as upstream); the test hook shortens it for this rig. */
const IDLE_MS = 10_000;

let rig: CoreRig;
let leaks: LeakGuard;
let idle: Promise<IdleResult>;

beforeAll(async () => {
  idle = idleScenario();
  idle.catch(() => {}); // awaited (and reported) by its test
  rig = await createCoreRig({ args: ["-enable-host"] });
  leaks = await LeakGuard.take(rig);
});

afterAll(async () => {
  if (rig) await destroyCoreRig(rig);
});

afterEach(async () => {
  await leaks.check();
}, 30_000);

/** Runs the udp client; every answered exchange leaves one live flow (for the leak check). */
async function udp(r: CoreRig, ip: string, port: number, payloads: string, timeout = "5"): Promise<UdpResult> {
  const res = await guestClient<UdpResult>(r.guest, "udp", [ip, port, payloads, timeout]);
  if (r === rig && res.got.length > 0) leaks.udpOpen++;
  return res;
}

describe.each(FAMILIES)("UDP over $name", ({ ip, guest, max }) => {
  test('"ala", "ma", "kota" back to back come back as three datagrams, over one flow', async () => {
    const r = await udp(rig, ip, rig.servers.ports.udp, "ala,ma,kota");
    expect({ got: r.got, texts: r.texts, error: r.error }).toEqual({ got: [3, 2, 4], texts: ["ala", "ma", "kota"], error: null });
    // The server saw three datagrams from one host socket.
    const evs = rig.servers.events.filter((e) => e.event === "udp").slice(-3);
    expect(evs.map((e) => e.len)).toEqual([3, 2, 4]);
    expect(new Set(evs.map((e) => e.peer)).size).toBe(1);
    const g = re(goHostPort(guest, r.local_port));
    const u = re(goHostPort(ip, rig.servers.ports.udp));
    const line = await rig.stack.stdout.waitFor(new RegExp(`^\\[\\+\\] udp://${g}/${re(goHostPort(ip, ""))}\\d+-${u} Routing conn new$`));
    expect(line).toContain(evs[0]!.peer!);
    // One flow for the 4-tuple.
    const rows = (await flowTable(rig)).filter((f) => f.proto === "udp" && endpointIs(f.guest, guest, r.local_port));
    expect(rows.length).toBe(1);
  });

  test("5000 ping-pong round trips: none waits for a wakeup (each answered within 1 s)", async () => {
    // A lost wakeup shows as a datagram that sits in the stack until the
    // next one arrives: the client's timeout. The tun driver's SIGIO-before-
    // epoll ordering once did this to about one round trip in 2000.
    leaks.udpOpen++; // the flow stays live for its idle timeout, whatever happens below
    const out = await guestClient<{ stalls: number[] }>(rig.guest, "udppingpong", [ip, rig.servers.ports.udp, 5000], 30_000);
    expect(out.stalls).toEqual([]);
  });

  test(`16385- and ${max}-byte datagrams round-trip whole (the largest fragmented at MTU 65521)`, async () => {
    const r = await udp(rig, ip, rig.servers.ports.udp, `16385,${max}`);
    expect({ got: r.got, match: r.match, error: r.error }).toEqual({ got: [16385, max], match: true, error: null });
  });
});

describe("UDP to a closed host port", () => {
  // A rig of its own for each: a crash here must not take other tests down.
  test.each(FAMILIES)("$name: the host's ICMP error ends the flow at once, with a done line; the stack lives on", async ({ ip, guest }) => {
    const own = await createCoreRig({ args: ["-enable-host"] });
    try {
      const r = await udp(own, ip, CLOSED_PORT, "x", "1");
      expect(r.got).toEqual([]);
      await Bun.sleep(100);
      expect(processAlive(own.stack.pid)).toBe(true);
      const g = re(goHostPort(guest, r.local_port));
      const d = re(goHostPort(ip, CLOSED_PORT));
      const line = await own.stack.stdout.waitFor(new RegExp(`^\\[-\\] udp://${g}/${re(goHostPort(ip, ""))}\\d+-${d} Routing conn done: l=`), 3000);
      expect(line).toContain("connection refused");
      await waitNoFlows(own, 3000);
      // Still answering.
      const e = await udp(own, ip, own.servers.ports.udp, "alive");
      expect(e.match).toBe(true);
    } finally {
      await destroyCoreRig(own);
    }
  });
});

describe("UDP on a 1500-byte guest link", () => {
  test.each(FAMILIES)("$name: 16385 and $max bytes round-trip, fragmented both ways", async ({ ip, max }) => {
    const small = await createCoreRig({ args: ["-enable-host"], guest: { mtu: 1500 } });
    try {
      const r = await udp(small, ip, small.servers.ports.udp, `16385,${max}`);
      expect({ got: r.got, match: r.match, error: r.error }).toEqual({ got: [16385, max], match: true, error: null });
    } finally {
      await destroyCoreRig(small);
    }
  });
});

interface IdleResult {
  guestPort: number;
  firstHostPort: string;
  secondHostPort: string;
  doneLine: string;
  /** ms from the first datagram / from the host's unsolicited datagram to the "done" line. */
  sinceFirst: number;
  sincePush: number;
  /** Whether the flow was still in the table shortly before the expected end. */
  aliveBefore: boolean;
}

/**
 * One flow: the guest sends at t0, the host server sends one unsolicited
 * datagram at t0+5 s (traffic toward the guest only), then nothing. The
 * flow must end 125 s after that last datagram (not after the guest's).
 */
async function idleScenario(): Promise<IdleResult> {
  const r = await createCoreRig({ args: ["-enable-host"], env: { SLIRPNETSTACK_UDP_IDLE_MS: String(IDLE_MS) } });
  try {
    const guestPort = 40000;
    const p = r.guest.spawn([PYTHON, SCRIPT, "client", "udphold", HOST4, String(r.servers.ports.udp), String(guestPort), "one"], { stdin: "pipe" });
    const out = new LineReader(p.stdout);
    const t0 = Date.now();
    await out.waitFor('"got": "one"', 5000);
    const newLine = await r.stack.stdout.waitFor(/Routing conn new/, 5000);
    const firstHostPort = /\/[\d.]+:(\d+)-/.exec(newLine)![1]!;
    const peer = (await r.servers.waitEvent("first datagram", (e) => e.event === "udp")).peer!;
    await Bun.sleep(4000);
    await r.servers.udpPush(peer, "push");
    const tPush = Date.now();
    await out.waitFor('"got": "push"', 5000);
    // Shortly before the end, the flow is still there.
    await Bun.sleep(IDLE_MS - 3000);
    const aliveBefore = (await flowTable(r)).some((f) => f.proto === "udp" && endpointIs(f.guest, GUEST4, guestPort));
    const doneLine = await r.stack.stdout.waitFor(/Routing conn done/, 15_000);
    const tDone = Date.now();
    p.stdin!.end();
    await p.exited;
    // The next datagram of the same 4-tuple makes a new flow, with a new host port.
    const again = await guestClient<UdpResult>(r.guest, "udp", [HOST4, r.servers.ports.udp, "two", "5", guestPort]);
    if (!again.match) throw new Error(`no echo after the idle end: ${JSON.stringify(again)}`);
    const newLine2 = await r.stack.stdout.waitFor(/Routing conn new/, 5000);
    const secondHostPort = /\/[\d.]+:(\d+)-/.exec(newLine2)![1]!;
    return { guestPort, firstHostPort, secondHostPort, doneLine, sinceFirst: tDone - t0, sincePush: tDone - tPush, aliveBefore };
  } finally {
    await destroyCoreRig(r);
  }
}

describe("UDP idle timeout (shortened to 10 s)", () => {
  test(
    "a flow ends the idle timeout after the last datagram in either direction; the next datagram makes a new flow",
    async () => {
      const r = await idle;
      console.log(`idle flow: done ${r.sinceFirst} ms after the guest's datagram, ${r.sincePush} ms after the host's; ${r.doneLine}`);
      expect(r.aliveBefore).toBe(true);
      // The host's datagram toward the guest (at +4 s) pushed the end forward.
      expect(r.sincePush).toBeGreaterThanOrEqual(IDLE_MS - 500);
      expect(r.sincePush).toBeLessThan(IDLE_MS + 3000);
      expect(r.sinceFirst).toBeGreaterThanOrEqual(IDLE_MS + 3000);
      expect(r.doneLine).toMatch(
        new RegExp(`^\\[-\\] udp://${re(GUEST4)}:${r.guestPort}/${re(HOST4)}:${r.firstHostPort}-${re(HOST4)}:\\d+ Routing conn done: l=`),
      );
      expect(r.secondHostPort).not.toBe(r.firstHostPort);
    },
    IDLE_MS + 60_000,
  );
});
