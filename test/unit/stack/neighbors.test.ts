// The neighbour table under a hostile guest, on an Ethernet stack:
// - sources that are not one host (0.0.0.0/8, multicast, 240.0.0.0/4,
//   255.255.255.255, the subnet's broadcast; IPv6 ff00::/8 and ::) get no
//   echo reply, no flow, no RST and no neighbour entry (RFC 1122 §3.2.2,
//   §4.2.3.10), where each used to cost an entry and a broadcast ARP;
// - the table, its unresolved entries, the frames waiting and the
//   solicitations sent stay within their caps whatever is sent to how many
//   addresses (RFC 1122 §2.3.2.1: one solicitation a second per address).
// Frames are built by hand (test/support/frames.ts), independent of src/wire.
import { describe, expect, test } from "bun:test";
import { Stack, type StackEvents } from "../../../src/stack/stack.ts";
import { RxMeta, type DeviceCaps, type FrameSink, type TxMeta } from "../../../src/stack/device.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { DEFAULT_TCP_CONFIG, type TcpConnection } from "../../../src/stack/tcp/connection.ts";
import type { UdpFlow } from "../../../src/stack/udp.ts";
import { FlowSecret } from "../../../src/stack/secret.ts";
import { MAX_QUEUED, MAX_QUEUED_PER_ADDR, MAX_UNRESOLVED, SOLICIT_RATE } from "../../../src/stack/neighbors.ts";
import {
  BROADCAST_MAC,
  ETH_ARP,
  ETH_IPV4,
  ETH_IPV6,
  arpBody,
  ethernet,
  icmpEcho,
  inetChecksum,
  ipv4,
  ipv4Packet,
  mac,
} from "../../support/frames.ts";
import { keyFromSeed } from "../../support/engine-pair.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../../src/wire/guest-net.ts";

const STACK_MAC = mac("70:71:aa:4b:29:aa");
const GUEST_MAC = mac("02:00:00:00:00:64");
const GATEWAY_V6 = Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);

class Rig implements FrameSink, StackEvents {
  now = 10_000;
  readonly stats = new Stats();
  readonly stack: Stack;
  readonly out: Uint8Array[] = [];
  tcpRequests = 0;
  udpFlows = 0;
  private readonly meta = new RxMeta();

  constructor(maxNeighbors?: number) {
    const caps: DeviceCaps = { medium: "ethernet", mtu: 1500, txChecksumOffload: false, txTcpSegmentation: false };
    this.stack = new Stack(caps, this, this, this.stats, {
      mac: STACK_MAC,
      netV4: DEFAULT_GUEST_NET_V4,
      gatewayV6: GATEWAY_V6,
      tcp: DEFAULT_TCP_CONFIG,
      secret: new FlowSecret(keyFromSeed(5)),
      ...(maxNeighbors !== undefined ? { maxNeighbors } : {}),
    });
  }

  transmit(buf: Uint8Array, off: number, len: number, _meta: TxMeta | null): void {
    this.out.push(buf.slice(off, off + len));
  }
  tcpConnectRequest(_conn: TcpConnection): void {
    this.tcpRequests++;
  }
  udpNewFlow(_flow: UdpFlow): boolean {
    this.udpFlows++;
    return false;
  }

  inject(frame: Uint8Array): void {
    this.stack.input(frame, 0, frame.length, this.meta, this.now);
    this.stack.poll(this.now);
  }

  /** Advances the virtual clock, polling every `step` ms. */
  advance(ms: number, step = 10): void {
    for (let t = 0; t < ms; t += step) {
      this.now += step;
      this.stack.poll(this.now);
    }
  }

  get neighbors() {
    return this.stack.egress.neighbors;
  }

  /** Broadcast ARP requests and Neighbor Solicitations sent. */
  solicitations(): number {
    return this.out.filter((f) => (type(f) === ETH_ARP && f[21] === 1) || (type(f) === ETH_IPV6 && f[14 + 40] === 135)).length;
  }
}

const type = (f: Uint8Array): number => (f[12]! << 8) | f[13]!;

function v4Frame(src: string, dst: string, protocol: number, payload: Uint8Array): Uint8Array {
  return ethernet(STACK_MAC, GUEST_MAC, ETH_IPV4, ipv4Packet({ src: ipv4(src), dst: ipv4(dst), protocol, id: 1, payload }));
}

const ping4 = (src: string, dst: string): Uint8Array => v4Frame(src, dst, 1, icmpEcho(8, 7, 1, new Uint8Array(16)));

function l4WithPseudo(src: Uint8Array, dst: Uint8Array, protocol: number, body: Uint8Array, csumAt: number): Uint8Array {
  const ph = new Uint8Array(src.length * 2 + 12 + body.length);
  ph.set(src, 0);
  ph.set(dst, src.length);
  const v = new DataView(ph.buffer);
  if (src.length === 4) {
    ph[9] = protocol;
    v.setUint16(10, body.length);
  } else {
    v.setUint32(32, body.length);
    ph[39] = protocol;
  }
  ph.set(body, src.length * 2 + (src.length === 4 ? 4 : 8));
  const c = inetChecksum(ph.subarray(0, src.length * 2 + (src.length === 4 ? 4 : 8) + body.length));
  const out = body.slice();
  new DataView(out.buffer).setUint16(csumAt, c);
  return out;
}

function udp4(src: string, dst: string): Uint8Array {
  const body = new Uint8Array(12);
  const v = new DataView(body.buffer);
  v.setUint16(0, 5353);
  v.setUint16(2, 53);
  v.setUint16(4, 12);
  return v4Frame(src, dst, 17, l4WithPseudo(ipv4(src), ipv4(dst), 17, body, 6));
}

function tcpSyn4(src: string, dst: string): Uint8Array {
  const body = new Uint8Array(20);
  const v = new DataView(body.buffer);
  v.setUint16(0, 40000);
  v.setUint16(2, 80);
  v.setUint32(4, 1000);
  body[12] = 5 << 4;
  body[13] = 0x02;
  v.setUint16(14, 65535);
  return v4Frame(src, dst, 6, l4WithPseudo(ipv4(src), ipv4(dst), 6, body, 16));
}

function v6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  h.forEach((g, i) => new DataView(out.buffer).setUint16(2 * i, parseInt(g, 16)));
  t.forEach((g, i) => new DataView(out.buffer).setUint16(16 - 2 * (t.length - i), parseInt(g, 16)));
  return out;
}

/** An ICMPv6 message (type, code, body after the 4-byte header) in an Ethernet frame. */
function icmp6(src: Uint8Array, dst: Uint8Array, msg: Uint8Array, hopLimit = 64): Uint8Array {
  const l4 = l4WithPseudo(src, dst, 58, msg, 2);
  const ip = new Uint8Array(40 + l4.length);
  ip[0] = 0x60;
  new DataView(ip.buffer).setUint16(4, l4.length);
  ip[6] = 58;
  ip[7] = hopLimit;
  ip.set(src, 8);
  ip.set(dst, 24);
  ip.set(l4, 40);
  return ethernet(STACK_MAC, GUEST_MAC, ETH_IPV6, ip);
}

const echo6 = (src: Uint8Array, dst: Uint8Array): Uint8Array => icmp6(src, dst, Uint8Array.of(128, 0, 0, 0, 0, 7, 0, 1, 1, 2, 3, 4));

describe("sources that are not one host", () => {
  const V4 = ["0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "10.0.2.255"];

  test("IPv4 echo requests from them get no reply, no ARP request and no neighbour entry", () => {
    const r = new Rig();
    for (const src of V4) {
      r.inject(ping4(src, "10.0.2.2"));
      r.inject(ping4(src, "8.8.8.8"));
    }
    r.advance(5000);
    expect(r.out.length).toBe(0);
    expect(r.neighbors.size).toBe(0);
    expect(r.stats.dropCount("non-unicast-source")).toBe(2 * V4.length);
  });

  test("IPv6 echo requests from ff00::/8 and :: get no reply, no solicitation and no neighbour entry", () => {
    const r = new Rig();
    for (const src of ["ff02::1", "ff0e::1:3", "::"]) {
      r.inject(echo6(v6(src), GATEWAY_V6));
      r.inject(echo6(v6(src), v6("2001:db8::1")));
    }
    r.advance(5000);
    expect(r.out.length).toBe(0);
    expect(r.neighbors.size).toBe(0);
    expect(r.stats.dropCount("non-unicast-source")).toBe(6);
  });

  test("UDP from them opens no flow; TCP SYNs open nothing and draw no RST", () => {
    const r = new Rig();
    for (const src of V4) {
      r.inject(udp4(src, "192.0.2.1"));
      r.inject(tcpSyn4(src, "192.0.2.1"));
    }
    r.advance(5000);
    expect(r.udpFlows).toBe(0);
    expect(r.tcpRequests).toBe(0);
    expect(r.out.length).toBe(0);
    expect(r.neighbors.size).toBe(0);
    expect(r.stats.dropCount("non-unicast-source")).toBe(2 * V4.length);
  });

  test("an ARP request from a multicast or broadcast sender is neither learnt nor answered", () => {
    const r = new Rig();
    for (const sender of ["224.0.0.1", "255.255.255.255", "10.0.2.255", "240.1.2.3"]) {
      const body = arpBody({ op: 1, senderMac: GUEST_MAC, senderIp: ipv4(sender), targetMac: new Uint8Array(6), targetIp: ipv4("10.0.2.2") });
      r.inject(ethernet(BROADCAST_MAC, GUEST_MAC, ETH_ARP, body));
    }
    expect(r.out.length).toBe(0);
    expect(r.neighbors.size).toBe(0);
  });

  test("a unicast ping is still answered at once, to the MAC it came from", () => {
    const r = new Rig();
    r.inject(ping4("10.0.2.100", "8.8.8.8"));
    expect(r.out.length).toBe(1);
    expect(type(r.out[0]!)).toBe(ETH_IPV4);
    expect([...r.out[0]!.subarray(0, 6)]).toEqual([...GUEST_MAC]);
    expect(r.neighbors.size).toBe(1);
    r.inject(echo6(v6("fd00::100"), v6("2001:db8::1")));
    expect(r.out.length).toBe(2);
    expect(r.neighbors.size).toBe(2);
    expect(r.stats.dropCount("non-unicast-source")).toBe(0);
  });

  test("Duplicate Address Detection from :: is still looked at (and not answered)", () => {
    const r = new Rig();
    // NS for fd00::100 from ::, to its solicited-node group, no options.
    const ns = new Uint8Array(24);
    ns[0] = 135;
    ns.set(v6("fd00::100"), 8);
    r.inject(icmp6(v6("::"), v6("ff02::1:ff00:100"), ns, 255));
    expect(r.out.length).toBe(0);
    expect(r.stats.dropCount("non-unicast-source")).toBe(0);
  });
});

describe("caps", () => {
  /** Sends an 8-byte UDP datagram from the stack to `dst` (no MAC known for it). */
  function sendTo(r: Rig, dst: number): void {
    const eg = r.stack.egress;
    eg.buf.fill(0, eg.l4OffV4, eg.l4OffV4 + 8);
    eg.sendV4(0xc0000201, dst, 17, 8, r.now);
  }

  test("100k distinct unresolved destinations: entries, queue and solicitations stay capped", () => {
    const r = new Rig();
    const nb = r.neighbors;
    let maxPending = 0;
    let maxSize = 0;
    // 10k a second for 10 s, each to an address nobody answers for.
    for (let i = 0; i < 100_000; i++) {
      sendTo(r, (0x0a010000 + i) >>> 0);
      if (i % 10 === 9) r.advance(1, 1);
      maxPending = Math.max(maxPending, nb.pending);
      maxSize = Math.max(maxSize, nb.size);
    }
    expect(maxPending).toBeLessThanOrEqual(MAX_UNRESOLVED);
    expect(maxSize).toBeLessThanOrEqual(MAX_UNRESOLVED);
    expect(nb["queued"]).toBeLessThanOrEqual(MAX_QUEUED);
    // The token bucket: a burst of SOLICIT_RATE, then SOLICIT_RATE a second.
    expect(r.solicitations()).toBeLessThanOrEqual(SOLICIT_RATE * 11);
    expect(r.solicitations()).toBeGreaterThan(SOLICIT_RATE * 5);
    expect(r.stats.limitCount("neighbors-unresolved")).toBeGreaterThan(90_000);
    // Nobody answered: every entry is gone 3 s later, its frames dropped.
    r.advance(3000);
    expect(nb.pending).toBe(0);
    expect(nb.size).toBe(0);
    expect(nb["queued"]).toBe(0);
  });

  test("one silent address: one solicitation a second, three in all, then its frames are dropped", () => {
    const r = new Rig();
    for (let i = 0; i < 500; i++) {
      sendTo(r, 0x0a000264);
      r.advance(10, 10);
    }
    // Solicitations at 0, 1 and 2 s, the address given up at 3 s; the
    // next frame starts over: 3, 4 and 5 s.
    expect(r.solicitations()).toBe(6);
    expect(r.stats.dropCount("neighbor-unresolved")).toBe(MAX_QUEUED_PER_ADDR);
    expect(r.stats.limitCount("neighbor-queue")).toBeGreaterThan(400);
  });

  test("resolved entries of both families count against one cap, the least recently used go first", () => {
    const r = new Rig();
    // The guest itself, then 2000 IPv4 and 2000 IPv6 sources it pings from.
    r.inject(ping4("10.0.2.100", "8.8.8.8"));
    for (let i = 0; i < 2000; i++) {
      r.inject(ping4(`10.9.${i >> 8}.${i & 0xff}`, "8.8.8.8"));
      r.inject(echo6(v6(`fd00::1:${i.toString(16)}`), v6("2001:db8::1")));
      // The guest keeps talking to what it uses; a lookup keeps its entry.
      if (i % 100 === 0) sendTo(r, 0x0a000264);
      expect(r.neighbors.size).toBeLessThanOrEqual(1024);
    }
    expect(r.stats.limitCount("neighbors")).toBe(4001 - 1024);
    // The guest's entry survived: a frame to it goes out at once, no ARP.
    r.out.length = 0;
    sendTo(r, 0x0a000264);
    expect(r.out.length).toBe(1);
    expect([...r.out[0]!.subarray(0, 6)]).toEqual([...GUEST_MAC]);
  });

  test("-max-neighbors sets the cap; unresolved entries get at most half of it", () => {
    const r = new Rig(16);
    for (let i = 0; i < 100; i++) r.inject(ping4(`10.9.0.${i}`, "8.8.8.8"));
    expect(r.neighbors.size).toBe(16);
    for (let i = 0; i < 100; i++) sendTo(r, (0x0a010000 + i) >>> 0);
    expect(r.neighbors.pending).toBe(8);
    expect(r.neighbors.size).toBe(16);
  });
});
