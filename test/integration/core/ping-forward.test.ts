// Pings that tell the truth (-icmp=forward) and host-side errors reaching
// the guest, with the real iputils ping in a real guest namespace:
//   - a host address (-enable-host) and a routed world address answer,
//     over IPv4 and IPv6; with the world's link down the replies stop
//     (the stack no longer answers for anyone);
//   - an address nobody has gets no reply; a denied one gets "prohibited";
//   - where the host namespace's net.ipv4.ping_group_range admits nobody,
//     the stack answers itself and says so once;
//   - a connected guest UDP socket sending to a closed host port gets
//     ECONNREFUSED on its next recv, as on a real network.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { PYTHON } from "../../support/host-servers.ts";
import { WORLD4, WORLD6 } from "../../support/world-ns.ts";
import { CLOSED_PORT, DENIED4, HOST4, HOST6, createCoreRig, destroyCoreRig, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(60_000);

async function ping(rig: CoreRig, args: string[]): Promise<{ received: number; out: string }> {
  const r = await rig.guest.exec(["ping", "-n", "-c2", "-i0.2", "-W3", ...args], { timeoutMs: 20_000 });
  const out = r.stdout + r.stderr;
  const m = /(\d+) received/.exec(out);
  if (m === null) throw new Error(`ping ${args.join(" ")}: ${out}`);
  return { received: Number(m[1]), out };
}

async function sh(rig: CoreRig, ns: "host" | "world", script: string): Promise<void> {
  const r = await (ns === "host" ? rig.host : rig.world!).exec(["sh", "-ec", script]);
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
}

const FALLBACK_LINE = "ICMP echo sockets are not permitted here";

describe("-icmp=forward", () => {
  let rig: CoreRig;
  beforeAll(async () => {
    rig = await createCoreRig({ world: true, args: ["-icmp", "forward", "-enable-host", "-enable-routing"] });
    // Ping sockets for every group, as systemd configures hosts; the kernel's default admits nobody.
    await sh(rig, "host", "sysctl -qw net.ipv4.ping_group_range='0 2147483647'");
  });
  afterAll(async () => {
    if (rig) await destroyCoreRig(rig);
  });

  test("a host address and a routed one answer (IPv4 and IPv6); with the world's link down, replies stop", async () => {
    expect((await ping(rig, [HOST4])).received).toBe(2);
    expect((await ping(rig, ["-6", HOST6])).received).toBe(2);
    expect((await ping(rig, [WORLD4])).received).toBe(2);
    expect((await ping(rig, ["-6", WORLD6])).received).toBe(2);
    await sh(rig, "world", "ip link set w1 down");
    try {
      expect((await ping(rig, [WORLD4])).received).toBe(0);
      expect((await ping(rig, ["-6", WORLD6])).received).toBe(0);
    } finally {
      await sh(rig, "world", `ip link set w1 up && ip route replace default dev w1 && ip -6 route replace default dev w1`);
    }
    expect(rig.stack.stderr.text()).not.toContain(FALLBACK_LINE);
  });

  test("an address nobody has: no reply, the host's unreachable error instead; a denied one: prohibited", async () => {
    const gone = await ping(rig, ["198.51.100.99"]);
    expect(gone.received).toBe(0);
    expect(gone.out).toContain("Destination Host Unreachable");
    const denied = await ping(rig, [DENIED4]);
    expect(denied.received).toBe(0);
    expect(denied.out).toMatch(/prohibited|filtered/i);
  });

  test("the stack's own addresses are answered by the stack", async () => {
    expect((await ping(rig, ["10.0.2.2"])).received).toBe(2);
    expect((await ping(rig, ["10.0.2.3"])).received).toBe(2);
    expect((await ping(rig, ["-6", "fd00::2"])).received).toBe(2);
  });
});

describe("-icmp=forward where ping sockets are not permitted", () => {
  test("the stack answers every ping itself, and says so once (IPv4 and IPv6)", async () => {
    const rig = await createCoreRig({ args: ["-icmp", "forward", "-enable-host"] });
    try {
      await sh(rig, "host", "sysctl -qw net.ipv4.ping_group_range='1 0'");
      expect((await ping(rig, [HOST4])).received).toBe(2);
      // Nobody has 203.0.113.77: only the stack can have answered.
      const local = await ping(rig, ["203.0.113.77"]);
      expect(local.received).toBe(2);
      expect((await ping(rig, ["-6", "2001:db8:9::9"])).received).toBe(2);
      await rig.stack.stderr.waitFor(FALLBACK_LINE, 5000);
      expect(rig.stack.stderr.lines.filter((l) => l.includes(FALLBACK_LINE)).length).toBe(1);
    } finally {
      await destroyCoreRig(rig);
    }
  });
});

describe("UDP to a closed host port", () => {
  test("a connected guest socket gets ECONNREFUSED on its next recv (IPv4 and IPv6)", async () => {
    const rig = await createCoreRig({ args: ["-enable-host"] });
    try {
      const script = `
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"hello")
try:
    s.recv(100)
    print("got data")
except ConnectionRefusedError:
    print("ECONNREFUSED")
except socket.timeout:
    print("timeout")
`;
      for (const ip of [HOST4, HOST6]) {
        const r = await rig.guest.exec([PYTHON, "-c", script, ip, String(CLOSED_PORT)], { timeoutMs: 15_000 });
        expect({ ip, out: r.stdout.trim() }).toEqual({ ip, out: "ECONNREFUSED" });
      }
    } finally {
      await destroyCoreRig(rig);
    }
  });
});
