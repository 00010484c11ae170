// Core: UDP segmentation offload from the guest. With the tap's offloads
// negotiated, an app that sends with UDP_SEGMENT (QUIC stacks do) hands
// the guest kernel one large buffer that reaches us as a single GSO
// super-frame; each gso_size piece must still reach the host as its own
// datagram, as the kernel would have split them.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { HOST4, HOST6, createCoreRig, destroyCoreRig, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(60_000);

let rig: CoreRig;

beforeAll(async () => {
  rig = await createCoreRig({ args: ["-enable-host"] });
});

afterAll(async () => {
  if (rig) await destroyCoreRig(rig);
});

/** Sends five 1000-byte segments in one UDP_SEGMENT write; returns the echoes. */
const CLIENT = `
import socket, sys, json
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT
s.sendto(b"".join(b"seg%03d" % i + b"x" * 994 for i in range(5)), (sys.argv[1], int(sys.argv[2])))
s.settimeout(3)
got = []
try:
    while len(got) < 6:
        d, _ = s.recvfrom(70000)
        got.append([len(d), d[:6].decode()])
except socket.timeout:
    pass
print(json.dumps(got))
`;

describe("UDP segmentation offload from the guest", () => {
  for (const [name, ip] of [
    ["IPv4", HOST4],
    ["IPv6", HOST6],
  ] as const) {
    test(`${name}: one UDP_SEGMENT write of five segments arrives as five datagrams`, async () => {
      const out = await rig.guest.run(["python3", "-c", CLIENT, ip, String(rig.servers.ports.udp)]);
      expect(JSON.parse(out)).toEqual([0, 1, 2, 3, 4].map((i) => [1000, `seg00${i}`]));
    });
  }
});
