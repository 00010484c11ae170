// Core: a guest cannot take the host's ephemeral ports with UDP. The host
// namespace's net.ipv4.ip_local_port_range holds 1000 ports; the guest then
// sends, as raw frames on its tap, UDP to 20000 destinations from one
// source port and from 20000 forged source ports (and addresses). The
// destinations sit behind a link that drops everything: no reply, no ICMP
// error, so no flow ends early. The flood then goes on, both ways in turn,
// until the checks made during it are done. During it and afterwards:
//   - another process in the host namespace still binds and connects
//     ephemeral UDP and TCP ports;
//   - the hostile-case checks (test/support/hostile-checks.ts): alive,
//     memory, the udp-flows and udp-ports limit counters moved, a download
//     and a UDP echo from the guest work;
// and afterwards the stack holds at most -max-udp-ports (500) host UDP sockets.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { PYTHON } from "../../support/host-servers.ts";
import { PY_STOP, backgroundAttack, beginCase, counters, hostileChecks, limitHits, whileAttacking, type HostileTarget } from "../../support/hostile-checks.ts";
import { HOST4, createCoreRig, destroyCoreRig, hostileTarget, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(90_000);

const MAX_PORTS = 500;
const MAX_FLOWS = 2000;
const N = 20_000;
/** Routed into a sink in the host namespace: datagrams vanish there. */
const SINK_NET = "203.0.113.0/24";

// Ethernet + IPv4 + UDP frames straight onto the guest's tap (the guest
// kernel would refuse forged sources); UDP checksum 0 (none, RFC 768).
// They carry the tap's own MAC as source, as a guest's raw frames do: the
// stack learns the guest's MAC from its frames, and a made-up one would
// send the stack's answers, the probes' among them, to a MAC the guest's
// tap drops as not its own.
// N to distinct destinations, then N from forged sources, then both in
// turn until stdin closes; prints {"sent": frames}.
const FLOOD = `${PY_STOP}
import json, socket, struct, sys, time
n = int(sys.argv[1])
STACK_MAC = bytes.fromhex("7071aa4b29aa")
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
SRC_MAC = s.getsockname()[4]
guest = bytes([10, 0, 2, 100])
i = 0
while i < 2 * n or not stop_requested():
    if i == 200:
        print("started", flush=True)
    if (i // n) % 2 == 0:
        f = frame(guest, 5000, bytes([203, 0, 113, 1 + i % 200]), 10000 + i // 200)
    else:
        f = frame(bytes([10, 0, 2, 100 + i % 4]), 20000 + i % 40000, bytes([203, 0, 113, 254]), 7)
    s.send(f)
    if i % 100 == 99:
        time.sleep(0.008)
    i += 1
print(json.dumps({"sent": i}))
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
let t: HostileTarget;

beforeAll(async () => {
  rig = await createCoreRig({ args: ["-enable-host", "-allow", `udp://${SINK_NET}`, "-quiet", "-max-udp-ports", String(MAX_PORTS), "-max-udp-flows", String(MAX_FLOWS)] });
  t = hostileTarget(rig);
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

/** The stack's UDP sockets, as the host namespace lists them (ss). */
async function stackUdpSockets(): Promise<number> {
  const out = await rig.host.run(["ss", "-Hanup"]);
  return out.split("\n").filter((l) => l.includes(`pid=${rig.stack.pid},`)).length;
}

/** Another host process binds and connects ephemeral UDP and TCP ports, from the namespace's 1000. */
async function hostKeepsItsPorts(): Promise<void> {
  const n = await rig.host.exec([PYTHON, "-c", NEIGHBOUR, HOST4, String(rig.servers.ports.echo)]);
  expect({ code: n.code, stderr: n.stderr }).toEqual({ code: 0, stderr: "" });
  for (const port of n.stdout.trim().split(" ").map(Number)) expect(port >= 40000 && port <= 40999).toBe(true);
}

const CAPS = [limitHits("udp-flows"), limitHits("udp-ports")];

describe("UDP floods in a host namespace with 1000 ephemeral ports", () => {
  test(`${N} destinations from one guest port, then ${N} forged sources: the host keeps its ports, the caps bite, the stack goes on`, async () => {
    const before = await beginCase(t);
    const flood = backgroundAttack<{ sent: number }>(rig.guest, [PYTHON, "-c", FLOOD, String(N)]);
    const r = await whileAttacking(flood, () => hostKeepsItsPorts());
    expect(r.sent).toBeGreaterThanOrEqual(2 * N);
    // Let the stack drain its tap queue: the counters stop moving.
    let last = -1;
    for (let i = 0; i < 100; i++) {
      const c = await counters(t);
      const now = CAPS.reduce((a, s) => a + (c.get(s) ?? 0), 0);
      if (now === last) break;
      last = now;
      await Bun.sleep(200);
    }
    const held = await stackUdpSockets();
    expect({ held, ok: held <= MAX_PORTS }).toMatchObject({ ok: true });
    await hostKeepsItsPorts();
    await hostileChecks(t, { phase: "after", since: before, moved: CAPS });
  });

  test("while the flood runs, the guest is served: a download and a UDP echo", async () => {
    const before = await beginCase(t);
    const flood = backgroundAttack<{ sent: number }>(rig.guest, [PYTHON, "-c", FLOOD, String(N)]);
    await whileAttacking(flood, () => hostileChecks(t, { phase: "during", since: before, moved: CAPS, downloadTimeoutS: 30 }));
  });
});
