import { describe, expect, test } from "bun:test";
import { formatMac } from "../../../src/wire/ethernet.ts";
import { WireError } from "../../../src/wire/errors.ts";
import {
  Icmpv6Type,
  Icmpv6Unreach,
  Icmpv6View,
  NA_FLAG_OVERRIDE,
  NA_FLAG_ROUTER,
  NA_FLAG_SOLICITED,
  NDP_OPT_ABSENT,
  NDP_OPT_MALFORMED,
  NdpOpt,
  NdpOptionIter,
  NeighborAdvertView,
  NeighborSolicitView,
  RouterAdvertView,
  RouterSolicitView,
  emitIcmpv6DestUnreachable,
  emitIcmpv6EchoReply,
  emitIcmpv6PacketTooBig,
  emitIcmpv6ParamProblem,
  emitIcmpv6TimeExceeded,
  emitNeighborAdvert,
  emitNeighborSolicit,
  fillIcmpv6Checksum,
  findNdpLinkLayerAddr,
  icmpv6IsError,
} from "../../../src/wire/icmpv6.ts";
import { IPV6_MIN_MTU, Ipv6Repr, Ipv6View } from "../../../src/wire/ipv6.ts";
import { ipv6FromText, ipv6Text } from "../../../src/wire/addr.ts";
import {
  ICMP6_ECHO_REPLY,
  ICMP6_ECHO_REQUEST,
  ICMP6_PORT_UNREACH,
  NDP_NA,
  NDP_NS,
  NDP_NS_DAD,
  NDP_RS,
  UDP6,
} from "./fixtures.ts";
import { Prng, expectWireError, hex, toHex } from "./helpers.ts";

const A = (s: string) => ipv6FromText(s)!;

/** Attaches IPv6 at 14 and ICMPv6 at its payload; returns both views. */
function open(frame: Uint8Array): { ip: Ipv6View; icmp: Icmpv6View } {
  const ip = new Ipv6View();
  expect(ip.attach(frame, 14, frame.length - 14)).toBe(WireError.Ok);
  const icmp = new Icmpv6View();
  expect(icmp.attach(frame, ip.payloadOff, ip.payloadLen)).toBe(WireError.Ok);
  return { ip, icmp };
}

/** addr buffer holding src at 0 and dst at 16. */
function addrs(src: string, dst: string): Uint8Array {
  const a = new Uint8Array(32);
  a.set(A(src), 0);
  a.set(A(dst), 16);
  return a;
}

describe("Icmpv6View", () => {
  test("real echo request: fields and pseudo-header checksum", () => {
    const { ip, icmp } = open(ICMP6_ECHO_REQUEST);
    expect(icmp.type).toBe(Icmpv6Type.EchoRequest);
    expect(icmp.code).toBe(0);
    expect(icmp.checksum).toBe(0x9b9f);
    expect(icmp.ident).toBe(0x14c9);
    expect(icmp.seq).toBe(1);
    expect(icmp.payloadLen).toBe(56);
    expect(icmp.isError).toBe(false);
    expect(icmp.verifyChecksum(ip.buf, ip.srcOff, ip.dstOff)).toBe(true);
    // The pseudo-header sum is symmetric in src/dst, so a changed address (not a swap) must fail.
    expect(icmp.verifyChecksum(addrs("fd00::101", "fd00::2"), 0, 16)).toBe(false);
  });

  test("every truncation; setters", () => {
    const v = new Icmpv6View();
    for (let len = 0; len <= 64; len++) {
      expect(v.attach(ICMP6_ECHO_REQUEST, 54, len)).toBe(len < 8 ? WireError.Truncated : WireError.Ok);
    }
    const b = new Uint8Array(8);
    v.wrap(b, 0, 8);
    v.type = 2;
    v.code = 0;
    v.param32 = 1280;
    expect(v.mtu).toBe(1280);
    v.ident = 1;
    v.seq = 2;
    expect(v.param32).toBe(0x00010002);
    v.checksum = 0xabcd;
    expect(v.checksum).toBe(0xabcd);
    expect(icmpv6IsError(1)).toBe(true);
    expect(icmpv6IsError(127)).toBe(true);
    expect(icmpv6IsError(128)).toBe(false);
  });

  test("echo reply builder equals the kernel's reply", () => {
    const { icmp } = open(ICMP6_ECHO_REQUEST);
    const out = new Uint8Array(64);
    const n = emitIcmpv6EchoReply(out, 0, icmp);
    expect(n).toBe(64);
    fillIcmpv6Checksum(out, 0, n, addrs("fd00::2", "fd00::100"), 0, 16);
    expect(toHex(out)).toBe(toHex(ICMP6_ECHO_REPLY, 54));
    // In place, then checksum through the view using the (rewritten) IPv6 header.
    const frame = ICMP6_ECHO_REQUEST.slice();
    const { ip, icmp: req } = open(frame);
    expect(emitIcmpv6EchoReply(frame, req.off, req)).toBe(64);
    const r = new Ipv6Repr().parse(ip);
    [r.src, r.dst] = [r.dst, r.src];
    r.flowLabel = 0xb6450;
    r.emit(frame, 14);
    req.fillChecksum(frame, ip.srcOff, ip.dstOff);
    expect(toHex(frame, 14)).toBe(toHex(ICMP6_ECHO_REPLY, 14));
    expect(emitIcmpv6EchoReply(new Uint8Array(10), 0, req)).toBe(0);
  });

  test("port unreachable builder equals the kernel's", () => {
    const inv = new Ipv6View();
    expect(inv.attach(UDP6, 14, UDP6.length - 14)).toBe(WireError.Ok);
    const out = new Uint8Array(200);
    const n = emitIcmpv6DestUnreachable(out, 0, Icmpv6Unreach.PortUnreachable, inv.buf, inv.off, inv.len);
    expect(n).toBe(63);
    fillIcmpv6Checksum(out, 0, n, inv.buf, inv.dstOff, inv.srcOff);
    expect(toHex(out, 0, n)).toBe(toHex(ICMP6_PORT_UNREACH, 54));
  });

  test("errors quote as much as fits in 1280 bytes (RFC 4443 §2.4(c))", () => {
    const inv = new Prng(4443).bytes(3000);
    const out = new Uint8Array(4000);
    const n = emitIcmpv6DestUnreachable(out, 40, Icmpv6Unreach.AdminProhibited, inv, 0, 3000);
    expect(40 + n).toBe(IPV6_MIN_MTU);
    expect(toHex(out, 48, n - 8)).toBe(toHex(inv, 0, n - 8));
    const p = emitIcmpv6PacketTooBig(out, 0, 1400, inv, 0, 100);
    const v = new Icmpv6View();
    expect(v.attach(out, 0, p)).toBe(WireError.Ok);
    expect(v.type).toBe(Icmpv6Type.PacketTooBig);
    expect(v.mtu).toBe(1400);
    expect(emitIcmpv6TimeExceeded(out, 0, 1, inv, 0, 10)).toBe(18);
    expect(out[0]).toBe(3);
    expect(emitIcmpv6ParamProblem(out, 0, 1, 40, inv, 0, 10)).toBe(18);
    expect(v.attach(out, 0, 18)).toBe(WireError.Ok);
    expect(v.param32).toBe(40);
    expect(emitIcmpv6DestUnreachable(new Uint8Array(50), 0, 0, inv, 0, 3000)).toBe(50);
    expect(emitIcmpv6DestUnreachable(new Uint8Array(7), 0, 0, inv, 0, 3000)).toBe(0);
  });
});

describe("Neighbor Discovery", () => {
  test("real NS with a Source Link-Layer Address option", () => {
    const { ip, icmp } = open(NDP_NS);
    expect(ip.hopLimit).toBe(255);
    expect(icmp.verifyChecksum(ip.buf, ip.srcOff, ip.dstOff)).toBe(true);
    const ns = new NeighborSolicitView();
    expect(ns.attach(icmp)).toBe(WireError.Ok);
    expect(ipv6Text(ns.buf, ns.targetOff)).toBe("fd00::2");
    expect(ns.optionsLen).toBe(8);
    const mac = findNdpLinkLayerAddr(ns.buf, ns.optionsOff, ns.optionsLen, NdpOpt.SourceLinkAddr);
    expect(mac).toBe(ns.optionsOff + 2);
    expect(formatMac(NDP_NS, mac)).toBe("52:54:00:12:34:56");
    expect(findNdpLinkLayerAddr(ns.buf, ns.optionsOff, ns.optionsLen, NdpOpt.TargetLinkAddr)).toBe(NDP_OPT_ABSENT);
  });

  test("real NA; our NA for the real NS equals the kernel's", () => {
    const { ip, icmp } = open(NDP_NA);
    expect(icmp.verifyChecksum(ip.buf, ip.srcOff, ip.dstOff)).toBe(true);
    const na = new NeighborAdvertView();
    expect(na.attach(icmp)).toBe(WireError.Ok);
    expect(na.solicited).toBe(true);
    expect(na.override).toBe(true);
    expect(na.router).toBe(false);
    expect(na.flags).toBe(NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE);
    expect(ipv6Text(na.buf, na.targetOff)).toBe("fd00::2");
    const mac = findNdpLinkLayerAddr(na.buf, na.optionsOff, na.optionsLen, NdpOpt.TargetLinkAddr);
    expect(formatMac(NDP_NA, mac)).toBe("70:71:aa:4b:29:aa");

    // Answer the real NS the way the stack would.
    const q = open(NDP_NS);
    const ns = new NeighborSolicitView();
    expect(ns.attach(q.icmp)).toBe(WireError.Ok);
    const out = new Uint8Array(86);
    const ipOut = new Ipv6Repr({ nextHeader: 58, hopLimit: 255, payloadLen: 32 });
    ipOut.src.set(NDP_NS.subarray(ns.targetOff, ns.targetOff + 16));
    q.ip.copySrc(ipOut.dst);
    ipOut.emit(out, 14);
    out.set(NDP_NA.subarray(0, 14)); // Ethernet header as the kernel wrote it
    const n = emitNeighborAdvert(out, 54, NDP_NS, ns.targetOff, hex("7071aa4b29aa"));
    expect(n).toBe(32);
    fillIcmpv6Checksum(out, 54, n, out, 14 + 8, 14 + 24);
    expect(toHex(out)).toBe(toHex(NDP_NA));
    expect(emitNeighborAdvert(new Uint8Array(31), 0, NDP_NS, ns.targetOff, out)).toBe(0);

    na.flags = NA_FLAG_ROUTER;
    expect(na.router).toBe(true);
    expect(na.solicited).toBe(false);
  });

  test("NS builder round trip, with and without the SLLA option", () => {
    const out = new Uint8Array(40);
    const icmp = new Icmpv6View();
    const ns = new NeighborSolicitView();
    let n = emitNeighborSolicit(out, 0, A("fd00::100"), 0, hex("7071aa4b29aa"));
    expect(n).toBe(32);
    expect(icmp.attach(out, 0, n)).toBe(WireError.Ok);
    expect(ns.attach(icmp)).toBe(WireError.Ok);
    expect(ipv6Text(out, ns.targetOff)).toBe("fd00::100");
    expect(formatMac(out, findNdpLinkLayerAddr(out, ns.optionsOff, ns.optionsLen, NdpOpt.SourceLinkAddr))).toBe(
      "70:71:aa:4b:29:aa",
    );
    n = emitNeighborSolicit(out, 0, A("fd00::100"), 0, null);
    expect(n).toBe(24);
    expect(icmp.attach(out, 0, n)).toBe(WireError.Ok);
    expect(ns.attach(icmp)).toBe(WireError.Ok);
    expect(ns.optionsLen).toBe(0);
    expect(findNdpLinkLayerAddr(out, ns.optionsOff, 0, NdpOpt.SourceLinkAddr)).toBe(NDP_OPT_ABSENT);
  });

  test("real DAD NS with a Nonce option; unknown options are iterated", () => {
    const { ip, icmp } = open(NDP_NS_DAD);
    expect(icmp.verifyChecksum(ip.buf, ip.srcOff, ip.dstOff)).toBe(true);
    const ns = new NeighborSolicitView();
    expect(ns.attach(icmp)).toBe(WireError.Ok);
    const it = new NdpOptionIter().reset(ns.buf, ns.optionsOff, ns.optionsLen);
    const seen: number[] = [];
    while (it.next()) seen.push(it.type, it.optLen);
    expect(seen).toEqual([14, 8]);
    expect(it.error).toBe(WireError.Ok);
    expect(findNdpLinkLayerAddr(ns.buf, ns.optionsOff, ns.optionsLen, NdpOpt.SourceLinkAddr)).toBe(NDP_OPT_ABSENT);
  });

  test("real Router Solicitation", () => {
    const { ip, icmp } = open(NDP_RS);
    expect(icmp.verifyChecksum(ip.buf, ip.srcOff, ip.dstOff)).toBe(true);
    const rs = new RouterSolicitView();
    expect(rs.attach(icmp)).toBe(WireError.Ok);
    expect(rs.optionsLen).toBe(8);
    const mac = findNdpLinkLayerAddr(rs.buf, rs.optionsOff, rs.optionsLen, NdpOpt.SourceLinkAddr);
    expect(formatMac(NDP_RS, mac)).toBe("52:54:00:12:34:56");
    expect(new NeighborSolicitView().attach(icmp)).toBe(WireError.Malformed); // wrong type
  });

  test("Router Advertisement fields", () => {
    const b = hex(`86 00 0000 40 c0 0708 00007530 000003e8 0101 7071aa4b29aa 0501 0000 000005dc`);
    const icmp = new Icmpv6View();
    expect(icmp.attach(b, 0, b.length)).toBe(WireError.Ok);
    const ra = new RouterAdvertView();
    expect(ra.attach(icmp)).toBe(WireError.Ok);
    expect(ra.curHopLimit).toBe(64);
    expect(ra.managed).toBe(true);
    expect(ra.otherConfig).toBe(true);
    expect(ra.routerLifetime).toBe(1800);
    expect(ra.reachableTime).toBe(30000);
    expect(ra.retransTimer).toBe(1000);
    const it = new NdpOptionIter().reset(b, ra.optionsOff, ra.optionsLen);
    const seen: number[] = [];
    while (it.next()) seen.push(it.type);
    expect(seen).toEqual([NdpOpt.SourceLinkAddr, NdpOpt.Mtu]);
    expect(icmp.attach(b, 0, 15)).toBe(WireError.Ok);
    expect(ra.attach(icmp)).toBe(WireError.Truncated);
  });

  test("hostile NDP: bad code, multicast target, truncation, zero-length and overrunning options", () => {
    const ns = new NeighborSolicitView();
    const na = new NeighborAdvertView();
    const icmp = new Icmpv6View();
    const base = NDP_NS.slice(54);
    for (let len = 8; len <= base.length; len++) {
      expect(icmp.attach(base, 0, len)).toBe(WireError.Ok);
      expect(ns.attach(icmp)).toBe(len < 24 ? WireError.Truncated : WireError.Ok);
      if (len >= 24) {
        const r = findNdpLinkLayerAddr(base, 24, len - 24, NdpOpt.SourceLinkAddr);
        expect(r).toBe(len === 24 ? NDP_OPT_ABSENT : len === 32 ? 26 : NDP_OPT_MALFORMED);
      }
    }
    let b = base.slice();
    b[1] = 1;
    expect(icmp.attach(b, 0, b.length)).toBe(WireError.Ok);
    expect(ns.attach(icmp)).toBe(WireError.Malformed);
    b = base.slice();
    b[8] = 0xff; // multicast target
    expect(icmp.attach(b, 0, b.length)).toBe(WireError.Ok);
    expect(ns.attach(icmp)).toBe(WireError.Malformed);
    expect(na.attach(icmp)).toBe(WireError.Malformed);

    const opts = (h: string) => {
      const o = hex(h);
      return [o, findNdpLinkLayerAddr(o, 0, o.length, NdpOpt.SourceLinkAddr)] as const;
    };
    expect(opts("0100 525400123456")[1]).toBe(NDP_OPT_MALFORMED); // length 0
    expect(opts("0101 525400123456 0e00 000000000000")[1]).toBe(NDP_OPT_MALFORMED); // valid, then length 0
    expect(opts("0102 525400123456")[1]).toBe(NDP_OPT_MALFORMED); // claims 16 bytes, has 8
    expect(opts("0101 525400123456 0e01")[1]).toBe(NDP_OPT_MALFORMED); // stray trailing bytes
    expect(opts("0102 525400123456 0000000000000000")[1]).toBe(NDP_OPT_ABSENT); // non-Ethernet size: ignored
    expect(opts("0e01 000000000000 0101 525400123456")[1]).toBe(10); // found after an unknown option
    const it = new NdpOptionIter();
    it.reset(hex("0100"), 0, 2);
    expect(it.next()).toBe(false);
    expect(it.error).toBe(WireError.Truncated);
    it.reset(hex("0100000000000000"), 0, 8);
    expect(it.next()).toBe(false);
    expect(it.error).toBe(WireError.Malformed);
    it.reset(new Uint8Array(4), 2, 8);
    expect(it.next()).toBe(false);
    expect(it.error).toBe(WireError.BadBounds);
  });

  test("option walks over random bytes terminate and report WireError codes", () => {
    const rng = new Prng(4861);
    const it = new NdpOptionIter();
    for (let i = 0; i < 3000; i++) {
      const b = rng.bytes(rng.int(200));
      it.reset(b, 0, b.length);
      let steps = 0;
      while (it.next()) {
        steps++;
        expect(it.optLen).toBeGreaterThanOrEqual(8);
        expect(it.optOff + it.optLen).toBeLessThanOrEqual(b.length);
      }
      expect(steps).toBeLessThanOrEqual(b.length / 8);
      expectWireError(it.error);
      const r = findNdpLinkLayerAddr(b, 0, b.length, 1);
      expect(r === NDP_OPT_ABSENT || r === NDP_OPT_MALFORMED || (r >= 2 && r + 6 <= b.length)).toBe(true);
    }
  });
});
