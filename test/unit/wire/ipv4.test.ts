import { describe, expect, test } from "bun:test";
import { WireError } from "../../../src/wire/errors.ts";
import {
  IPPROTO_ICMP,
  IPPROTO_UDP,
  Ipv4Repr,
  Ipv4View,
  ipv4IsBroadcastIn,
  ipv4IsLimitedBroadcast,
  ipv4IsLoopback,
  ipv4IsMulticast,
} from "../../../src/wire/ipv4.ts";
import { ipv4FromText } from "../../../src/wire/addr.ts";
import { ICMP4_ECHO_REPLY, ICMP4_ECHO_REQUEST, IPV4_FRAG_FIRST_HEADER, IPV4_FRAG_LAST, UDP4 } from "./fixtures.ts";
import { Prng, embed, hex, toHex } from "./helpers.ts";

const ip = (s: string) => ipv4FromText(s)!;

describe("Ipv4View", () => {
  test("parses a real ICMP echo request", () => {
    const v = new Ipv4View();
    expect(v.attach(ICMP4_ECHO_REQUEST, 14, ICMP4_ECHO_REQUEST.length - 14)).toBe(WireError.Ok);
    expect(v.version).toBe(4);
    expect(v.headerLen).toBe(20);
    expect(v.dscpEcn).toBe(0);
    expect(v.totalLen).toBe(84);
    expect(v.len).toBe(84);
    expect(v.ident).toBe(0x77a9);
    expect(v.dontFragment).toBe(true);
    expect(v.moreFragments).toBe(false);
    expect(v.fragOffset).toBe(0);
    expect(v.isFragment).toBe(false);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(IPPROTO_ICMP);
    expect(v.checksum).toBe(0xaa9a);
    expect(v.src).toBe(ip("10.0.2.100"));
    expect(v.dst).toBe(ip("10.0.2.2"));
    expect(v.payloadOff).toBe(34);
    expect(v.payloadLen).toBe(64);
    expect(v.optionsLen).toBe(0);
    expect(v.verifyChecksum()).toBe(true);
  });

  test("fragment fields of real fragments", () => {
    const v = new Ipv4View();
    expect(v.attach(IPV4_FRAG_LAST, 14, IPV4_FRAG_LAST.length - 14)).toBe(WireError.Ok);
    expect(v.fragOffset).toBe(2960);
    expect(v.moreFragments).toBe(false);
    expect(v.dontFragment).toBe(false);
    expect(v.isFragment).toBe(true);
    expect(v.payloadLen).toBe(48);
    expect(v.verifyChecksum()).toBe(true);
    // The first fragment's header claims 1500 bytes; only the header was kept: a lying length.
    expect(v.attach(IPV4_FRAG_FIRST_HEADER, 14, 20)).toBe(WireError.BadLength);
    expect(v.moreFragments).toBe(true);
    expect(v.fragOffset).toBe(0);
    expect(v.isFragment).toBe(true);
    expect(v.verifyChecksum()).toBe(true);
  });

  test("Ethernet padding beyond Total Length is excluded", () => {
    const frame = new Uint8Array(60);
    frame.set(UDP4);
    frame.fill(0xcc, UDP4.length);
    const v = new Ipv4View();
    expect(v.attach(frame, 14, 46)).toBe(WireError.Ok);
    expect(v.len).toBe(36);
    expect(v.payloadLen).toBe(16);
    expect(v.protocol).toBe(IPPROTO_UDP);
  });

  test("header with options", () => {
    // IHL 6: one 4-byte option word (NOP NOP NOP EOL), checksum filled by us.
    const b = hex("46000020 00010000 40110000 0a000264 0a000202 01010100 00350035000c0000 00000000");
    const v = new Ipv4View();
    expect(v.attach(b, 0, b.length)).toBe(WireError.Ok);
    expect(v.headerLen).toBe(24);
    expect(v.optionsOff).toBe(20);
    expect(v.optionsLen).toBe(4);
    expect(v.payloadOff).toBe(24);
    expect(v.payloadLen).toBe(8);
    expect(v.verifyChecksum()).toBe(false);
    v.fillChecksum();
    expect(v.verifyChecksum()).toBe(true);
  });

  test("setters keep fields independent and fillChecksum makes the header valid", () => {
    const b = embed(ICMP4_ECHO_REQUEST.subarray(14), 3);
    const v = new Ipv4View();
    expect(v.attach(b, 3, 84)).toBe(WireError.Ok);
    v.ttl = 1;
    v.ident = 0xbeef;
    v.setFlagsFrag(false, true, 1480);
    v.src = ip("192.168.1.1");
    v.dst = ip("255.255.255.255");
    v.dscpEcn = 0xb8;
    v.protocol = 17;
    expect(v.verifyChecksum()).toBe(false);
    v.fillChecksum();
    expect(v.verifyChecksum()).toBe(true);
    expect(v.ttl).toBe(1);
    expect(v.ident).toBe(0xbeef);
    expect(v.dontFragment).toBe(false);
    expect(v.moreFragments).toBe(true);
    expect(v.fragOffset).toBe(1480);
    expect(v.src).toBe(0xc0a80101);
    expect(v.dst).toBe(0xffffffff);
    expect(v.dscpEcn).toBe(0xb8);
    expect(v.protocol).toBe(17);
    expect(v.totalLen).toBe(84);
    v.totalLen = 60;
    expect(v.totalLen).toBe(60);
    v.checksum = 0x1234;
    expect(v.checksum).toBe(0x1234);
    v.setFlagsFrag(true, false, 0);
    expect(v.flagsFrag).toBe(0x4000);
    expect(b[0]).toBe(0xa5); // bytes before `off` untouched
  });

  test("Repr emit reproduces the kernel's echo reply header (with checksum)", () => {
    const r = new Ipv4Repr({
      src: ip("10.0.2.2"),
      dst: ip("10.0.2.100"),
      protocol: IPPROTO_ICMP,
      payloadLen: 64,
      ttl: 64,
      ident: 0x5b0e,
    });
    const out = new Uint8Array(20);
    expect(r.emit(out, 0)).toBe(20);
    expect(r.headerLen).toBe(20);
    expect(toHex(out)).toBe(toHex(ICMP4_ECHO_REPLY, 14, 20));
  });

  test("Repr round trip (seeded)", () => {
    const rng = new Prng(791);
    const v = new Ipv4View();
    const back = new Ipv4Repr();
    for (let i = 0; i < 500; i++) {
      const r = new Ipv4Repr({
        src: rng.u32(),
        dst: rng.u32(),
        protocol: rng.byte(),
        payloadLen: rng.int(200),
        ttl: rng.byte(),
        ident: rng.int(65536),
        dontFragment: rng.int(2) === 1,
        dscpEcn: rng.byte(),
      });
      const buf = new Uint8Array(1 + 20 + r.payloadLen);
      r.emit(buf, 1);
      expect(v.attach(buf, 1, buf.length - 1)).toBe(WireError.Ok);
      expect(v.verifyChecksum()).toBe(true);
      back.parse(v);
      expect({ ...back }).toEqual({ ...r });
    }
  });

  test("hostile: every truncation, lying lengths, bad version, bad IHL", () => {
    const pkt = ICMP4_ECHO_REQUEST.subarray(14);
    const v = new Ipv4View();
    for (let len = 0; len <= pkt.length; len++) {
      const e = v.attach(pkt, 0, len);
      if (len < 20) expect(e).toBe(WireError.Truncated);
      else if (len < 84) expect(e).toBe(WireError.BadLength);
      else expect(e).toBe(WireError.Ok);
    }
    const mk = (b0: number, total: number) => {
      const b = pkt.slice();
      b[0] = b0;
      b[2] = total >>> 8;
      b[3] = total & 0xff;
      return b;
    };
    expect(v.attach(mk(0x45, 85), 0, 84)).toBe(WireError.BadLength); // totalLength > buffer
    expect(v.attach(mk(0x45, 0xffff), 0, 84)).toBe(WireError.BadLength);
    expect(v.attach(mk(0x45, 19), 0, 84)).toBe(WireError.BadHeaderLen); // totalLength < IHL*4
    expect(v.attach(mk(0x45, 0), 0, 84)).toBe(WireError.BadHeaderLen);
    expect(v.attach(mk(0x4f, 40), 0, 84)).toBe(WireError.BadHeaderLen); // 60-byte header in 40
    expect(v.attach(mk(0x4f, 60), 0, 84)).toBe(WireError.Ok);
    for (let ihl = 0; ihl < 5; ihl++) expect(v.attach(mk(0x40 | ihl, 84), 0, 84)).toBe(WireError.BadHeaderLen);
    expect(v.attach(mk(0x65, 84), 0, 84)).toBe(WireError.BadVersion);
    expect(v.attach(mk(0x05, 84), 0, 84)).toBe(WireError.BadVersion);
    expect(v.attach(pkt, 0, 85)).toBe(WireError.BadBounds);
    expect(v.attach(pkt, 80, 20)).toBe(WireError.BadBounds);
  });
});

describe("IPv4 address classes", () => {
  test("address classes", () => {
    expect(ipv4IsLoopback(ip("127.0.0.1"))).toBe(true);
    expect(ipv4IsLoopback(ip("128.0.0.1"))).toBe(false);
    expect(ipv4IsMulticast(ip("224.0.0.1"))).toBe(true);
    expect(ipv4IsMulticast(ip("239.255.255.255"))).toBe(true);
    expect(ipv4IsMulticast(ip("240.0.0.0"))).toBe(false);
    expect(ipv4IsLimitedBroadcast(ip("255.255.255.255"))).toBe(true);
    expect(ipv4IsBroadcastIn(ip("10.0.2.255"), ip("10.0.2.0"), 24)).toBe(true);
    expect(ipv4IsBroadcastIn(ip("10.0.2.254"), ip("10.0.2.0"), 24)).toBe(false);
    expect(ipv4IsBroadcastIn(ip("10.0.3.255"), ip("10.0.2.0"), 24)).toBe(false);
    expect(ipv4IsBroadcastIn(ip("10.0.2.1"), ip("10.0.2.0"), 31)).toBe(false);
    expect(ipv4IsBroadcastIn(ip("255.255.255.255"), 0, 0)).toBe(true);
  });
});
