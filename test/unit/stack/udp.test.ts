// UDP flows through the engine pair: message boundaries, datagrams larger
// than the MTU (IP fragmentation and reassembly), idle expiry.
import { describe, expect, test } from "bun:test";
import { EnginePair, UdpApp, A_V4, B_V4, A_V6, B_V6 } from "../../support/engine-pair.ts";
import { UDP_MAX_PAYLOAD_V4, UDP_MAX_PAYLOAD_V6, type UdpFlow } from "../../../src/stack/udp.ts";
import { Mulberry32, parseFaultSpec } from "../../../src/link/fault.ts";
import { RxMeta } from "../../../src/stack/device.ts";
import { PROTO_UDP, ipv4, udp } from "../../fuzz/packets.ts";

function bytes(n: number, seed: number): Uint8Array {
  const r = new Mulberry32(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r.u32() & 0xff;
  return b;
}

/** A opens a flow to B's port 53; returns A's flow and handler. */
function open(pair: EnginePair, family: 4 | 6 = 4): { flow: UdpFlow; app: UdpApp } {
  const app = new UdpApp(pair);
  const flow =
    family === 4
      ? pair.a.stack.udp.openV4(A_V4, 5353, B_V4, 53, app, pair.now)
      : pair.a.stack.udp.openV6(A_V6, 5353, B_V6, 53, app, pair.now);
  app.flow = flow;
  return { flow, app };
}

describe("UDP through the engine pair", () => {
  test("message boundaries are kept both ways", () => {
    const pair = new EnginePair();
    const { flow, app } = open(pair);
    const sizes = [0, 1, 7, 512, 1472, 1473, 3000, 9000];
    for (const [i, n] of sizes.entries()) expect(flow.send(bytes(n, i), 0, n, pair.now)).toBe(true);
    pair.advance(10);
    expect(pair.b.udpApps.length).toBe(1);
    const peer = pair.b.udpApps[0]!;
    expect(peer.datagrams.map((d) => d.length)).toEqual(sizes);
    for (const [i, n] of sizes.entries()) expect(peer.datagrams[i]).toEqual(bytes(n, i));
    expect(peer.flow.destPort).toBe(53);
    expect(peer.flow.guestPort).toBe(5353);
    // And back, on the same flow.
    peer.flow.send(bytes(100, 99), 0, 100, pair.now);
    peer.flow.send(bytes(2000, 98), 0, 2000, pair.now);
    pair.advance(10);
    expect(app.datagrams).toEqual([bytes(100, 99), bytes(2000, 98)]);
    // One flow each side, however many datagrams.
    expect(pair.a.stack.udp.flowCount).toBe(1);
    expect(pair.b.stack.udp.flowCount).toBe(1);
  });

  test("65507-byte datagrams are fragmented at MTU 1500 and reassembled whole (IPv4)", () => {
    const pair = new EnginePair({ trace: true });
    const { flow } = open(pair);
    const big = bytes(UDP_MAX_PAYLOAD_V4, 1);
    expect(flow.send(big, 0, big.length, pair.now)).toBe(true);
    pair.advance(10);
    const frags = pair.trace.filter((t) => t.dir === "A>B");
    expect(frags.length).toBe(Math.ceil((UDP_MAX_PAYLOAD_V4 + 8) / 1480));
    expect(frags.every((t) => t.p!.fragment && t.p!.ipLen <= 1500)).toBe(true);
    expect(pair.b.udpApps[0]!.datagrams).toEqual([big]);
    // One byte more does not fit in an IPv4 datagram.
    expect(flow.send(bytes(UDP_MAX_PAYLOAD_V4 + 1, 2), 0, UDP_MAX_PAYLOAD_V4 + 1, pair.now)).toBe(false);
    expect(pair.a.stats.dropCount("udp-too-big")).toBe(1);
  });

  test("65527-byte datagrams over IPv6, both ways", () => {
    const pair = new EnginePair();
    const { flow, app } = open(pair, 6);
    const big = bytes(UDP_MAX_PAYLOAD_V6, 3);
    expect(flow.send(big, 0, big.length, pair.now)).toBe(true);
    pair.advance(10);
    const peer = pair.b.udpApps[0]!;
    expect(peer.flow.family).toBe(6);
    expect(peer.datagrams).toEqual([big]);
    peer.flow.send(big, 0, big.length, pair.now);
    pair.advance(10);
    expect(app.datagrams).toEqual([big]);
  });

  test("a lost fragment loses the datagram, and nothing else", () => {
    const pair = new EnginePair();
    const { flow } = open(pair);
    let n = 0;
    pair.dropFrom("A", () => ++n === 5); // the fifth fragment of the first datagram
    flow.send(bytes(20_000, 1), 0, 20_000, pair.now);
    flow.send(bytes(20_000, 2), 0, 20_000, pair.now);
    pair.advance(100);
    expect(pair.b.udpApps[0]!.datagrams).toEqual([bytes(20_000, 2)]);
    // The incomplete datagram is dropped when reassembly times out.
    pair.advance(30_000);
    expect(pair.b.stats.dropCount("frag-timeout")).toBe(1);
  });

  test("datagrams through loss and reordering arrive whole or not at all", () => {
    const f = parseFaultSpec("loss=0.05,reorder=0.1,seed=5");
    const pair = new EnginePair({ faultsAB: f });
    const { flow } = open(pair);
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 300; i++) {
      const d = bytes(1 + ((i * 977) % 6000), i);
      sent.push(d);
      flow.send(d, 0, d.length, pair.now);
      pair.advance(1);
    }
    pair.advance(100);
    const got = pair.b.udpApps[0]!.datagrams;
    expect(got.length).toBeGreaterThan(200);
    expect(got.length).toBeLessThan(300);
    const want = new Map(sent.map((d) => [d.length * 1000 + d[0]!, d]));
    for (const d of got) expect(want.get(d.length * 1000 + d[0]!)).toEqual(d);
  });

  test("idle expiry with setIdle, postponed by traffic either way", () => {
    const pair = new EnginePair();
    pair.b.udpIdleMs = 125_000;
    const { flow, app } = open(pair);
    flow.setIdle(5000, pair.now);
    const t0 = pair.now;
    flow.send(bytes(10, 1), 0, 10, pair.now);
    pair.advance(10);
    const peer = pair.b.udpApps[0]!;
    peer.flow.setIdle(8000, pair.now); // B's side: 8 s, counting from now
    const tb = pair.now;
    pair.advance(3000);
    flow.send(bytes(10, 2), 0, 10, pair.now); // activity at t0 + 3010: A's deadline moves
    const t1 = pair.now;
    pair.run(() => app.closed !== null, 20_000);
    expect(app.closed).toBe("idle");
    expect(app.closedAt).toBe(t1 + 5000);
    expect(app.closedAt - t0).toBe(8010);
    // B saw the second datagram at t1 + 1: its 8 s run from there.
    pair.run(() => peer.closed !== null, 20_000);
    expect(peer.closed).toBe("idle");
    expect(peer.closedAt).toBe(t1 + 1 + 8000);
    expect(tb).toBe(t0 + 10);
    expect(pair.a.stack.udp.flowCount).toBe(0);
    expect(pair.b.stack.udp.flowCount).toBe(0);
    // A closed flow sends nothing; a new datagram from A's side needs a new flow.
    expect(flow.send(bytes(1, 1), 0, 1, pair.now)).toBe(false);
  });

  test("a refused flow drops the datagram and asks again for the next one", () => {
    const pair = new EnginePair();
    pair.b.acceptUdp = false;
    const { flow } = open(pair);
    flow.send(bytes(10, 1), 0, 10, pair.now);
    pair.advance(10);
    expect(pair.b.stats.dropCount("udp-denied")).toBe(1);
    pair.b.acceptUdp = true;
    flow.send(bytes(10, 2), 0, 10, pair.now);
    pair.advance(10);
    expect(pair.b.udpApps[0]!.datagrams).toEqual([bytes(10, 2)]);
  });

  test("a UDP segmentation super-frame delivers at most 128 datagrams; one cut finer is dropped whole", () => {
    // A guest app's UDP_SEGMENT send makes at most 128 segments (Linux's
    // UDP_MAX_SEGMENTS), but a raw vnet header can say gso_size 1: one
    // 60 KB frame would be 60,000 host datagrams, each a sendto().
    const pair = new EnginePair({ offload: true });
    const addrs = { v: 4 as const, src: A_V4, dst: B_V4 };
    const meta = new RxMeta();
    const superFrame = (payloadLen: number, gsoSize: number): number => {
      const f = ipv4({ src: A_V4, dst: B_V4, proto: PROTO_UDP, id: 1 }, udp(addrs, 5353, 53, bytes(payloadLen, payloadLen), "ok"));
      meta.checksumTrusted = true;
      meta.gsoType = 5; // VIRTIO_NET_HDR_GSO_UDP_L4
      meta.gsoSize = gsoSize;
      const before = pair.b.udpApps.reduce((n, a) => n + a.datagrams.length, 0);
      pair.b.stack.input(f, 0, f.length, meta, pair.now);
      return pair.b.udpApps.reduce((n, a) => n + a.datagrams.length, 0) - before;
    };
    expect(superFrame(128 * 100, 100)).toBe(128);
    expect(pair.b.udpApps[0]!.datagrams[127]).toEqual(bytes(128 * 100, 128 * 100).subarray(12700));
    const t0 = performance.now();
    expect(superFrame(60_000, 1)).toBe(0);
    expect(superFrame(129 * 100, 100)).toBe(0);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(pair.b.stats.dropCount("udp-gso-too-many-segments")).toBe(2);
  });

  test("a corrupted datagram fails its checksum", () => {
    const pair = new EnginePair({ faultsAB: parseFaultSpec("corrupt=1,seed=3") });
    const { flow } = open(pair);
    for (let i = 0; i < 20; i++) flow.send(bytes(100, i), 0, 100, pair.now);
    pair.advance(10);
    expect(pair.b.udpApps.length).toBe(0);
    const drops = pair.b.stats.dropTable().reduce((n, [, c]) => n + c, 0);
    expect(drops).toBe(20);
  });
});
