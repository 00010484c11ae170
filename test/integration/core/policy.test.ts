// Core: the routing policy for guest-started flows (docs/compatibility.md,
// Routing policy) and its log lines (Stdout lines), seen from a real guest:
//   - a closed host port is refused at once (the SYN is answered only when
//     the host connect() has an outcome), with a "Routing conn error" line;
//   - a denied destination is refused at once too, and the host server
//     never sees a connection (its accept count stays put);
//   - -enable-host reaches the host's own addresses but not the world
//     behind its default route; -enable-routing the other way round;
//   - the static deny list holds whatever is enabled, -allow opens it, and
//     -deny beats -allow; entries without a network are TCP-only;
//   - a guest that resets while the host connect is still pending takes
//     the host socket with it;
//   - -quiet hides the per-flow lines.
import { afterAll, afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { PYTHON, guestClient, type HostServers } from "../../support/host-servers.ts";
import { WORLD4, WORLD6 } from "../../support/world-ns.ts";
import { CLOSED_PORT, DENIED4, DENIED6, GUEST4, GUEST6, HOST4, HOST6, LeakGuard, createCoreRig, destroyCoreRig, goHostPort, re, type CoreRig, type CoreRigOptions } from "./core-rig.ts";

setDefaultTimeout(60_000);

const HOSTILE_PY = join(import.meta.dir, "..", "..", "support", "hostile.py");

interface ConnectResult {
  ok: boolean;
  error: string | null;
  ms: number;
}

interface UdpResult {
  sent: number[];
  got: number[];
  match: boolean;
  error: string | null;
}

function totalAccepts(s: HostServers): number {
  return s.events.filter((e) => e.event === "accept").length;
}

async function refused(rig: CoreRig, ip: string, port: number): Promise<void> {
  const r = await guestClient<ConnectResult>(rig.guest, "connect", [ip, port]);
  expect({ ip, port, ok: r.ok, error: r.error }).toEqual({ ip, port, ok: false, error: "ECONNREFUSED" });
  // At once: an answer to the SYN, not a timeout or a retransmission.
  expect(r.ms).toBeLessThan(1000);
}

async function reaches(rig: CoreRig, servers: HostServers, ip: string): Promise<void> {
  const before = servers.acceptCount("echo");
  const r = await guestClient<{ ok: number }>(rig.guest, "connectmany", [ip, servers.ports.echo, 1]);
  expect({ ip, ok: r.ok }).toEqual({ ip, ok: 1 });
  expect(servers.acceptCount("echo") - before).toBe(1);
}

async function udpEchoes(rig: CoreRig, servers: HostServers, ip: string): Promise<void> {
  const r = await guestClient<UdpResult>(rig.guest, "udp", [ip, servers.ports.udp, "hello"]);
  // A new guest port each time: a new flow, live for 125 s.
  if (r.got.length > 0) guard!.udpOpen++;
  expect({ ip, got: r.got, match: r.match }).toEqual({ ip, got: [5], match: true });
}

async function udpDropped(rig: CoreRig, servers: HostServers, ip: string): Promise<void> {
  const before = servers.udpCount();
  const r = await guestClient<UdpResult>(rig.guest, "udp", [ip, servers.ports.udp, "hello", "1"]);
  expect({ ip, got: r.got, error: r.error }).toEqual({ ip, got: [], error: "TIMEOUT" });
  expect(servers.udpCount()).toBe(before);
}

/** Denied TCP and UDP: refused / dropped, the server sees nothing, nothing is logged. */
async function denied(rig: CoreRig, servers: HostServers, ip: string): Promise<void> {
  const accepts = totalAccepts(servers);
  const lines = rig.stack.stdout.lines.length;
  for (const port of [servers.ports.echo, servers.ports.watch]) await refused(rig, ip, port);
  await udpDropped(rig, servers, ip);
  expect(totalAccepts(servers)).toBe(accepts);
  expect(rig.stack.stdout.lines.slice(lines)).toEqual([]);
}

// One rig per describe block, made by its first test and kept for the
// next ones; every test ends with the leak check.
let current: { opts: CoreRigOptions; rig: CoreRig; guard: LeakGuard } | null = null;
let guard: LeakGuard | null = null;

/** The rig for `opts`, replacing the previous block's one. */
async function use(opts: CoreRigOptions): Promise<CoreRig> {
  if (current?.opts === opts) return current.rig;
  if (current !== null) await destroyCoreRig(current.rig);
  current = null;
  guard = null;
  const rig = await createCoreRig(opts);
  guard = await LeakGuard.take(rig);
  current = { opts, rig, guard };
  return rig;
}

afterEach(async () => {
  await guard?.check();
}, 30_000);

afterAll(async () => {
  if (current !== null) await destroyCoreRig(current.rig);
  current = null;
});

describe("-enable-host", () => {
  const opts: CoreRigOptions = { args: ["-enable-host"], world: true };

  test("a closed host port: ECONNREFUSED at once, and a Routing conn error line (IPv4, IPv6)", async () => {
    const rig = await use(opts);
    for (const [ip, guest] of [
      [HOST4, GUEST4],
      [HOST6, GUEST6],
    ] as const) {
      await refused(rig, ip, CLOSED_PORT);
      const dst = re(goHostPort(ip, CLOSED_PORT));
      const line = await rig.stack.stdout.waitFor(/Routing conn error/);
      expect(line).toMatch(new RegExp(`^\\[!\\] tcp://${re(goHostPort(guest, ""))}\\d+/${dst} Routing conn error: l=0/0 r=\\[dial tcp ${dst}: connect: connection refused\\]/0$`));
    }
  });

  test("the host's own addresses are reached, with Routing conn new / done lines", async () => {
    const rig = await use(opts);
    for (const [ip, guest] of [
      [HOST4, GUEST4],
      [HOST6, GUEST6],
    ] as const) {
      await reaches(rig, rig.servers, ip);
      const g = `${re(goHostPort(guest, ""))}\\d+`;
      const h = `${re(goHostPort(ip, ""))}\\d+`;
      const d = re(goHostPort(ip, rig.servers.ports.echo));
      await rig.stack.stdout.waitFor(new RegExp(`^\\[\\+\\] tcp://${g}/${h}-${d} Routing conn new$`));
      await rig.stack.stdout.waitFor(new RegExp(`^\\[-\\] tcp://${g}/${h}-${d} Routing conn done: l=\\[EOF\\]/0 r=EOF/0$`));
      await udpEchoes(rig, rig.servers, ip);
      const u = re(goHostPort(ip, rig.servers.ports.udp));
      await rig.stack.stdout.waitFor(new RegExp(`^\\[\\+\\] udp://${g}/${h}-${u} Routing conn new$`));
    }
  });

  test("the world behind the host's default route is not reached", async () => {
    const rig = await use(opts);
    await denied(rig, rig.worldServers!, WORLD4);
    await denied(rig, rig.worldServers!, WORLD6);
  });

  test("the static deny list holds: 10.0.2.50 and 64:ff9b::1 are host addresses, and still denied", async () => {
    const rig = await use(opts);
    await denied(rig, rig.servers, DENIED4);
    await denied(rig, rig.servers, DENIED6);
  });
});

describe("no -enable-host, no -enable-routing", () => {
  const opts: CoreRigOptions = { args: [] };

  test("everything is denied: ECONNREFUSED at once, no connection at the server, UDP dropped", async () => {
    const rig = await use(opts);
    await denied(rig, rig.servers, HOST4);
    await denied(rig, rig.servers, HOST6);
  });
});

describe("-enable-routing without -enable-host", () => {
  const opts: CoreRigOptions = { args: ["-enable-routing"], world: true };

  test("the host's local addresses are not reached", async () => {
    const rig = await use(opts);
    await denied(rig, rig.servers, HOST4);
    await denied(rig, rig.servers, HOST6);
  });

  test("the world is reached, with the host's outgoing address in the log line", async () => {
    const rig = await use(opts);
    for (const [ip, guest, src] of [
      [WORLD4, GUEST4, "203.0.113.1"],
      [WORLD6, GUEST6, "2001:db8:1::1"],
    ] as const) {
      await reaches(rig, rig.worldServers!, ip);
      await udpEchoes(rig, rig.worldServers!, ip);
      const g = `${re(goHostPort(guest, ""))}\\d+`;
      const h = `${re(goHostPort(src, ""))}\\d+`;
      await rig.stack.stdout.waitFor(new RegExp(`^\\[-\\] tcp://${g}/${h}-${re(goHostPort(ip, rig.worldServers!.ports.echo))} Routing conn done: l=\\[EOF\\]/0 r=EOF/0$`));
    }
  });

  test("the static deny list still holds", async () => {
    const rig = await use(opts);
    await denied(rig, rig.servers, DENIED4);
    await denied(rig, rig.servers, DENIED6);
  });

  test("a guest that resets while the host connect is pending: the connect is abandoned, nothing is logged for it", async () => {
    const rig = await use(opts);
    // On the world's link but nobody's: the host's connect waits for ARP
    // (about 3 s) and would then fail with "no route to host".
    const nobody = "198.51.100.77";
    const sport = 40777;
    const lines = rig.stack.stdout.lines.length;
    const fds = await rig.stack.fdCount();
    const run = rig.guest.exec([PYTHON, HOSTILE_PY, rig.guest.ifname, "synrst", nobody, "80", String(sport), "1"], { timeoutMs: 15_000 });
    // The SYN made the stack dial: one more fd while the guest waits.
    let dialing = false;
    for (let i = 0; i < 40 && !dialing; i++) {
      dialing = (await rig.stack.fdCount()) > fds;
      if (!dialing) await Bun.sleep(20);
    }
    expect(dialing).toBe(true);
    expect((await run).code).toBe(0);
    // Past the moment the host connect would have failed: no error line
    // for a guest that is gone, and the fd is closed (the leak check).
    await Bun.sleep(4000);
    expect(rig.stack.stdout.lines.slice(lines).filter((l) => l.includes(`:${sport}/`))).toEqual([]);
  });
});

describe("-deny", () => {
  // Ports are known only once the servers run, so the flags are a function of them.
  const opts: CoreRigOptions = {
    args: (s) => ["-enable-host", "-deny", `tcp://${HOST4}:${s.ports.echo}`, "-deny", `[${HOST6}]`],
  };

  test("a port-specific entry denies that port only (the server sees no connection)", async () => {
    const rig = await use(opts);
    const accepts = totalAccepts(rig.servers);
    await refused(rig, HOST4, rig.servers.ports.echo);
    expect(totalAccepts(rig.servers)).toBe(accepts);
    const from = rig.servers.events.length;
    const w = await guestClient<ConnectResult>(rig.guest, "connect", [HOST4, rig.servers.ports.watch]);
    expect(w.ok).toBe(true);
    await rig.servers.waitEvent("watch accept", (e) => e.event === "accept" && e.svc === "watch", 10_000, from);
  });

  test("an address entry denies every TCP port of it; without a network it does not touch UDP", async () => {
    const rig = await use(opts);
    const accepts = totalAccepts(rig.servers);
    for (const port of [rig.servers.ports.echo, rig.servers.ports.watch]) await refused(rig, HOST6, port);
    expect(totalAccepts(rig.servers)).toBe(accepts);
    await udpEchoes(rig, rig.servers, HOST6);
  });
});

describe("-allow", () => {
  const opts: CoreRigOptions = {
    args: (s) => ["-allow", `${DENIED4},udp://${DENIED4}`, "-allow", `[${DENIED6}]`, "-deny", `tcp://${DENIED4}:${s.ports.watch}`],
  };

  test("opens statically denied addresses (IPv4 TCP and UDP, IPv6 TCP)", async () => {
    const rig = await use(opts);
    await reaches(rig, rig.servers, DENIED4);
    await reaches(rig, rig.servers, DENIED6);
    await udpEchoes(rig, rig.servers, DENIED4);
  });

  test("a TCP-only entry does not allow UDP; -deny beats -allow; other addresses stay denied", async () => {
    const rig = await use(opts);
    await udpDropped(rig, rig.servers, DENIED6);
    const accepts = totalAccepts(rig.servers);
    await refused(rig, DENIED4, rig.servers.ports.watch);
    expect(totalAccepts(rig.servers)).toBe(accepts);
    await denied(rig, rig.servers, HOST4);
  });
});

describe("-quiet", () => {
  const opts: CoreRigOptions = { args: ["-enable-host", "-quiet"] };

  test("hides Routing conn new, done and error lines", async () => {
    const rig = await use(opts);
    await reaches(rig, rig.servers, HOST4);
    await reaches(rig, rig.servers, HOST6);
    await udpEchoes(rig, rig.servers, HOST4);
    await refused(rig, HOST4, CLOSED_PORT);
    await guard!.check();
    await Bun.sleep(200);
    expect(rig.stack.stdout.lines).toEqual([]);
  });
});
