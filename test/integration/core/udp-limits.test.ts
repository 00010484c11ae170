// Core: a guest cannot take the host's ephemeral ports with UDP. The host
// namespace's net.ipv4.ip_local_port_range holds 1000 ports; the guest then
// sends, as raw frames on its tap, UDP to 20000 destinations from one
// source port and from 20000 forged source ports (and addresses). The
// destinations sit behind a link that drops everything: no reply, no ICMP
// error, so no flow ends early. Afterwards:
//   - the stack holds at most -max-udp-ports (500) host UDP sockets;
//   - another process in the host namespace still binds and connects
//     ephemeral UDP and TCP ports;
//   - the udp-flows and udp-ports limit counters moved (/metrics);
//   - the stack is alive and a fresh UDP echo from the guest works.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { PYTHON, guestClient } from "../../support/host-servers.ts";
import { processAlive } from "../../support/rig.ts";
import { HOST4, createCoreRig, debugGet, destroyCoreRig, stackState, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(60_000);

const MAX_PORTS = 500;
const MAX_FLOWS = 2000;
const N = 20_000;
/** Routed into a sink in the host namespace: datagrams vanish there. */
const SINK_NET = "203.0.113.0/24";

// Ethernet + IPv4 + UDP frames straight onto the guest's tap (the guest
// kernel would refuse forged sources); UDP checksum 0 (none, RFC 768).
const FLOOD = `
import socket, struct, sys, time
mode, n = sys.argv[1], int(sys.argv[2])
STACK_MAC = bytes.fromhex("7071aa4b29aa")
SRC_MAC = bytes.fromhex("020000000064")
def csum(h):
    s = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF
def frame(src, sport, dst, dport):
    udp = struct.pack("!HHHH", sport, dport, 9, 0) + b"x"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), sport, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return STACK_MAC + SRC_MAC + b"\\x08\\x00" + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("tun0", 0))
guest = bytes([10, 0, 2, 100])
for i in range(n):
    if mode == "dests":
        f = frame(guest, 5000, bytes([203, 0, 113, 1 + i % 200]), 10000 + i // 200)
    else:
        f = frame(bytes([10, 0, 2, 100 + i % 4]), 20000 + i % 40000, bytes([203, 0, 113, 254]), 7)
    s.send(f)
    if i % 100 == 99:
        time.sleep(0.008)
print(n)
`;

// Another host process: an ephemeral UDP port (bind and connect) and a TCP connection.
const NEIGHBOUR = `
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 0))
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u2.connect((sys.argv[1], 9))
t = socket.socket()
t.settimeout(5)
t.connect((sys.argv[1], int(sys.argv[2])))
print(u.getsockname()[1], u2.getsockname()[1], t.getsockname()[1])
`;

let rig: CoreRig;

beforeAll(async () => {
  rig = await createCoreRig({ args: ["-enable-host", "-allow", `udp://${SINK_NET}`, "-quiet", "-max-udp-ports", String(MAX_PORTS), "-max-udp-flows", String(MAX_FLOWS)] });
  await rig.host.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40999"]);
  // A veth pair whose far end drops everything: frames go to a MAC that is
  // not its own (a permanent neighbour entry), so nothing answers, not even ICMP.
  await rig.host.run([
    "sh",
    "-c",
    "ip link add sink0 type veth peer name sink1 && ip link set sink0 up && ip link set sink1 up && " +
      `ip route add ${SINK_NET} via 198.18.0.2 dev sink0 onlink && ip neigh add 198.18.0.2 lladdr 02:00:00:00:00:01 dev sink0 nud permanent`,
  ]);
});

afterAll(async () => {
  if (rig) await destroyCoreRig(rig);
});

/** slirpnetstack_limit_hits_total for `name` (0 when absent). */
async function limitHits(name: string): Promise<number> {
  const r = await debugGet(rig, "/metrics");
  if (r.code !== 0) throw new Error(`metrics: curl exited ${r.code}: ${r.stderr}${stackState(rig)}`);
  const m = new RegExp(`^slirpnetstack_limit_hits_total\\{limit="${name}"\\} (\\d+)$`, "m").exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

/** The stack's UDP sockets, as the host namespace lists them (ss). */
async function stackUdpSockets(): Promise<number> {
  const out = await rig.host.run(["ss", "-Hanup"]);
  return out.split("\n").filter((l) => l.includes(`pid=${rig.stack.pid},`)).length;
}

async function flood(mode: "dests" | "sources"): Promise<void> {
  const r = await rig.guest.exec([PYTHON, "-c", FLOOD, mode, String(N)], { timeoutMs: 30_000 });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
}

describe("UDP floods in a host namespace with 1000 ephemeral ports", () => {
  test(`${N} destinations from one guest port, then ${N} forged sources: the host keeps its ports, the caps bite, the stack goes on`, async () => {
    await flood("dests");
    await flood("sources");
    // Let the stack drain its tap queue: the counters stop moving.
    let last = -1;
    for (let i = 0; i < 100; i++) {
      const now = (await limitHits("udp-flows")) + (await limitHits("udp-ports"));
      if (now === last) break;
      last = now;
      await Bun.sleep(200);
    }
    expect(processAlive(rig.stack.pid)).toBe(true);
    const held = await stackUdpSockets();
    expect({ held, ok: held <= MAX_PORTS }).toMatchObject({ ok: true });
    expect(await limitHits("udp-flows")).toBeGreaterThan(0);
    expect(await limitHits("udp-ports")).toBeGreaterThan(0);

    const n = await rig.host.exec([PYTHON, "-c", NEIGHBOUR, HOST4, String(rig.servers.ports.echo)]);
    expect({ code: n.code, stderr: n.stderr }).toEqual({ code: 0, stderr: "" });
    for (const port of n.stdout.trim().split(" ").map(Number)) expect(port >= 40000 && port <= 40999).toBe(true);

    const echo = await guestClient<{ match: boolean; error: string | null }>(rig.guest, "udp", [HOST4, rig.servers.ports.udp, "alive", "5"]);
    expect({ match: echo.match, error: echo.error }).toEqual({ match: true, error: null });
  });
});
