import { describe, expect, test } from "bun:test";
import { ARP_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ArpRepr, ArpView } from "../../../src/wire/arp.ts";
import { WireError } from "../../../src/wire/errors.ts";
import {
  ETHERNET_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  EthernetRepr,
  EthernetView,
  MAC_BROADCAST,
  formatMac,
  macEqual,
  parseMac,
  writeMac,
} from "../../../src/wire/ethernet.ts";
import { ipv4FromText, ipv4Text } from "../../../src/wire/addr.ts";
import { ARP_REPLY, ARP_REQUEST, ICMP4_ECHO_REQUEST, NDP_NS } from "./fixtures.ts";
import { embed, expectWireError, hex, toHex } from "./helpers.ts";

describe("EthernetView", () => {
  test("parses real frames", () => {
    const e = new EthernetView();
    expect(e.attach(ARP_REQUEST, 0, ARP_REQUEST.length)).toBe(WireError.Ok);
    expect(formatMac(e.buf, e.dstOff)).toBe("ff:ff:ff:ff:ff:ff");
    expect(formatMac(e.buf, e.srcOff)).toBe("52:54:00:12:34:56");
    expect(e.ethertype).toBe(ETHERTYPE_ARP);
    expect(e.dstIsBroadcast).toBe(true);
    expect(e.dstIsMulticast).toBe(true);
    expect(e.payloadOff).toBe(14);
    expect(e.payloadLen).toBe(28);

    expect(e.attach(ICMP4_ECHO_REQUEST, 0, ICMP4_ECHO_REQUEST.length)).toBe(WireError.Ok);
    expect(e.ethertype).toBe(ETHERTYPE_IPV4);
    expect(e.dstIsMulticast).toBe(false);
    expect(e.dstIsBroadcast).toBe(false);

    expect(e.attach(NDP_NS, 0, NDP_NS.length)).toBe(WireError.Ok);
    expect(e.ethertype).toBe(ETHERTYPE_IPV6);
    expect(formatMac(e.buf, e.dstOff)).toBe("33:33:ff:00:00:02");
    expect(e.dstIsMulticast).toBe(true);
    expect(e.dstIsBroadcast).toBe(false);
  });

  test("respects off inside a larger buffer", () => {
    const b = embed(ARP_REPLY, 5);
    const e = new EthernetView();
    expect(e.attach(b, 5, ARP_REPLY.length)).toBe(WireError.Ok);
    expect(formatMac(b, e.srcOff)).toBe("70:71:aa:4b:29:aa");
    expect(e.ethertype).toBe(ETHERTYPE_ARP);
  });

  test("every truncation and bad window", () => {
    const e = new EthernetView();
    for (let len = 0; len <= ARP_REQUEST.length; len++) {
      expect(e.attach(ARP_REQUEST, 0, len)).toBe(len < ETHERNET_HEADER_LEN ? WireError.Truncated : WireError.Ok);
    }
    expect(e.attach(ARP_REQUEST, 0, ARP_REQUEST.length + 1)).toBe(WireError.BadBounds);
    expect(e.attach(ARP_REQUEST, -1, 10)).toBe(WireError.BadBounds);
    expect(e.attach(ARP_REQUEST, 1.5, 10)).toBe(WireError.BadBounds);
    expect(e.attach(ARP_REQUEST, 40, 3)).toBe(WireError.BadBounds);
  });

  test("setters and Repr round trip", () => {
    const buf = new Uint8Array(20);
    const r = new EthernetRepr(parseMac("70:71:aa:4b:29:aa")!, parseMac("52-54-00-12-34-56")!, ETHERTYPE_IPV6);
    expect(r.emit(buf, 2)).toBe(14);
    const e = new EthernetView();
    expect(e.attach(buf, 2, 18)).toBe(WireError.Ok);
    expect(formatMac(buf, e.dstOff)).toBe("70:71:aa:4b:29:aa");
    expect(formatMac(buf, e.srcOff)).toBe("52:54:00:12:34:56");
    expect(e.ethertype).toBe(ETHERTYPE_IPV6);
    const back = new EthernetRepr().parse(e);
    expect(toHex(back.dst)).toBe("7071aa4b29aa");
    expect(back.ethertype).toBe(ETHERTYPE_IPV6);
    e.ethertype = 0x8100;
    expect(e.ethertype).toBe(0x8100);
    e.setDst(MAC_BROADCAST);
    expect(e.dstIsBroadcast).toBe(true);
    e.setSrc([1, 2, 3, 4, 5, 6]);
    expect(formatMac(buf, 8)).toBe("01:02:03:04:05:06");
  });

  test("MAC helpers", () => {
    expect(parseMac("70:71:AA:4b:29:aa")).toEqual(hex("7071aa4b29aa"));
    for (const bad of ["", "70:71:aa:4b:29", "70:71:aa:4b:29:aa:", "70:71:aa-4b:29:aa", "7g:71:aa:4b:29:aa", "70.71.aa.4b.29.aa"]) {
      expect(parseMac(bad)).toBeNull();
    }
    const a = new Uint8Array(8);
    writeMac(a, 1, hex("7071aa4b29aa"));
    expect(macEqual(a, 1, hex("7071aa4b29aa"), 0)).toBe(true);
    expect(macEqual(a, 0, hex("7071aa4b29aa"), 0)).toBe(false);
  });
});

describe("ArpView", () => {
  test("parses a real request and reply", () => {
    const a = new ArpView();
    expect(a.attach(ARP_REQUEST, 14, ARP_REQUEST.length - 14)).toBe(WireError.Ok);
    expect(a.operation).toBe(ARP_OP_REQUEST);
    expect(formatMac(a.buf, a.senderHwOff)).toBe("52:54:00:12:34:56");
    expect(ipv4Text(a.senderIp)).toBe("10.0.2.100");
    expect(formatMac(a.buf, a.targetHwOff)).toBe("00:00:00:00:00:00");
    expect(a.targetIp).toBe(ipv4FromText("10.0.2.2")!);

    expect(a.attach(ARP_REPLY, 14, ARP_REPLY.length - 14)).toBe(WireError.Ok);
    expect(a.operation).toBe(ARP_OP_REPLY);
    expect(formatMac(a.buf, a.senderHwOff)).toBe("70:71:aa:4b:29:aa");
    expect(ipv4Text(a.senderIp)).toBe("10.0.2.2");
    expect(ipv4Text(a.targetIp)).toBe("10.0.2.100");
  });

  test("Ethernet minimum-frame padding after the 28 bytes is ignored", () => {
    const padded = new Uint8Array(60);
    padded.set(ARP_REQUEST);
    padded.fill(0xee, ARP_REQUEST.length);
    const a = new ArpView();
    expect(a.attach(padded, 14, 46)).toBe(WireError.Ok);
    expect(a.len).toBe(ARP_LEN);
    expect(ipv4Text(a.targetIp)).toBe("10.0.2.2");
  });

  test("emitting the reply to the real request reproduces the kernel's reply", () => {
    const a = new ArpView();
    expect(a.attach(ARP_REQUEST, 14, 28)).toBe(WireError.Ok);
    const req = new ArpRepr().parse(a);
    const ourMac = hex("7071aa4b29aa");
    const reply = new ArpRepr(ARP_OP_REPLY, ourMac, req.targetIp, req.senderHw, req.senderIp);
    const out = new Uint8Array(42);
    new EthernetRepr(req.senderHw, ourMac, ETHERTYPE_ARP).emit(out, 0);
    expect(reply.emit(out, 14)).toBe(28);
    expect(toHex(out)).toBe(toHex(ARP_REPLY));
  });

  test("setters", () => {
    const b = ARP_REQUEST.slice();
    const a = new ArpView();
    expect(a.attach(b, 14, 28)).toBe(WireError.Ok);
    a.operation = ARP_OP_REPLY;
    a.senderIp = 0xc0a80001;
    a.targetIp = 0xffffffff;
    expect(a.operation).toBe(2);
    expect(a.senderIp).toBe(0xc0a80001);
    expect(a.targetIp).toBe(0xffffffff);
  });

  test("rejects other hardware/protocol types and every truncation", () => {
    const a = new ArpView();
    for (let len = 0; len < 28; len++) expect(a.attach(ARP_REQUEST, 14, len)).toBe(WireError.Truncated);
    // htype 6 (IEEE 802), htype 0x0101, ptype 0x86dd, hlen 8, plen 16
    for (const [i, v] of [
      [15, 6],
      [14, 1],
      [16, 0x86],
      [18, 8],
      [19, 16],
    ] as const) {
      const b = ARP_REQUEST.slice();
      b[i] = v;
      expect(a.attach(b, 14, 28)).toBe(WireError.Unsupported);
    }
  });

  test("random bytes never throw", () => {
    const a = new ArpView();
    const b = new Uint8Array(28);
    for (let i = 0; i < 256; i++) {
      b.fill(i);
      expectWireError(a.attach(b, 0, 28));
    }
  });
});
