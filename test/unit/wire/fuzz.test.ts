// Hostile-input sweep: seeded random buffers and mutated real packets fed to
// every view. Requirements checked: nothing throws, every result is a
// WireError code, offsets/lengths reported after a successful attach stay
// inside the window, and (through a guarding Proxy) no getter reads a byte
// outside the window it was given.
import { describe, expect, test } from "bun:test";
import { ArpView } from "../../../src/wire/arp.ts";
import { EthernetView } from "../../../src/wire/ethernet.ts";
import { isWireError } from "../../../src/wire/errors.ts";
import { Icmpv4View } from "../../../src/wire/icmpv4.ts";
import {
  Icmpv6View,
  NdpOptionIter,
  NeighborAdvertView,
  NeighborSolicitView,
  RouterAdvertView,
  RouterSolicitView,
  findNdpLinkLayerAddr,
} from "../../../src/wire/icmpv6.ts";
import { Ipv4View } from "../../../src/wire/ipv4.ts";
import { Ipv6ExtResult, Ipv6View, walkExtensions } from "../../../src/wire/ipv6.ts";
import { TcpOptions, TcpView, parseTcpOptions } from "../../../src/wire/tcp.ts";
import { UdpView } from "../../../src/wire/udp.ts";
import { Dhcp4Options, Dhcp4View, parseDhcp4Options } from "../../../src/wire/dhcp4.ts";
import { VirtioNetHdr, completePartialChecksum } from "../../../src/wire/vnet.ts";
import * as F from "./fixtures.ts";
import { Prng } from "./helpers.ts";

const ITER = 10_000;

/** Fails the test (by throwing a distinctive error) on any index read outside [lo, hi). */
function guarded(b: Uint8Array, lo: number, hi: number): Uint8Array {
  return new Proxy(b, {
    get(target, prop) {
      if (typeof prop === "string" && prop.length > 0 && prop.charCodeAt(0) >= 48 && prop.charCodeAt(0) <= 57) {
        const i = Number(prop);
        if (i < lo || i >= hi) throw new Error(`out-of-window read at ${i} (window ${lo}..${hi})`);
        return target[i];
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

function codeOk(e: unknown): void {
  if (!isWireError(e)) throw new Error(`not a WireError: ${String(e)}`);
}

const eth = new EthernetView();
const arp = new ArpView();
const ip4 = new Ipv4View();
const ip6 = new Ipv6View();
const ext = new Ipv6ExtResult();
const icmp4 = new Icmpv4View();
const icmp6 = new Icmpv6View();
const ns = new NeighborSolicitView();
const na = new NeighborAdvertView();
const rs = new RouterSolicitView();
const ra = new RouterAdvertView();
const it = new NdpOptionIter();
const udp = new UdpView();
const dhcp = new Dhcp4View();
const dhcpOpts = new Dhcp4Options();
const tcp = new TcpView();
const topts = new TcpOptions();
const vnet = new VirtioNetHdr();

function inWindow(off: number, len: number, lo: number, hi: number): void {
  if (!(off >= lo && len >= 0 && off + len <= hi)) throw new Error(`window escape: ${off}+${len} not in ${lo}..${hi}`);
}

/** Pseudo-header addresses for L4 views attached without an IP layer (fd00::100 -> fd00::2 style). */
const ADDRS: Uint8Array = new Uint8Array(32).fill(0xfd);
let aBuf = ADDRS;
let aSrc = 0;
let aDst = 16;

/** Runs every parser that applies to b[off, off+len) as an L4 payload; v6 pseudo header from aBuf/aSrc/aDst. */
function l4(b: Uint8Array, off: number, len: number, proto: number, v6: boolean): void {
  const hi = off + len;
  if (proto === 6) {
    const e = tcp.attach(b, off, len);
    codeOk(e);
    if (e === 0) {
      inWindow(tcp.payloadOff, tcp.payloadLen, off, hi);
      void (tcp.srcPort + tcp.dstPort + tcp.seq + tcp.ack + tcp.flags + tcp.window + tcp.urgentPtr + tcp.segLen);
      codeOk(parseTcpOptions(tcp, topts));
      if (topts.sackCount > 4 || topts.windowScale > 14) throw new Error("option bounds");
      if (v6) tcp.verifyChecksumV6(aBuf, aSrc, aDst);
      else tcp.verifyChecksumV4(ip4.src, ip4.dst);
    }
  } else if (proto === 17) {
    const e = udp.attach(b, off, len);
    codeOk(e);
    if (e === 0) {
      inWindow(udp.payloadOff, udp.payloadLen, off, hi);
      void (udp.srcPort + udp.dstPort + udp.length + udp.checksum);
      if (v6) udp.verifyChecksumV6(aBuf, aSrc, aDst);
      else udp.verifyChecksumV4(ip4.src, ip4.dst);
      dhcp4(b, udp.payloadOff, udp.payloadLen);
    }
  } else if (proto === 1 && !v6) {
    const e = icmp4.attach(b, off, len);
    codeOk(e);
    if (e === 0) {
      inWindow(icmp4.payloadOff, icmp4.payloadLen, off, hi);
      void (icmp4.type + icmp4.code + icmp4.ident + icmp4.seq + icmp4.restOfHeader);
      icmp4.verifyChecksum();
      if (icmp4.isError) ipv4(b, icmp4.payloadOff, icmp4.payloadLen, 1);
    }
  } else if (proto === 58 && v6) {
    const e = icmp6.attach(b, off, len);
    codeOk(e);
    if (e === 0) {
      inWindow(icmp6.payloadOff, icmp6.payloadLen, off, hi);
      void (icmp6.type + icmp6.code + icmp6.ident + icmp6.seq + icmp6.param32);
      icmp6.verifyChecksum(aBuf, aSrc, aDst);
      for (const nd of [ns, na, rs, ra]) {
        const r = nd.attach(icmp6);
        codeOk(r);
        if (r === 0) {
          inWindow(nd.optionsOff, nd.optionsLen, off, hi);
          const f = findNdpLinkLayerAddr(b, nd.optionsOff, nd.optionsLen, 1);
          if (f >= 0) inWindow(f, 6, nd.optionsOff, nd.optionsOff + nd.optionsLen);
          it.reset(b, nd.optionsOff, nd.optionsLen);
          let n = 0;
          while (it.next()) if (++n > 1000) throw new Error("unbounded option walk");
          codeOk(it.error);
        }
      }
      if (ra.attach(icmp6) === 0) void (ra.curHopLimit + ra.routerLifetime + ra.reachableTime + ra.retransTimer);
      if (na.attach(icmp6) === 0) void (na.flags + na.targetOff);
    }
  }
}

/** A DHCPv4 message and its options (any UDP payload, as the server sees port 67). */
function dhcp4(b: Uint8Array, off: number, len: number): void {
  const e = dhcp.attach(b, off, len);
  codeOk(e);
  if (e !== 0) return;
  void (dhcp.op + dhcp.htype + dhcp.hlen + dhcp.xid + dhcp.flags + dhcp.ciaddr + dhcp.yiaddr + dhcp.giaddr);
  inWindow(dhcp.chaddrOff, 16, off, off + len);
  codeOk(parseDhcp4Options(dhcp, dhcpOpts));
}

/** IPv4 and everything above it; depth stops ICMP-in-ICMP recursion. */
function ipv4(b: Uint8Array, off: number, len: number, depth = 0): void {
  const e = ip4.attach(b, off, len);
  codeOk(e);
  if (e !== 0) return;
  inWindow(ip4.payloadOff, ip4.payloadLen, off, off + len);
  void (ip4.dscpEcn + ip4.ident + ip4.fragOffset + ip4.ttl + ip4.checksum + ip4.optionsLen);
  ip4.verifyChecksum();
  if (depth === 0 && !ip4.isFragment) {
    const src = ip4.src;
    const dst = ip4.dst;
    l4(b, ip4.payloadOff, ip4.payloadLen, ip4.protocol, false);
    void (src + dst);
  }
}

function ipv6(b: Uint8Array, off: number, len: number): void {
  const e = ip6.attach(b, off, len);
  codeOk(e);
  if (e !== 0) return;
  inWindow(ip6.payloadOff, ip6.payloadLen, off, off + len);
  void (ip6.trafficClass + ip6.flowLabel + ip6.hopLimit + ip6.nextHeader);
  const w = walkExtensions(ip6, ext);
  codeOk(w);
  if (w !== 0) return;
  const end = ip6.off + ip6.len;
  if (ext.offset > end || ext.extCount > 8) throw new Error("walk escaped");
  if (!ext.hasFragment) {
    aBuf = b;
    aSrc = ip6.srcOff;
    aDst = ip6.dstOff;
    l4(b, ext.offset, end - ext.offset, ext.protocol, true);
    aBuf = ADDRS;
    aSrc = 0;
    aDst = 16;
  }
}

/** A whole Ethernet frame through every layer. */
function frame(b: Uint8Array, off: number, len: number): void {
  const e = eth.attach(b, off, len);
  codeOk(e);
  if (e !== 0) return;
  void eth.dstIsBroadcast;
  const t = eth.ethertype;
  const p = eth.payloadOff;
  const n = eth.payloadLen;
  if (t === 0x0806) {
    const a = arp.attach(b, p, n);
    codeOk(a);
    if (a === 0) void (arp.operation + arp.senderIp + arp.targetIp);
  } else if (t === 0x0800) ipv4(b, p, n);
  else if (t === 0x86dd) ipv6(b, p, n);
}

/** Every view attached directly at a random offset, and the frame pipeline. */
function everything(b: Uint8Array, off: number, len: number): void {
  frame(b, off, len);
  ipv4(b, off, len);
  ipv6(b, off, len);
  for (const p of [1, 6, 17]) l4(b, off, len, p, false);
  for (const p of [6, 17, 58]) l4(b, off, len, p, true);
  codeOk(arp.attach(b, off, len));
  dhcp4(b, off, len);
  const v = vnet.attach(b, off, len);
  codeOk(v);
  if (v === 0) {
    codeOk(vnet.validate(len - 12));
    // On a copy: this writes.
    const c = b.slice();
    codeOk(completePartialChecksum(c, off, len, vnet.csumStart, vnet.csumOffset));
  }
}

const REAL: Uint8Array[] = Object.values(F).filter((x): x is Uint8Array => x instanceof Uint8Array);

describe("hostile input sweep", () => {
  test(`${ITER} random buffers per view, at random offsets`, () => {
    const rng = new Prng(0x5eed);
    const backing = new Uint8Array(256);
    for (let i = 0; i < ITER; i++) {
      rng.fill(backing);
      // Make headers plausible often enough to get past the version checks.
      const off = rng.int(16);
      const len = rng.int(backing.length - off + 1);
      const k = rng.int(6);
      if (k === 0) backing[off] = 0x40 | (backing[off] & 15);
      else if (k === 1) backing[off] = 0x60 | (backing[off] & 15);
      else if (k === 2) {
        backing[off + 12] = 0x08;
        backing[off + 13] = 0x00;
        backing[off + 14] = 0x45;
      } else if (k === 3) {
        backing[off + 12] = 0x86;
        backing[off + 13] = 0xdd;
        backing[off + 14] = 0x60;
      }
      everything(backing, off, len);
    }
    expect(true).toBe(true);
  });

  test(`${ITER} mutations of real packets through the whole pipeline`, () => {
    const rng = new Prng(0xbadf00d);
    for (let i = 0; i < ITER; i++) {
      const src = REAL[rng.int(REAL.length)];
      const b = src.slice();
      const flips = 1 + rng.int(4);
      for (let f = 0; f < flips; f++) {
        const at = rng.int(b.length);
        b[at] = rng.int(3) === 0 ? rng.byte() : b[at] ^ (1 << rng.int(8));
      }
      const len = rng.int(4) === 0 ? rng.int(b.length + 1) : b.length;
      frame(b, 0, len);
    }
    expect(true).toBe(true);
  });

  test("no read outside the given window (guarded buffers)", () => {
    const rng = new Prng(42);
    for (let i = 0; i < 1500; i++) {
      const useReal = i % 2 === 0;
      let raw: Uint8Array;
      if (useReal) {
        raw = REAL[rng.int(REAL.length)].slice();
        if (rng.int(2)) raw[rng.int(raw.length)] ^= 1 << rng.int(8);
      } else {
        raw = rng.bytes(1 + rng.int(200));
      }
      const pad = 5;
      const big = new Uint8Array(raw.length + 2 * pad);
      big.set(raw, pad);
      const len = rng.int(raw.length + 1);
      const g = guarded(big, pad, pad + len);
      everything(g, pad, len);
    }
    expect(true).toBe(true);
  });

  test("the guard itself catches an out-of-window read", () => {
    const g = guarded(new Uint8Array(10), 2, 4);
    expect(g[2] + g[3]).toBe(0);
    expect(() => g[4]).toThrow();
    expect(() => g[1]).toThrow();
  });

  test("every truncation of every real packet", () => {
    for (const p of REAL) {
      for (let len = 0; len <= p.length; len++) {
        frame(p, 0, len);
        const g = guarded(p, 0, len);
        frame(g, 0, len);
      }
    }
    expect(true).toBe(true);
  });
});
