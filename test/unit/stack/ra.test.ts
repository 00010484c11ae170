// Router advertisements (RFC 4861 §6.2, RFC 8106) and stateless DHCPv6
// (RFC 8415) on an Ethernet stack with a virtual clock: what an RS gets
// back, byte for byte where the RFCs fix the format; when periodic RAs go
// out; the rate limits; Information-request -> Reply and Solicit ->
// Advertise(NoAddrsAvail); hostile packets are dropped, never thrown on.
// Frames are built and read by hand, independent of src/wire.
import { describe, expect, test } from "bun:test";
import { Stack, type StackEvents } from "../../../src/stack/stack.ts";
import { RxMeta, type DeviceCaps, type FrameSink, type TxMeta } from "../../../src/stack/device.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { DEFAULT_TCP_CONFIG, type TcpConnection } from "../../../src/stack/tcp/connection.ts";
import type { UdpFlow } from "../../../src/stack/udp.ts";
import { FlowSecret } from "../../../src/stack/secret.ts";
import { MAX_SOLICITORS } from "../../../src/stack/services/ra.ts";
import type { GuestDns6 } from "../../../src/stack/services/guest-dns.ts";
import { ETH_IPV6, ethernet, inetChecksum, mac } from "../../support/frames.ts";
import { keyFromSeed } from "../../support/engine-pair.ts";
import { hex, Prng, toHex } from "../wire/helpers.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../../src/wire/guest-net.ts";

const STACK_MAC = mac("70:71:aa:4b:29:aa");
const GUEST_MAC = mac("02:00:00:00:00:64");
const GATEWAY_V6 = v6("fd00::2");
/** fe80:: + EUI-64 of 70:71:aa:4b:29:aa (U/L bit flipped: 0x70 -> 0x72). */
const STACK_LL = v6("fe80::7271:aaff:fe4b:29aa");
const GUEST_LL = v6("fe80::ff:fe00:64");
const ALL_NODES = v6("ff02::1");
const ALL_ROUTERS = v6("ff02::2");
const ALL_DHCP = v6("ff02::1:2");

function v6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  h.forEach((g, i) => dv.setUint16(2 * i, parseInt(g, 16)));
  t.forEach((g, i) => dv.setUint16(16 - 2 * (t.length - i), parseInt(g, 16)));
  return out;
}

/** DNS wire form of a name, by hand. */
function wireName(name: string): Uint8Array {
  const parts: number[] = [];
  for (const l of name.split(".")) parts.push(l.length, ...new TextEncoder().encode(l));
  parts.push(0);
  return Uint8Array.from(parts);
}

function pseudoSum(src: Uint8Array, dst: Uint8Array, proto: number, body: Uint8Array): number {
  const ph = new Uint8Array(40 + body.length);
  ph.set(src, 0);
  ph.set(dst, 16);
  new DataView(ph.buffer).setUint32(32, body.length);
  ph[39] = proto;
  ph.set(body, 40);
  return inetChecksum(ph);
}

function ipv6Frame(src: Uint8Array, dst: Uint8Array, proto: number, l4: Uint8Array, hopLimit: number, csumAt: number, srcMac = GUEST_MAC): Uint8Array {
  const body = l4.slice();
  new DataView(body.buffer).setUint16(csumAt, 0);
  new DataView(body.buffer).setUint16(csumAt, pseudoSum(src, dst, proto, body));
  const ip = new Uint8Array(40 + body.length);
  ip[0] = 0x60;
  new DataView(ip.buffer).setUint16(4, body.length);
  ip[6] = proto;
  ip[7] = hopLimit;
  ip.set(src, 8);
  ip.set(dst, 24);
  ip.set(body, 40);
  const dstMac = dst[0] === 0xff ? Uint8Array.of(0x33, 0x33, dst[12]!, dst[13]!, dst[14]!, dst[15]!) : STACK_MAC;
  return ethernet(dstMac, srcMac, ETH_IPV6, ip);
}

/** A Router Solicitation, with a Source Link-Layer Address option when `sllao`. */
function rs(src: Uint8Array, opts: { sllao?: Uint8Array | null; hopLimit?: number; dst?: Uint8Array; extra?: Uint8Array } = {}): Uint8Array {
  const sllao = opts.sllao === undefined ? GUEST_MAC : opts.sllao;
  const parts: Uint8Array[] = [Uint8Array.of(133, 0, 0, 0, 0, 0, 0, 0)];
  if (sllao !== null) parts.push(Uint8Array.of(1, 1, ...sllao));
  if (opts.extra) parts.push(opts.extra);
  const msg = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    msg.set(p, at);
    at += p.length;
  }
  return ipv6Frame(src, opts.dst ?? ALL_ROUTERS, 58, msg, opts.hopLimit ?? 255, 2);
}

interface Sent {
  frame: Uint8Array;
  dstMac: Uint8Array;
  src: Uint8Array;
  dst: Uint8Array;
  hopLimit: number;
  proto: number;
  l4: Uint8Array;
}

function parse(f: Uint8Array): Sent | null {
  if (((f[12]! << 8) | f[13]!) !== ETH_IPV6) return null;
  const ip = f.subarray(14);
  const len = (ip[4]! << 8) | ip[5]!;
  return { frame: f, dstMac: f.slice(0, 6), src: ip.slice(8, 24), dst: ip.slice(24, 40), hopLimit: ip[7]!, proto: ip[6]!, l4: ip.slice(40, 40 + len) };
}

class Rig implements FrameSink, StackEvents {
  now = 10_000;
  readonly stats = new Stats();
  readonly stack: Stack;
  readonly out: Uint8Array[] = [];
  dns: GuestDns6 = { servers: [v6("fd00::3")], domains: [wireName("example.com"), wireName("corp.example")] };
  private readonly meta = new RxMeta();

  constructor(opts: { mtu?: number; random?: () => number } = {}) {
    const caps: DeviceCaps = { medium: "ethernet", mtu: opts.mtu ?? 1500, txChecksumOffload: false, txTcpSegmentation: false };
    this.stack = new Stack(caps, this, this, this.stats, {
      mac: STACK_MAC,
      netV4: DEFAULT_GUEST_NET_V4,
      gatewayV6: GATEWAY_V6,
      tcp: DEFAULT_TCP_CONFIG,
      secret: new FlowSecret(keyFromSeed(5)),
      ra: { dns: () => this.dns, random: opts.random ?? (() => 0.5) },
      dhcp6: { dns: () => this.dns },
    });
  }

  transmit(buf: Uint8Array, off: number, len: number, _meta: TxMeta | null): void {
    this.out.push(buf.slice(off, off + len));
  }
  tcpConnectRequest(_conn: TcpConnection): void {}
  udpNewFlow(_flow: UdpFlow): boolean {
    return false;
  }

  inject(frame: Uint8Array): void {
    this.stack.input(frame, 0, frame.length, this.meta, this.now);
    this.stack.poll(this.now);
  }

  /** Moves the virtual clock to `t`, polling at each deadline the stack names on the way. */
  advanceTo(t: number): void {
    for (;;) {
      const next = this.stack.poll(this.now);
      if (next > t) break;
      this.now = Math.max(this.now, next);
    }
    this.now = t;
    this.stack.poll(this.now);
  }

  take(): Sent[] {
    const s = this.out.map(parse).filter((p): p is Sent => p !== null);
    this.out.length = 0;
    return s;
  }

  ras(): Sent[] {
    return this.take().filter((s) => s.proto === 58 && s.l4[0] === 134);
  }
}

/** The RA for the Rig's settings, checksum zeroed, every byte as RFC 4861 §4.2/§4.6 and RFC 8106 §5 lay it out. */
const EXPECTED_RA = hex(`
  86 00 0000  40 40 0708  00000000  00000000
  01 01 7071aa4b29aa
  05 01 0000 000005dc
  03 04 40 c0 00278d00 00093a80 00000000 fd000000000000000000000000000000
  19 03 0000 00000708 fd000000000000000000000000000003
  1f 05 0000 00000708 076578616d706c6503636f6d00 04636f727007657861 6d706c6500 0000000000
`);

function withoutChecksum(l4: Uint8Array): Uint8Array {
  const c = l4.slice();
  c[2] = 0;
  c[3] = 0;
  return c;
}

function expectValidRa(s: Sent, dst: Uint8Array): void {
  expect(toHex(s.src)).toBe(toHex(STACK_LL));
  expect(toHex(s.dst)).toBe(toHex(dst));
  expect(s.hopLimit).toBe(255);
  expect(pseudoSum(s.src, s.dst, 58, s.l4)).toBe(0);
  expect(toHex(s.frame.subarray(6, 12))).toBe(toHex(STACK_MAC));
}

describe("router advertisements", () => {
  test("the first poll sends an RA to all-nodes with every option, byte for byte", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    const ras = r.ras();
    expect(ras.length).toBe(1);
    expectValidRa(ras[0]!, ALL_NODES);
    expect(toHex(ras[0]!.dstMac)).toBe("333300000001");
    expect(toHex(withoutChecksum(ras[0]!.l4))).toBe(toHex(EXPECTED_RA));
  });

  test("an RS from a link-local address gets a unicast RA at once, to its MAC from the SLLA option", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    r.now += 5000;
    r.inject(rs(GUEST_LL, { sllao: mac("02:00:00:00:aa:bb") }));
    const ras = r.ras();
    expect(ras.length).toBe(1);
    expectValidRa(ras[0]!, GUEST_LL);
    expect(toHex(ras[0]!.dstMac)).toBe("02000000aabb");
    expect(toHex(withoutChecksum(ras[0]!.l4))).toBe(toHex(EXPECTED_RA));
  });

  test("the MTU option carries the device MTU; no RDNSS/DNSSL when there is nothing to say", () => {
    const r = new Rig({ mtu: 65521 });
    r.dns = { servers: [], domains: [] };
    r.advanceTo(r.now);
    const l4 = r.ras()[0]!.l4;
    expect(l4.length).toBe(16 + 8 + 8 + 32);
    expect(toHex(l4.subarray(24, 32))).toBe("050100000000fff1");
  });

  test("DNS changes show in the next RA", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    r.dns = { servers: [v6("2001:db8::53"), v6("2001:db8::54")], domains: [] };
    r.now += 5000;
    r.inject(rs(GUEST_LL));
    const l4 = r.ras()[0]!.l4;
    expect(toHex(l4.subarray(64))).toBe(`1905000000000708${toHex(v6("2001:db8::53"))}${toHex(v6("2001:db8::54"))}`);
  });

  test("periodic RAs: at once, then 16 s apart twice (§6.2.4 initial), then between 198 and 600 s", () => {
    const randoms = [0, 1 - 1e-9, 0.25, 0.75];
    let i = 0;
    const r = new Rig({ random: () => randoms[i++ % randoms.length]! });
    const start = r.now;
    const times: number[] = [];
    const end = start + 2_000_000;
    while (r.now < end) {
      const next = r.stack.poll(r.now);
      for (const s of r.ras()) {
        expectValidRa(s, ALL_NODES);
        times.push(r.now - start);
      }
      if (next === Infinity) break;
      r.now = Math.max(r.now + 1, next);
    }
    // After the third RA the full random interval: 198 + 0.25*402 s, then 198 + 0.75*402 s...
    expect(times.slice(0, 5)).toEqual([0, 16_000, 32_000, 32_000 + 298_500, 32_000 + 298_500 + 499_500]);
    for (let k = 4; k < times.length; k++) {
      const gap = times[k]! - times[k - 1]!;
      expect(gap).toBeGreaterThanOrEqual(198_000);
      expect(gap).toBeLessThanOrEqual(600_000);
    }
  });

  test("a solicitor gets one unicast RA per 3 s (MIN_DELAY_BETWEEN_RAS)", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    let got = 0;
    for (let t = 0; t < 9000; t += 500) {
      r.now += 500;
      r.inject(rs(GUEST_LL));
      got += r.ras().length;
    }
    // 18 solicitations over 9 s: answered at 0.5, 3.5, 6.5 s.
    expect(got).toBe(3);
    expect(r.stats.dropCount("ra-solicit-rate")).toBe(15);
  });

  test("forged sources get at most MAX_SOLICITORS unicast RAs per 3 s; the cap is counted", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    r.now += 1000;
    for (let k = 0; k < 100; k++) {
      const src = v6(`fe80::1:${(k + 1).toString(16)}`);
      r.inject(rs(src));
    }
    expect(r.ras().length).toBe(MAX_SOLICITORS);
    expect(r.stats.limitCount("ra-solicitors")).toBe(100 - MAX_SOLICITORS);
    r.now += 3000;
    r.inject(rs(v6("fe80::2:1")));
    expect(r.ras().length).toBe(1);
  });

  test("an RS from :: brings the multicast RA forward, never within 3 s of the last one", () => {
    const r = new Rig();
    r.advanceTo(r.now); // RA at t0
    r.take();
    const t0 = r.now;
    r.now = t0 + 1000;
    r.inject(rs(new Uint8Array(16), { sllao: null }));
    expect(r.ras().length).toBe(0);
    r.advanceTo(t0 + 2999);
    expect(r.ras().length).toBe(0);
    r.advanceTo(t0 + 3000);
    const ras = r.ras();
    expect(ras.length).toBe(1);
    expectValidRa(ras[0]!, ALL_NODES);
    // Long after: answered at once, by multicast.
    r.advanceTo(t0 + 10_000);
    r.take();
    r.inject(rs(new Uint8Array(16), { sllao: null }));
    expect(r.ras().length).toBe(1);
  });

  test("an RS without its link-layer address is answered by multicast (no Neighbor Solicitation first)", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    r.now += 5000;
    r.inject(rs(GUEST_LL, { sllao: null }));
    const out = r.take();
    expect(out.length).toBe(1);
    expectValidRa(out[0]!, ALL_NODES);
  });

  test("invalid solicitations are dropped (§6.1.1)", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    r.now += 5000;
    r.inject(rs(GUEST_LL, { hopLimit: 64 }));
    expect(r.stats.dropCount("ndp-bad-hop-limit")).toBe(1);
    r.inject(rs(new Uint8Array(16))); // SLLA from ::
    r.inject(rs(GUEST_LL, { extra: Uint8Array.of(9, 0, 0, 0, 0, 0, 0, 0) })); // option length 0
    expect(r.stats.dropCount("ndp-malformed")).toBe(2);
    const bad = rs(GUEST_LL);
    bad[bad.length - 1]! ^= 1;
    r.inject(bad);
    expect(r.stats.dropCount("icmp6-malformed")).toBe(1);
    expect(r.ras().length).toBe(0);
  });

  test("the stack answers NS for its link-local address, and echo to it", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    const ns = new Uint8Array(32);
    ns[0] = 135;
    ns.set(STACK_LL, 8);
    ns.set(Uint8Array.of(1, 1, ...GUEST_MAC), 24);
    r.inject(ipv6Frame(GUEST_LL, v6("ff02::1:ff4b:29aa"), 58, ns, 255, 2));
    const na = r.take().find((s) => s.l4[0] === 136)!;
    expect(toHex(na.src)).toBe(toHex(STACK_LL));
    expect(toHex(na.l4.subarray(8, 24))).toBe(toHex(STACK_LL));
    expect(toHex(na.l4.subarray(24, 32))).toBe(`0201${toHex(STACK_MAC)}`);
    r.inject(ipv6Frame(GUEST_LL, STACK_LL, 58, Uint8Array.of(128, 0, 0, 0, 0, 1, 0, 1), 64, 2));
    expect(r.take().filter((s) => s.l4[0] === 129 && toHex(s.src) === toHex(STACK_LL)).length).toBe(1);
  });
});

// ---------------------------------------------------------------------------

const CLIENT_DUID = hex("00010001 2a2b2c2d 020000000064");
const SERVER_DUID = hex("0003 0001 7071aa4b29aa");

function dhcp6Msg(type: number, xid: number, options: Array<[number, Uint8Array]>): Uint8Array {
  const n = 4 + options.reduce((a, [, d]) => a + 4 + d.length, 0);
  const m = new Uint8Array(n);
  m[0] = type;
  m[1] = xid >>> 16;
  m[2] = xid >>> 8;
  m[3] = xid;
  let at = 4;
  for (const [code, d] of options) {
    new DataView(m.buffer).setUint16(at, code);
    new DataView(m.buffer).setUint16(at + 2, d.length);
    m.set(d, at + 4);
    at += 4 + d.length;
  }
  return m;
}

function udp6(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint16(4, u.length);
  u.set(payload, 8);
  return ipv6Frame(src, dst, 17, u, 1, 6);
}

const ORO = hex("0017 0018");
const ELAPSED = hex("0000");

describe("stateless DHCPv6", () => {
  test("Information-request -> Reply: same xid, Server ID (DUID-LL), Client ID, DNS servers, domain list", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    r.inject(udp6(GUEST_LL, ALL_DHCP, 546, 547, dhcp6Msg(11, 0xabcdef, [[1, CLIENT_DUID], [6, ORO], [8, ELAPSED]])));
    const out = r.take();
    expect(out.length).toBe(1);
    const s = out[0]!;
    expect(s.proto).toBe(17);
    expect(toHex(s.src)).toBe(toHex(STACK_LL));
    expect(toHex(s.dst)).toBe(toHex(GUEST_LL));
    expect(toHex(s.dstMac)).toBe(toHex(GUEST_MAC));
    expect(pseudoSum(s.src, s.dst, 17, s.l4)).toBe(0);
    const u = new DataView(s.l4.buffer, s.l4.byteOffset);
    expect([u.getUint16(0), u.getUint16(2), u.getUint16(4)]).toEqual([547, 546, s.l4.length]);
    const domains = hex("076578616d706c6503636f6d00 04636f7270076578616d706c6500");
    const expected = dhcp6Msg(7, 0xabcdef, [
      [2, SERVER_DUID],
      [1, CLIENT_DUID],
      [23, v6("fd00::3")],
      [24, domains],
    ]);
    expect(toHex(s.l4.subarray(8))).toBe(toHex(expected));
  });

  test("Information-request without Client ID is answered without one; with our Server ID too", () => {
    const r = new Rig();
    r.dns = { servers: [], domains: [] };
    r.inject(udp6(GUEST_LL, ALL_DHCP, 546, 547, dhcp6Msg(11, 1, [[2, SERVER_DUID]])));
    const s = r.take().find((x) => x.proto === 17)!;
    expect(toHex(s.l4.subarray(8))).toBe(toHex(dhcp6Msg(7, 1, [[2, SERVER_DUID]])));
  });

  test("Solicit -> Advertise with only Server ID, Client ID and Status NoAddrsAvail", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    const iaNa = hex("00000001 00000000 00000000");
    r.inject(udp6(GUEST_LL, ALL_DHCP, 546, 547, dhcp6Msg(1, 0x010203, [[1, CLIENT_DUID], [3, iaNa], [8, ELAPSED]])));
    const s = r.take().find((x) => x.proto === 17)!;
    const m = s.l4.subarray(8);
    expect(m[0]).toBe(2);
    expect(toHex(m.subarray(1, 4))).toBe("010203");
    expect(toHex(m.subarray(4, 4 + 14))).toBe(`0002000a${toHex(SERVER_DUID)}`);
    expect(toHex(m.subarray(18, 18 + 18))).toBe(`0001000e${toHex(CLIENT_DUID)}`);
    const dv = new DataView(m.buffer, m.byteOffset);
    expect(dv.getUint16(36)).toBe(13);
    expect(dv.getUint16(40)).toBe(2); // NoAddrsAvail
    expect(4 + 14 + 18 + 4 + dv.getUint16(38)).toBe(m.length);
  });

  test("invalid requests get nothing (RFC 8415 §16.2, §16.12) and are counted", () => {
    const r = new Rig();
    r.advanceTo(r.now);
    r.take();
    const send = (m: Uint8Array, src = GUEST_LL, dport = 547) => r.inject(udp6(src, ALL_DHCP, 546, dport, m));
    send(dhcp6Msg(11, 1, [[3, hex("00000001 00000000 00000000")]])); // IR with an IA
    send(dhcp6Msg(11, 1, [[2, hex("0003000102020202020202")]])); // IR for another server
    send(dhcp6Msg(1, 1, [[8, ELAPSED]])); // Solicit without Client ID
    send(dhcp6Msg(1, 1, [[1, CLIENT_DUID], [2, SERVER_DUID]])); // Solicit naming a server
    expect(r.stats.dropCount("dhcp6-invalid")).toBe(4);
    send(dhcp6Msg(3, 1, [[1, CLIENT_DUID]])); // Request: we assign nothing
    send(dhcp6Msg(12, 1, [])); // Relay-forward
    expect(r.stats.dropCount("dhcp6-ignored")).toBe(2);
    send(dhcp6Msg(11, 1, [[1, new Uint8Array(0)]])); // empty DUID
    send(dhcp6Msg(11, 1, [[1, new Uint8Array(131)]])); // DUID too long
    send(Uint8Array.of(11, 0, 0, 1, 0, 1, 0, 9, 1)); // option past the end
    send(Uint8Array.of(11, 0)); // no header
    expect(r.stats.dropCount("dhcp6-malformed")).toBe(4);
    send(dhcp6Msg(11, 1, []), v6("fd00::100")); // not link-local
    send(dhcp6Msg(11, 1, []), GUEST_LL, 548); // not the server port
    expect(r.stats.dropCount("ipv6-multicast")).toBe(2);
    expect(r.take().filter((s) => s.proto === 17).length).toBe(0);
  });
});

describe("hostile input", () => {
  test("random RS and DHCPv6 bodies never throw and never get a malformed answer", () => {
    const r = new Rig();
    const rng = new Prng(1600);
    for (let k = 0; k < 5000; k++) {
      const body = rng.bytes(rng.int(80));
      if (k % 2 === 0) {
        if (body.length > 0) body[0] = 133;
        if (body.length > 1 && rng.int(2) === 0) body[1] = 0;
        r.inject(ipv6Frame(k % 3 === 0 ? new Uint8Array(16) : GUEST_LL, ALL_ROUTERS, 58, body.length >= 4 ? body : Uint8Array.of(133, 0, 0, 0), 255, 2));
      } else {
        if (body.length > 0) body[0] = rng.int(2) === 0 ? 11 : 1;
        r.inject(udp6(GUEST_LL, ALL_DHCP, 546, 547, body));
      }
      r.now += 100;
    }
    for (const s of r.take()) {
      expect(pseudoSum(s.src, s.dst, s.proto, s.l4)).toBe(0);
      expect(toHex(s.src)).toBe(toHex(STACK_LL));
    }
    expect(r.stats.faultTable()).toEqual([]);
  });
});
