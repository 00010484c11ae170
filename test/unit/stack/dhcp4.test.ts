// The DHCPv4 server (RFC 2131, RFC 2132) on an Ethernet stack, on a
// virtual clock: every message type, the four kinds of REQUEST, where
// replies go (RFC 2131 §4.1), the pool, the lease cap, the options (119
// with compression, split over several options when long), and hostile
// messages that must be dropped, never thrown on. Client messages and the
// parsing of replies are written by hand here, independent of src/wire.
import { describe, expect, test } from "bun:test";
import { Stack } from "../../../src/stack/stack.ts";
import { RxMeta, type DeviceCaps, type FrameSink, type TxMeta } from "../../../src/stack/device.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { DEFAULT_TCP_CONFIG } from "../../../src/stack/tcp/connection.ts";
import { FlowSecret } from "../../../src/stack/secret.ts";
import { DECLINE_HOLD_MS, POOL_SIZE, type Dhcp4HostInfo } from "../../../src/stack/services/dhcp4.ts";
import { BROADCAST_MAC, ETH_IPV4, ethernet, inetChecksum, ipv4, ipv4Packet, ipv4Text, mac, macText } from "../../support/frames.ts";
import { keyFromSeed } from "../../support/engine-pair.ts";
import { Prng } from "../wire/helpers.ts";
import { DEFAULT_GUEST_NET_V4, guestNetV4FromText, type GuestNetV4 } from "../../../src/wire/guest-net.ts";

const STACK_MAC = mac("70:71:aa:4b:29:aa");
const LEASE_S = 3600;
const MTU = 1500;

const T = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;

class HostInfo implements Dhcp4HostInfo {
  dns: number[] = [0x0a000203];
  search: string[] = ["eng.example.com", "example.com"];
  dnsServers(): readonly number[] {
    return this.dns;
  }
  searchDomains(): readonly string[] {
    return this.search;
  }
}

interface Reply {
  dstMac: string;
  srcMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  op: number;
  xid: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  chaddr: string;
  len: number;
  /** Option values, repeated codes concatenated (RFC 3396). */
  opts: Map<number, Uint8Array>;
  type: number;
}

class Rig implements FrameSink {
  now = 1_000_000;
  readonly stats = new Stats();
  readonly stack: Stack;
  readonly out: Uint8Array[] = [];
  readonly info = new HostInfo();
  private readonly meta = new RxMeta();

  constructor(opts: { dhcp?: boolean; mtu?: number; net?: GuestNetV4 } = {}) {
    const caps: DeviceCaps = { medium: "ethernet", mtu: opts.mtu ?? MTU, txChecksumOffload: false, txTcpSegmentation: false };
    this.stack = new Stack(caps, this, { tcpConnectRequest() {}, udpNewFlow: () => false }, this.stats, {
      mac: STACK_MAC,
      netV4: opts.net ?? DEFAULT_GUEST_NET_V4,
      gatewayV6: Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
      tcp: DEFAULT_TCP_CONFIG,
      secret: new FlowSecret(keyFromSeed(7)),
      ...(opts.dhcp === false ? {} : { dhcp4: { leaseSeconds: LEASE_S, info: this.info } }),
    });
  }

  transmit(buf: Uint8Array, off: number, len: number, _meta: TxMeta | null): void {
    this.out.push(buf.slice(off, off + len));
  }

  input(frame: Uint8Array): void {
    this.meta.clear();
    this.stack.input(frame, 0, frame.length, this.meta, this.now);
  }

  /** Sends a client message and returns the DHCP replies it caused. */
  send(m: ClientMsg): Reply[] {
    this.out.length = 0;
    this.input(clientFrame(m));
    return this.out.map(parseReply).filter((r): r is Reply => r !== null);
  }

  one(m: ClientMsg): Reply {
    const r = this.send(m);
    expect(r.length).toBe(1);
    return r[0]!;
  }
}

interface ClientMsg {
  type: number;
  mac: string;
  xid?: number;
  broadcast?: boolean;
  ciaddr?: string;
  giaddr?: string;
  requested?: string;
  serverId?: string;
  maxSize?: number;
  /** IP source and destination (default 0.0.0.0 -> 255.255.255.255). */
  src?: string;
  dst?: string;
  /** Raw options instead of the ones above (after option 53). */
  extra?: number[];
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** The BOOTP message (RFC 2131 §2) of a client. */
function dhcpMessage(m: ClientMsg): Uint8Array {
  const opts: number[] = [53, 1, m.type];
  if (m.requested) opts.push(50, 4, ...ipv4(m.requested));
  if (m.serverId) opts.push(54, 4, ...ipv4(m.serverId));
  if (m.maxSize) opts.push(57, 2, m.maxSize >> 8, m.maxSize & 0xff);
  opts.push(55, 4, 1, 3, 6, 26);
  if (m.extra) opts.push(...m.extra);
  opts.push(255);
  const b = new Uint8Array(240 + opts.length);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  new DataView(b.buffer).setUint32(4, m.xid ?? 0x12345678);
  if (m.broadcast) b[10] = 0x80;
  b.set(ipv4(m.ciaddr ?? "0.0.0.0"), 12);
  b.set(ipv4(m.giaddr ?? "0.0.0.0"), 24);
  b.set(mac(m.mac), 28);
  b.set([99, 130, 83, 99], 236);
  b.set(opts, 240);
  return b;
}

function udpDatagram(sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const v = new DataView(u.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint16(4, u.length);
  u.set(payload, 8);
  return u;
}

function clientFrame(m: ClientMsg, payload = dhcpMessage(m)): Uint8Array {
  const dst = m.dst ?? "255.255.255.255";
  const ip = ipv4Packet({ src: ipv4(m.src ?? "0.0.0.0"), dst: ipv4(dst), protocol: 17, id: 1, payload: udpDatagram(68, 67, payload) });
  return ethernet(dst === "255.255.255.255" ? BROADCAST_MAC : STACK_MAC, mac(m.mac), ETH_IPV4, ip);
}

function parseReply(f: Uint8Array): Reply | null {
  if (f.length < 14 + 20 + 8 + 240 || ((f[12]! << 8) | f[13]!) !== ETH_IPV4 || f[14 + 9] !== 17) return null;
  const ip = f.subarray(14);
  expect(inetChecksum(ip.subarray(0, 20))).toBe(0);
  const udp = ip.subarray(20);
  const dv = new DataView(udp.buffer, udp.byteOffset);
  const ulen = dv.getUint16(4);
  expect(ulen).toBe(((ip[2]! << 8) | ip[3]!) - 20);
  // The UDP checksum, over the pseudo header (RFC 768).
  const ph = new Uint8Array(12 + ulen);
  ph.set(ip.subarray(12, 20), 0);
  ph[9] = 17;
  ph[10] = ulen >> 8;
  ph[11] = ulen & 0xff;
  ph.set(udp.subarray(0, ulen), 12);
  expect(inetChecksum(ph)).toBe(0);
  const d = udp.subarray(8, ulen);
  expect(u32(d, 236)).toBe(0x63825363);
  const opts = new Map<number, Uint8Array>();
  let p = 240;
  while (p < d.length && d[p] !== 255) {
    if (d[p] === 0) {
      p++;
      continue;
    }
    const code = d[p]!;
    const n = d[p + 1]!;
    const prev = opts.get(code) ?? new Uint8Array(0);
    const joined = new Uint8Array(prev.length + n);
    joined.set(prev);
    joined.set(d.subarray(p + 2, p + 2 + n), prev.length);
    opts.set(code, joined);
    p += 2 + n;
  }
  expect(d[p]).toBe(255);
  return {
    dstMac: macText(f, 0),
    srcMac: macText(f, 6),
    srcIp: ipv4Text(ip, 12),
    dstIp: ipv4Text(ip, 16),
    srcPort: dv.getUint16(0),
    dstPort: dv.getUint16(2),
    op: d[0]!,
    xid: u32(d, 4),
    flags: (d[10]! << 8) | d[11]!,
    ciaddr: ipv4Text(d, 12),
    yiaddr: ipv4Text(d, 16),
    chaddr: macText(d, 28),
    len: d.length,
    opts,
    type: opts.get(53)?.[0] ?? 0,
  };
}

function ips(b: Uint8Array | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; b && i + 4 <= b.length; i += 4) out.push(ipv4Text(b, i));
  return out;
}

function num(b: Uint8Array | undefined): number {
  if (!b) return -1;
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/** RFC 1035 names with compression pointers, as a client decodes option 119. */
function decodeSearch(b: Uint8Array): string[] {
  const names: string[] = [];
  let p = 0;
  while (p < b.length) {
    const labels: string[] = [];
    let q = p;
    let jumped = false;
    for (let hops = 0; hops < 64; hops++) {
      const n = b[q]!;
      if (n === 0) {
        if (!jumped) p = q + 1;
        break;
      }
      if ((n & 0xc0) === 0xc0) {
        const to = ((n & 0x3f) << 8) | b[q + 1]!;
        expect(to).toBeLessThan(q);
        if (!jumped) p = q + 2;
        jumped = true;
        q = to;
        continue;
      }
      labels.push(new TextDecoder().decode(b.subarray(q + 1, q + 1 + n)));
      q += 1 + n;
    }
    names.push(labels.join("."));
  }
  return names;
}

const MAC1 = "02:00:00:00:00:01";
const MAC2 = "02:00:00:00:00:02";

/** DISCOVER, then REQUEST of what was offered (SELECTING); returns the ACK. */
function lease(rig: Rig, m: string): Reply {
  const offer = rig.one({ type: T.DISCOVER, mac: m });
  expect(offer.type).toBe(T.OFFER);
  const ack = rig.one({ type: T.REQUEST, mac: m, requested: offer.yiaddr, serverId: "10.0.2.2" });
  expect(ack.type).toBe(T.ACK);
  return ack;
}

describe("DHCPv4 server: messages", () => {
  test("DISCOVER gets an OFFER of 10.0.2.100 with the whole configuration", () => {
    const rig = new Rig();
    const r = rig.one({ type: T.DISCOVER, mac: MAC1, xid: 0xcafe0001, broadcast: true });
    expect(r.type).toBe(T.OFFER);
    expect(r.op).toBe(2);
    expect(r.xid).toBe(0xcafe0001);
    expect(r.flags).toBe(0x8000);
    expect(r.yiaddr).toBe("10.0.2.100");
    expect(r.ciaddr).toBe("0.0.0.0");
    expect(r.chaddr).toBe(MAC1);
    expect([r.srcIp, r.srcPort, r.dstPort, r.srcMac]).toEqual(["10.0.2.2", 67, 68, "70:71:aa:4b:29:aa"]);
    // BROADCAST flag: to 255.255.255.255 at ff:ff:ff:ff:ff:ff (RFC 2131 §4.1).
    expect([r.dstIp, r.dstMac]).toEqual(["255.255.255.255", "ff:ff:ff:ff:ff:ff"]);
    expect(ips(r.opts.get(54))).toEqual(["10.0.2.2"]);
    expect(ips(r.opts.get(1))).toEqual(["255.255.255.0"]);
    expect(ips(r.opts.get(3))).toEqual(["10.0.2.2"]);
    expect(ips(r.opts.get(28))).toEqual(["10.0.2.255"]);
    expect(ips(r.opts.get(6))).toEqual(["10.0.2.3"]);
    expect(num(r.opts.get(26))).toBe(MTU);
    expect(num(r.opts.get(51))).toBe(LEASE_S);
    expect(num(r.opts.get(58))).toBe(LEASE_S / 2);
    expect(num(r.opts.get(59))).toBe((LEASE_S * 7) / 8);
    expect(new TextDecoder().decode(r.opts.get(15))).toBe("eng.example.com");
    expect(decodeSearch(r.opts.get(119)!)).toEqual(["eng.example.com", "example.com"]);
    // Compressed: "example.com" is a pointer into the first name.
    expect([...r.opts.get(119)!]).toEqual([3, ...Buffer.from("eng"), 7, ...Buffer.from("example"), 3, ...Buffer.from("com"), 0, 0xc0, 4]);
    // At least BOOTP's 300 bytes, at most the 576-byte datagram every client takes.
    expect(r.len).toBeGreaterThanOrEqual(300);
    expect(r.len).toBeLessThanOrEqual(548);
    expect(rig.stats.eventCount("dhcp-offer")).toBe(1);
  });

  test("another guest network (slirp4netns's --cidr): its guest address, netmask, broadcast and gateway", () => {
    const rig = new Rig({ net: guestNetV4FromText("172.20.4.128/25")! });
    rig.info.dns = [guestNetV4FromText("172.20.4.128/25")!.dns];
    const r = rig.one({ type: T.DISCOVER, mac: MAC1, broadcast: true });
    expect([r.type, r.yiaddr, r.srcIp]).toEqual([T.OFFER, "172.20.4.228", "172.20.4.130"]);
    expect(ips(r.opts.get(54))).toEqual(["172.20.4.130"]);
    expect(ips(r.opts.get(1))).toEqual(["255.255.255.128"]);
    expect(ips(r.opts.get(3))).toEqual(["172.20.4.130"]);
    expect(ips(r.opts.get(28))).toEqual(["172.20.4.255"]);
    expect(ips(r.opts.get(6))).toEqual(["172.20.4.131"]);
    const ack = rig.one({ type: T.REQUEST, mac: MAC1, requested: "172.20.4.228", serverId: "172.20.4.130" });
    expect([ack.type, ack.yiaddr]).toEqual([T.ACK, "172.20.4.228"]);
    // The old default network is foreign here.
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.100" }).type).toBe(T.NAK);
  });

  test("without the BROADCAST flag an OFFER goes to yiaddr at the client's MAC, with no ARP", () => {
    const rig = new Rig();
    const r = rig.one({ type: T.DISCOVER, mac: MAC1 });
    expect([r.dstIp, r.dstMac]).toEqual(["10.0.2.100", MAC1]);
    expect(rig.out.length).toBe(1);
  });

  test("no DNS servers and no search domains: options 6, 15 and 119 are left out", () => {
    const rig = new Rig();
    rig.info.dns = [];
    rig.info.search = [];
    const r = rig.one({ type: T.DISCOVER, mac: MAC1 });
    expect(r.opts.has(6)).toBe(false);
    expect(r.opts.has(15)).toBe(false);
    expect(r.opts.has(119)).toBe(false);
    expect(ips(r.opts.get(3))).toEqual(["10.0.2.2"]);
  });

  test("the host's changes reach the next reply (a new resolv.conf)", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    rig.info.dns = [0xc0000235, 0xc0000236];
    rig.info.search = ["corp.example.org"];
    const r = rig.one({ type: T.REQUEST, mac: MAC1, ciaddr: "10.0.2.100", src: "10.0.2.100", dst: "10.0.2.2" });
    expect(ips(r.opts.get(6))).toEqual(["192.0.2.53", "192.0.2.54"]);
    expect(decodeSearch(r.opts.get(119)!)).toEqual(["corp.example.org"]);
    expect(new TextDecoder().decode(r.opts.get(15))).toBe("corp.example.org");
  });

  test("REQUEST (SELECTING) is ACKed and commits the lease; another client then gets the next address", () => {
    const rig = new Rig();
    const ack = lease(rig, MAC1);
    expect(ack.yiaddr).toBe("10.0.2.100");
    expect(num(ack.opts.get(51))).toBe(LEASE_S);
    expect(ips(ack.opts.get(3))).toEqual(["10.0.2.2"]);
    const second = lease(rig, MAC2);
    expect(second.yiaddr).toBe("10.0.2.101");
    // The first client is offered its own address again.
    expect(rig.one({ type: T.DISCOVER, mac: MAC1 }).yiaddr).toBe("10.0.2.100");
  });

  test("REQUEST for an address that is another client's gets a broadcast NAK", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    const nak = rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.100", serverId: "10.0.2.2" });
    expect(nak.type).toBe(T.NAK);
    expect([nak.dstIp, nak.dstMac]).toEqual(["255.255.255.255", "ff:ff:ff:ff:ff:ff"]);
    expect(nak.yiaddr).toBe("0.0.0.0");
    expect(ips(nak.opts.get(54))).toEqual(["10.0.2.2"]);
    expect(nak.opts.has(51)).toBe(false);
    expect(nak.opts.has(3)).toBe(false);
    expect(rig.stats.eventCount("dhcp-nak")).toBe(1);
  });

  test("REQUEST naming another server is that server's business: no answer", () => {
    const rig = new Rig();
    expect(rig.send({ type: T.REQUEST, mac: MAC1, requested: "10.0.2.100", serverId: "10.0.2.9" })).toEqual([]);
    expect(rig.stats.dropCount("dhcp-other-server")).toBe(1);
  });

  test("INIT-REBOOT: a free pool address is granted (authoritative), a foreign or taken one NAKed", () => {
    const rig = new Rig();
    const ack = rig.one({ type: T.REQUEST, mac: MAC1, requested: "10.0.2.100" });
    expect([ack.type, ack.yiaddr]).toEqual([T.ACK, "10.0.2.100"]);
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "192.168.1.7" }).type).toBe(T.NAK);
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.50" }).type).toBe(T.NAK);
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.100" }).type).toBe(T.NAK);
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.107" }).yiaddr).toBe("10.0.2.107");
  });

  test("RENEWING (unicast to us) extends the lease; the ACK is unicast to ciaddr", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    rig.now += (LEASE_S / 2) * 1000;
    const r = rig.one({ type: T.REQUEST, mac: MAC1, ciaddr: "10.0.2.100", src: "10.0.2.100", dst: "10.0.2.2" });
    expect(r.type).toBe(T.ACK);
    expect([r.dstIp, r.dstMac, r.ciaddr, r.yiaddr]).toEqual(["10.0.2.100", MAC1, "10.0.2.100", "10.0.2.100"]);
    // Past the first lease's end, the address is still the first client's.
    rig.now += (LEASE_S / 2) * 1000 + 1000;
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.100", serverId: "10.0.2.2" }).type).toBe(T.NAK);
    expect(rig.one({ type: T.DISCOVER, mac: MAC2 }).yiaddr).toBe("10.0.2.101");
    // No UDP flow was made of it.
    expect(rig.stack.udp.flowCount).toBe(0);
  });

  test("REBINDING (broadcast, ciaddr set) is ACKed unicast to ciaddr", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    rig.now += ((LEASE_S * 7) / 8) * 1000;
    const r = rig.one({ type: T.REQUEST, mac: MAC1, ciaddr: "10.0.2.100", src: "10.0.2.100", broadcast: true });
    expect([r.type, r.dstIp, r.dstMac]).toEqual([T.ACK, "10.0.2.100", MAC1]);
  });

  test("RENEWING an address that is another client's gets a NAK", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    const r = rig.one({ type: T.REQUEST, mac: MAC2, ciaddr: "10.0.2.100", src: "10.0.2.100", dst: "10.0.2.2" });
    expect(r.type).toBe(T.NAK);
  });

  test("an unrenewed lease expires: its address goes to a new client", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    rig.now += LEASE_S * 1000;
    expect(lease(rig, MAC2).yiaddr).toBe("10.0.2.100");
  });

  test("RELEASE frees the address; the client gets it back, and so could another", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    expect(rig.send({ type: T.RELEASE, mac: MAC1, ciaddr: "10.0.2.100", src: "10.0.2.100", dst: "10.0.2.2", serverId: "10.0.2.2" })).toEqual([]);
    expect(rig.stats.eventCount("dhcp-release")).toBe(1);
    expect(rig.one({ type: T.DISCOVER, mac: MAC2 }).yiaddr).toBe("10.0.2.100");
    expect(lease(rig, MAC1).yiaddr).toBe("10.0.2.100");
    // A RELEASE from someone else does not end a lease.
    rig.send({ type: T.RELEASE, mac: MAC2, ciaddr: "10.0.2.100", src: "10.0.2.100", dst: "10.0.2.2" });
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.100" }).type).toBe(T.NAK);
  });

  test("DECLINE: the address is not offered for DECLINE_HOLD_MS, then it is", () => {
    const rig = new Rig();
    lease(rig, MAC1);
    expect(rig.send({ type: T.DECLINE, mac: MAC1, requested: "10.0.2.100", serverId: "10.0.2.2" })).toEqual([]);
    expect(rig.stats.eventCount("dhcp-decline")).toBe(1);
    expect(rig.one({ type: T.DISCOVER, mac: MAC1 }).yiaddr).toBe("10.0.2.101");
    expect(rig.one({ type: T.REQUEST, mac: MAC2, requested: "10.0.2.100" }).type).toBe(T.NAK);
    rig.now += DECLINE_HOLD_MS;
    expect(rig.one({ type: T.DISCOVER, mac: MAC2 }).yiaddr).toBe("10.0.2.100");
  });

  test("INFORM: the configuration, unicast to ciaddr, without an address or a lease", () => {
    const rig = new Rig();
    const r = rig.one({ type: T.INFORM, mac: MAC1, ciaddr: "10.0.2.77", src: "10.0.2.77", dst: "10.0.2.2" });
    expect(r.type).toBe(T.ACK);
    expect([r.dstIp, r.dstMac, r.yiaddr, r.ciaddr]).toEqual(["10.0.2.77", MAC1, "0.0.0.0", "10.0.2.77"]);
    expect(r.opts.has(51)).toBe(false);
    expect(r.opts.has(58)).toBe(false);
    expect(ips(r.opts.get(6))).toEqual(["10.0.2.3"]);
    expect(ips(r.opts.get(3))).toEqual(["10.0.2.2"]);
    expect(num(r.opts.get(26))).toBe(MTU);
    // It leases nothing: the first client still gets 10.0.2.100.
    expect(rig.one({ type: T.DISCOVER, mac: MAC2 }).yiaddr).toBe("10.0.2.100");
  });

  test("option 57 lets a reply grow past 548 bytes, within the MTU; a long search list spans several options 119", () => {
    const rig = new Rig();
    rig.info.search = Array.from({ length: 30 }, (_, i) => `d${i}.x${i}.example.net`);
    const small = rig.one({ type: T.DISCOVER, mac: MAC1 });
    expect(small.len).toBeLessThanOrEqual(548);
    expect(small.opts.has(119)).toBe(false);
    const big = rig.one({ type: T.DISCOVER, mac: MAC1, maxSize: 1500 });
    expect(decodeSearch(big.opts.get(119)!)).toEqual(rig.info.search);
    expect(big.opts.get(119)!.length).toBeGreaterThan(255);
    expect(big.len + 28).toBeLessThanOrEqual(1500);
  });

  test("with -dhcp off a DISCOVER gets nothing, as before", () => {
    const rig = new Rig({ dhcp: false });
    expect(rig.send({ type: T.DISCOVER, mac: MAC1, broadcast: true })).toEqual([]);
    expect(rig.out.length).toBe(0);
  });
});

describe("DHCPv4 server: the pool and the lease cap", () => {
  const macN = (i: number) => `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;

  test(`${POOL_SIZE} clients get 10.0.2.100-115; one more is ignored and counted until a lease expires`, () => {
    const rig = new Rig();
    for (let i = 0; i < POOL_SIZE; i++) {
      expect(lease(rig, macN(i)).yiaddr).toBe(`10.0.2.${100 + i}`);
      rig.now += 1000;
    }
    expect(rig.send({ type: T.DISCOVER, mac: macN(500) })).toEqual([]);
    expect(rig.stats.limitCount("dhcp-leases")).toBe(1);
    // The lease taken first expires first; the newcomer gets that one.
    rig.now += LEASE_S * 1000 - POOL_SIZE * 1000;
    expect(lease(rig, macN(500)).yiaddr).toBe("10.0.2.100");
    expect(rig.send({ type: T.DISCOVER, mac: macN(501) })).toEqual([]);
    expect(rig.stats.limitCount("dhcp-leases")).toBe(2);
  });

  test("expired leases are reclaimed oldest first, never-used addresses before them", () => {
    const rig = new Rig();
    lease(rig, macN(1)); // .100
    rig.now += 1000;
    lease(rig, macN(2)); // .101
    rig.now += LEASE_S * 1000;
    // Both expired; .100 is the guest address, free again: it goes first.
    expect(lease(rig, macN(3)).yiaddr).toBe("10.0.2.100");
    // Then the never-used .102, not the expired .101 (macN(2) may come back for it).
    expect(lease(rig, macN(4)).yiaddr).toBe("10.0.2.102");
    expect(rig.one({ type: T.DISCOVER, mac: macN(2) }).yiaddr).toBe("10.0.2.101");
  });

  test("2000 DISCOVERs from random MACs record nothing: the next real client gets 10.0.2.100", () => {
    const rig = new Rig();
    const rng = new Prng(99);
    for (let i = 0; i < 2000; i++) {
      const m = [2, rng.byte(), rng.byte(), rng.byte(), rng.byte(), rng.byte()].map((x) => x.toString(16).padStart(2, "0")).join(":");
      expect(rig.one({ type: T.DISCOVER, mac: m }).yiaddr).toBe("10.0.2.100");
    }
    expect(rig.stats.limitCount("dhcp-leases")).toBe(0);
    expect(lease(rig, MAC1).yiaddr).toBe("10.0.2.100");
  });
});

describe("DHCPv4 server: hostile messages are dropped, never thrown on", () => {
  const base: ClientMsg = { type: T.DISCOVER, mac: MAC1 };

  function raw(rig: Rig, payload: Uint8Array, m: ClientMsg = base): Reply[] {
    rig.out.length = 0;
    rig.input(clientFrame(m, payload));
    return rig.out.map(parseReply).filter((r): r is Reply => r !== null);
  }

  test("truncated messages, a bad cookie, a BOOTREPLY, non-Ethernet chaddr, giaddr set", () => {
    const rig = new Rig();
    const good = dhcpMessage(base);
    // Cut anywhere before the message type is complete (a cut after a whole option is a message without END, taken).
    for (let n = 0; n < 243; n++) expect(raw(rig, good.slice(0, n))).toEqual([]);
    const cookie = good.slice();
    cookie[239] ^= 1;
    expect(raw(rig, cookie)).toEqual([]);
    const reply = good.slice();
    reply[0] = 2;
    expect(raw(rig, reply)).toEqual([]);
    const ib = good.slice();
    ib[1] = 32;
    ib[2] = 20;
    expect(raw(rig, ib)).toEqual([]);
    expect(rig.send({ ...base, giaddr: "10.9.9.9" })).toEqual([]);
    expect(rig.stats.dropCount("dhcp-malformed")).toBeGreaterThan(200);
    expect(rig.stats.dropCount("dhcp-relayed")).toBe(1);
    expect(rig.stats.dropCount("dhcp-not-ethernet")).toBe(1);
    // Still serving.
    expect(rig.one(base).yiaddr).toBe("10.0.2.100");
  });

  test("an option running past the message, wrong lengths, unknown message types", () => {
    const rig = new Rig();
    const overflow = dhcpMessage({ ...base, extra: [12, 200, 1, 2] });
    expect(raw(rig, overflow.slice(0, overflow.length - 1))).toEqual([]);
    expect(raw(rig, dhcpMessage({ ...base, extra: [50, 3, 10, 0, 2] }))).toEqual([]);
    expect(rig.send({ type: 0, mac: MAC1 })).toEqual([]);
    expect(rig.send({ type: 99, mac: MAC1 })).toEqual([]);
    expect(rig.send({ type: T.OFFER, mac: MAC1 })).toEqual([]);
    // A message type missing altogether.
    const none = dhcpMessage(base);
    none[240] = 0;
    none[241] = 0;
    none[242] = 0;
    expect(raw(rig, none)).toEqual([]);
    expect(rig.stats.dropCount("dhcp-unknown-type")).toBe(4);
  });

  test("option overload (52): options in file and sname are read; their overflow is caught", () => {
    const rig = new Rig();
    // Message type and requested address only in the file field.
    const m = dhcpMessage({ type: T.REQUEST, mac: MAC1, extra: [52, 1, 3] });
    m[242] = 0; // turn option 53 in the options field into padding
    m[240] = 0;
    m[241] = 0;
    m.set([53, 1, T.REQUEST, 255], 108);
    m.set([50, 4, 10, 0, 2, 105, 255], 44);
    const r = raw(rig, m);
    expect(r.length).toBe(1);
    expect([r[0]!.type, r[0]!.yiaddr]).toEqual([T.ACK, "10.0.2.105"]);
    const bad = m.slice();
    bad.set([50, 60, 1], 44 + 60); // runs past sname's 64 bytes
    bad.set([0, 0, 0, 0, 0, 0, 0], 44);
    expect(raw(rig, bad)).toEqual([]);
  });

  test("65000 bytes of padding, and a message of nothing but options, are walked to the end", () => {
    const rig = new Rig();
    const pad = new Uint8Array(240 + 60000);
    pad.set(dhcpMessage(base).subarray(0, 240));
    pad.set([53, 1, 1], 240 + 59990);
    const r = raw(rig, pad);
    expect(r.length).toBe(1);
    const many = new Uint8Array(240 + 60000);
    many.set(dhcpMessage(base).subarray(0, 240));
    for (let p = 240; p + 2 <= many.length; p += 2) many.set([224, 0], p);
    expect(raw(rig, many)).toEqual([]);
  });

  test("10000 random and mutated messages: nothing throws, every reply is well-formed", () => {
    const rig = new Rig();
    const rng = new Prng(0xd4c9);
    const seeds = [
      dhcpMessage(base),
      dhcpMessage({ type: T.REQUEST, mac: MAC1, requested: "10.0.2.100", serverId: "10.0.2.2" }),
      dhcpMessage({ type: T.INFORM, mac: MAC2, ciaddr: "10.0.2.9", extra: [52, 1, 3] }),
    ];
    let replies = 0;
    for (let i = 0; i < 10_000; i++) {
      let m: Uint8Array;
      if (i % 4 === 0) m = rng.bytes(rng.int(400));
      else {
        m = seeds[rng.int(seeds.length)]!.slice(0, 240 + rng.int(40));
        for (let f = 1 + rng.int(6); f > 0; f--) m[rng.int(m.length)] = rng.byte();
        if (rng.int(2)) m.set([99, 130, 83, 99], 236);
      }
      // parseReply checks every reply's checksums and layout.
      replies += raw(rig, m).length;
      rig.now += 10;
    }
    expect(replies).toBeGreaterThan(100);
  });

  test("a bad UDP checksum is dropped", () => {
    const rig = new Rig();
    const f = clientFrame(base);
    f[14 + 20 + 6] = 0x12; // a checksum that cannot be right
    f[14 + 20 + 7] = 0x34;
    rig.out.length = 0;
    rig.input(f);
    expect(rig.out.length).toBe(0);
    expect(rig.stats.dropCount("dhcp-bad-checksum")).toBe(1);
  });
});
