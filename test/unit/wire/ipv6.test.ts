import { describe, expect, test } from "bun:test";
import { formatMac } from "../../../src/wire/ethernet.ts";
import { WireError } from "../../../src/wire/errors.ts";
import { IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_ESP, IPPROTO_HOPOPTS, IPPROTO_ICMPV6, IPPROTO_NONE, IPPROTO_TCP } from "../../../src/wire/ipv4.ts";
import {
  IPV6_ALL_NODES,
  IPV6_MAX_EXT_HEADERS,
  Ipv6ExtResult,
  Ipv6Repr,
  Ipv6View,
  ipv6Equal,
  ipv6IsLinkLocal,
  ipv6IsLoopback,
  ipv6IsMulticast,
  ipv6IsUnspecified,
  ipv6IsV4Mapped,
  ipv6MulticastMac,
  isSolicitedNodeFor,
  solicitedNodeMulticast,
  walkExtensions,
} from "../../../src/wire/ipv6.ts";
import { ipv6FromText, ipv6Text } from "../../../src/wire/addr.ts";
import { ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, IPV6_FRAG_FIRST_PREFIX, IPV6_FRAG_LAST, MLD_HBH, NDP_NS } from "./fixtures.ts";
import { Prng, expectWireError, hex, toHex } from "./helpers.ts";

const A = (s: string) => ipv6FromText(s)!;

/** An IPv6 packet: fixed header with next header `nh`, then `body`. */
function v6(nh: number, body: Uint8Array, payloadLen = body.length): Uint8Array {
  const r = new Ipv6Repr({ src: A("fd00::100"), dst: A("fd00::2"), nextHeader: nh, payloadLen, hopLimit: 64 });
  const b = new Uint8Array(40 + body.length);
  r.emit(b, 0);
  b.set(body, 40);
  return b;
}

describe("Ipv6View", () => {
  test("parses a real ICMPv6 echo request", () => {
    const v = new Ipv6View();
    expect(v.attach(ICMP6_ECHO_REQUEST, 14, ICMP6_ECHO_REQUEST.length - 14)).toBe(WireError.Ok);
    expect(v.version).toBe(6);
    expect(v.trafficClass).toBe(0);
    expect(v.flowLabel).toBe(0x2652c);
    expect(v.payloadLen).toBe(64);
    expect(v.len).toBe(104);
    expect(v.nextHeader).toBe(IPPROTO_ICMPV6);
    expect(v.hopLimit).toBe(64);
    expect(ipv6Text(v.buf, v.srcOff)).toBe("fd00::100");
    expect(ipv6Text(v.buf, v.dstOff)).toBe("fd00::2");
    expect(v.srcOff).toBe(22);
    expect(v.dstOff).toBe(38);
    expect(v.payloadOff).toBe(54);
    expect(v.srcEquals(A("fd00::100"))).toBe(true);
    expect(v.dstEquals(A("fd00::100"))).toBe(false);
    const out = new Uint8Array(20);
    v.copyDst(out, 2);
    expect(ipv6Text(out, 2)).toBe("fd00::2");
  });

  test("setters: traffic class and flow label share bytes without clobbering each other", () => {
    const b = ICMP6_ECHO_REQUEST.slice(14);
    const v = new Ipv6View();
    expect(v.attach(b, 0, b.length)).toBe(WireError.Ok);
    v.trafficClass = 0xab;
    expect(v.flowLabel).toBe(0x2652c);
    v.flowLabel = 0xfedcb;
    expect(v.trafficClass).toBe(0xab);
    expect(v.flowLabel).toBe(0xfedcb);
    expect(v.version).toBe(6);
    v.payloadLen = 10;
    v.nextHeader = 6;
    v.hopLimit = 255;
    expect([v.payloadLen, v.nextHeader, v.hopLimit]).toEqual([10, 6, 255]);
    v.setSrc(A("::1"));
    v.setDst(IPV6_ALL_NODES);
    expect(ipv6Text(b, 8)).toBe("::1");
    expect(ipv6Text(b, 24)).toBe("ff02::1");
  });

  test("Repr emit reproduces the kernel's echo reply header; round trip", () => {
    const r = new Ipv6Repr({
      src: A("fd00::2"),
      dst: A("fd00::100"),
      nextHeader: IPPROTO_ICMPV6,
      payloadLen: 64,
      hopLimit: 64,
      flowLabel: 0xb6450,
    });
    const out = new Uint8Array(40);
    expect(r.emit(out, 0)).toBe(40);
    expect(toHex(out)).toBe(toHex(ICMP6_ECHO_REPLY, 14, 40));
    const rng = new Prng(8200);
    const v = new Ipv6View();
    for (let i = 0; i < 300; i++) {
      const x = new Ipv6Repr({
        src: rng.bytes(16),
        dst: rng.bytes(16),
        nextHeader: rng.byte(),
        payloadLen: rng.int(100),
        hopLimit: rng.byte(),
        trafficClass: rng.byte(),
        flowLabel: rng.int(1 << 20),
      });
      if (x.payloadLen === 0 && x.nextHeader === 0) x.nextHeader = 59;
      const b = new Uint8Array(3 + 40 + x.payloadLen);
      x.emit(b, 3);
      expect(v.attach(b, 3, b.length - 3)).toBe(WireError.Ok);
      expect({ ...new Ipv6Repr().parse(v) }).toEqual({ ...x });
    }
  });

  test("hostile: truncations, lying payload length, version, jumbogram", () => {
    const pkt = ICMP6_ECHO_REQUEST.subarray(14);
    const v = new Ipv6View();
    for (let len = 0; len <= pkt.length; len++) {
      const e = v.attach(pkt, 0, len);
      expect(e).toBe(len < 40 ? WireError.Truncated : len < 104 ? WireError.BadLength : WireError.Ok);
    }
    const b = pkt.slice();
    b[0] = 0x40;
    expect(v.attach(b, 0, b.length)).toBe(WireError.BadVersion);
    // Trailing bytes beyond Payload Length (link padding) are excluded.
    const padded = new Uint8Array(pkt.length + 10);
    padded.set(pkt);
    expect(v.attach(padded, 0, padded.length)).toBe(WireError.Ok);
    expect(v.len).toBe(104);
    // Payload Length 0 with Hop-by-Hop next: a jumbogram (RFC 2675).
    expect(v.attach(v6(0, new Uint8Array(8), 0), 0, 48)).toBe(WireError.Unsupported);
    // Payload Length 0 with No Next Header is a legal empty packet.
    expect(v.attach(v6(59, new Uint8Array(0)), 0, 40)).toBe(WireError.Ok);
    const ext = new Ipv6ExtResult();
    expect(walkExtensions(v, ext)).toBe(WireError.Ok);
    expect(ext.protocol).toBe(59);
    expect(ext.offset).toBe(40);
  });
});

describe("walkExtensions", () => {
  test("real MLDv2 report: Hop-by-Hop then ICMPv6", () => {
    const v = new Ipv6View();
    expect(v.attach(MLD_HBH, 14, MLD_HBH.length - 14)).toBe(WireError.Ok);
    const r = new Ipv6ExtResult();
    expect(walkExtensions(v, r)).toBe(WireError.Ok);
    expect(r.protocol).toBe(IPPROTO_ICMPV6);
    expect(r.offset).toBe(14 + 48);
    expect(r.nextHeaderFieldOff).toBe(14 + 40);
    expect(r.extCount).toBe(1);
    expect(r.hasFragment).toBe(false);
    expect(r.fragHeaderOff).toBe(-1);
    expect(MLD_HBH[r.offset]).toBe(143); // MLDv2 report type
  });

  test("real fragments: first (patched to its captured length) and last", () => {
    const v = new Ipv6View();
    const r = new Ipv6ExtResult();
    const last = IPV6_FRAG_LAST;
    expect(v.attach(last, 14, last.length - 14)).toBe(WireError.Ok);
    expect(walkExtensions(v, r)).toBe(WireError.Ok);
    expect(r.hasFragment).toBe(true);
    expect(r.fragOffset).toBe(2896);
    expect(r.moreFragments).toBe(false);
    expect(r.fragIdent).toBe(0x14293af7);
    expect(r.fragHeaderOff).toBe(54);
    expect(r.fragmentableOff).toBe(62);
    expect(r.fragPrevNextHeaderOff).toBe(14 + 6);
    expect(r.protocol).toBe(IPPROTO_ICMPV6);
    expect(r.offset).toBe(62);
    expect(r.extCount).toBe(1);

    // The stored first fragment is cut short: its Payload Length lies.
    const first = IPV6_FRAG_FIRST_PREFIX.slice();
    expect(v.attach(first, 14, first.length - 14)).toBe(WireError.BadLength);
    first[18] = 0;
    first[19] = first.length - 54;
    expect(v.attach(first, 14, first.length - 14)).toBe(WireError.Ok);
    expect(walkExtensions(v, r)).toBe(WireError.Ok);
    expect(r.fragOffset).toBe(0);
    expect(r.moreFragments).toBe(true);
    expect(r.fragIdent).toBe(0x14293af7);
    expect(first[r.offset]).toBe(128); // echo request begins the fragmentable part
  });

  test("Hop-by-Hop + Fragment (built from the real headers)", () => {
    const body = hex(`
      2c 00 01 04 00000000
      3a 00 0001 14293af7
      80003938 14ca0001`);
    const b = v6(IPPROTO_HOPOPTS, body);
    const v = new Ipv6View();
    const r = new Ipv6ExtResult();
    expect(v.attach(b, 0, b.length)).toBe(WireError.Ok);
    expect(walkExtensions(v, r)).toBe(WireError.Ok);
    expect(r.extCount).toBe(2);
    expect(r.hasFragment).toBe(true);
    expect(r.fragHeaderOff).toBe(48);
    expect(r.fragPrevNextHeaderOff).toBe(40);
    expect(r.fragmentableOff).toBe(56);
    expect(r.moreFragments).toBe(true);
    expect(r.protocol).toBe(58);
    expect(r.offset).toBe(56);
    expect(r.nextHeaderFieldOff).toBe(48);
  });

  test("Destination Options + Routing + Destination Options + TCP", () => {
    const body = hex(`
      2b 00 0104 00000000
      3c 01 00 03 00000000 0000000000000000
      06 00 0104 00000000
      0000000000000000000000005000000000000000`);
    const b = v6(IPPROTO_DSTOPTS, body);
    const v = new Ipv6View();
    const r = new Ipv6ExtResult();
    expect(v.attach(b, 0, b.length)).toBe(WireError.Ok);
    expect(walkExtensions(v, r)).toBe(WireError.Ok);
    expect(r.extCount).toBe(3);
    expect(r.routingOff).toBe(48);
    expect(r.protocol).toBe(IPPROTO_TCP);
    expect(r.offset).toBe(40 + 8 + 16 + 8);
  });

  test("ESP, AH and No Next Header end the walk", () => {
    for (const p of [IPPROTO_ESP, IPPROTO_AH, IPPROTO_NONE]) {
      const b = v6(IPPROTO_DSTOPTS, hex(`${p.toString(16).padStart(2, "0")} 00 0104 00000000 ffffffffffffffff`));
      const v = new Ipv6View();
      const r = new Ipv6ExtResult();
      expect(v.attach(b, 0, b.length)).toBe(WireError.Ok);
      expect(walkExtensions(v, r)).toBe(WireError.Ok);
      expect(r.protocol).toBe(p);
      expect(r.offset).toBe(48);
    }
  });

  test("hostile chains: HBH not first, loops past the cap, overruns", () => {
    const v = new Ipv6View();
    const r = new Ipv6ExtResult();
    const run = (b: Uint8Array) => {
      expect(v.attach(b, 0, b.length)).toBe(WireError.Ok);
      return walkExtensions(v, r);
    };
    // Hop-by-Hop after Destination Options (RFC 8200 §4.1).
    expect(run(v6(60, hex("00 00 0104 00000000 3a 00 0104 00000000")))).toBe(WireError.Malformed);
    // A "loop": Destination Options naming itself over and over.
    const chain = (n: number, last: number) => {
      const body = new Uint8Array(8 * n + 8);
      for (let i = 0; i < n; i++) {
        body[8 * i] = i === n - 1 ? last : 60;
        body[8 * i + 2] = 1;
        body[8 * i + 3] = 4;
      }
      return v6(60, body);
    };
    expect(run(chain(IPV6_MAX_EXT_HEADERS, 59))).toBe(WireError.Ok);
    expect(r.extCount).toBe(IPV6_MAX_EXT_HEADERS);
    expect(run(chain(IPV6_MAX_EXT_HEADERS + 1, 59))).toBe(WireError.TooManyExtensions);
    expect(run(chain(200, 60))).toBe(WireError.TooManyExtensions);
    // Extension claiming 2048 bytes in a 16-byte payload.
    expect(run(v6(43, hex("3a ff 0000 00000000 0000000000000000")))).toBe(WireError.Truncated);
    // Extension needing 16 bytes with only 8 present.
    expect(run(v6(60, hex("3a 01 0000 00000000")))).toBe(WireError.Truncated);
    // Fewer than 8 bytes left for an extension / fragment header.
    expect(run(v6(60, hex("3a 00 0000")))).toBe(WireError.Truncated);
    expect(run(v6(44, hex("3a 00 0000 0000")))).toBe(WireError.Truncated);
    // A chain that ends exactly at the end of the packet with no upper layer bytes.
    expect(run(v6(60, hex("06 00 0104 00000000")))).toBe(WireError.Ok);
    expect(r.protocol).toBe(6);
    expect(r.offset).toBe(48);
  });

  test("every truncation of a real extension chain is an error or Ok, never a throw", () => {
    const v = new Ipv6View();
    const r = new Ipv6ExtResult();
    for (const f of [MLD_HBH, IPV6_FRAG_LAST]) {
      const pkt = f.slice(14);
      for (let len = 40; len <= pkt.length; len++) {
        const b = pkt.slice(0, len);
        b[4] = (len - 40) >>> 8;
        b[5] = (len - 40) & 0xff;
        const e = v.attach(b, 0, len);
        expectWireError(e);
        if (e === WireError.Ok) {
          const w = walkExtensions(v, r);
          expectWireError(w);
          if (w === WireError.Ok) expect(r.offset).toBeLessThanOrEqual(len);
        }
      }
    }
  });
});

describe("IPv6 addresses", () => {
  test("solicited-node multicast and its Ethernet address (the real NS frame's destinations)", () => {
    const target = A("fd00::2");
    const sn = new Uint8Array(16);
    solicitedNodeMulticast(target, 0, sn);
    expect(ipv6Text(sn)).toBe("ff02::1:ff00:2");
    expect(ipv6Equal(sn, 0, NDP_NS, 14 + 24)).toBe(true);
    expect(isSolicitedNodeFor(NDP_NS, 38, target, 0)).toBe(true);
    expect(isSolicitedNodeFor(NDP_NS, 38, A("fd00::3"), 0)).toBe(false);
    const mac = new Uint8Array(6);
    ipv6MulticastMac(sn, 0, mac);
    expect(formatMac(mac)).toBe("33:33:ff:00:00:02");
    expect(formatMac(NDP_NS, 0)).toBe("33:33:ff:00:00:02");
    solicitedNodeMulticast(A("fe80::5054:ff:fe12:3456"), 0, sn);
    expect(ipv6Text(sn)).toBe("ff02::1:ff12:3456");
  });

  test("address classes", () => {
    expect(ipv6IsMulticast(A("ff02::1"))).toBe(true);
    expect(ipv6IsMulticast(A("fd00::1"))).toBe(false);
    expect(ipv6IsUnspecified(A("::"))).toBe(true);
    expect(ipv6IsUnspecified(A("::1"))).toBe(false);
    expect(ipv6IsLoopback(A("::1"))).toBe(true);
    expect(ipv6IsLoopback(A("::2"))).toBe(false);
    expect(ipv6IsLinkLocal(A("fe80::1"))).toBe(true);
    expect(ipv6IsLinkLocal(A("febf::1"))).toBe(true);
    expect(ipv6IsLinkLocal(A("fec0::1"))).toBe(false);
    expect(ipv6IsV4Mapped(A("::ffff:1.2.3.4"))).toBe(true);
    expect(ipv6IsV4Mapped(A("::1.2.3.4"))).toBe(false);
  });
});
