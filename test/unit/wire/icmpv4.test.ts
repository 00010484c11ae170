import { describe, expect, test } from "bun:test";
import { WireError } from "../../../src/wire/errors.ts";
import {
  ICMPV4_ERROR_MAX_DATAGRAM,
  Icmpv4TimeExceeded,
  Icmpv4Type,
  Icmpv4Unreach,
  Icmpv4View,
  emitIcmpv4DestUnreachable,
  emitIcmpv4EchoReply,
  emitIcmpv4TimeExceeded,
  icmpv4IsError,
  icmpv4QuoteLen,
} from "../../../src/wire/icmpv4.ts";
import { Ipv4Repr, Ipv4View } from "../../../src/wire/ipv4.ts";
import { ICMP4_ECHO_REPLY, ICMP4_ECHO_REQUEST, ICMP4_PORT_UNREACH, UDP4 } from "./fixtures.ts";
import { Prng, expectWireError, toHex } from "./helpers.ts";

describe("Icmpv4View", () => {
  test("parses a real echo request", () => {
    const v = new Icmpv4View();
    expect(v.attach(ICMP4_ECHO_REQUEST, 34, 64)).toBe(WireError.Ok);
    expect(v.type).toBe(Icmpv4Type.EchoRequest);
    expect(v.code).toBe(0);
    expect(v.checksum).toBe(0x992c);
    expect(v.ident).toBe(0x14c8);
    expect(v.seq).toBe(1);
    expect(v.payloadOff).toBe(42);
    expect(v.payloadLen).toBe(56);
    expect(v.isError).toBe(false);
    expect(v.verifyChecksum()).toBe(true);
    const b = ICMP4_ECHO_REQUEST.slice();
    b[60] ^= 1;
    expect(v.attach(b, 34, 64)).toBe(WireError.Ok);
    expect(v.verifyChecksum()).toBe(false);
    v.fillChecksum();
    expect(v.verifyChecksum()).toBe(true);
  });

  test("parses a real port unreachable and its quoted datagram", () => {
    const v = new Icmpv4View();
    expect(v.attach(ICMP4_PORT_UNREACH, 34, 44)).toBe(WireError.Ok);
    expect(v.type).toBe(Icmpv4Type.DestUnreachable);
    expect(v.code).toBe(Icmpv4Unreach.Port);
    expect(v.isError).toBe(true);
    expect(v.verifyChecksum()).toBe(true);
    const inner = new Ipv4View();
    expect(inner.attach(v.buf, v.payloadOff, v.payloadLen)).toBe(WireError.Ok);
    expect(inner.verifyChecksum()).toBe(true);
    expect(inner.protocol).toBe(17);
  });

  test("setters", () => {
    const b = new Uint8Array(12);
    const v = new Icmpv4View().wrap(b, 2, 10);
    v.type = 3;
    v.code = 4;
    v.restOfHeader = 0;
    v.seq = 1400;
    expect(v.nextHopMtu).toBe(1400);
    v.ident = 0xabcd;
    expect(v.restOfHeader).toBe(0xabcd0578);
    v.checksum = 0xffff;
    expect(v.checksum).toBe(0xffff);
  });

  test("every truncation", () => {
    const v = new Icmpv4View();
    for (let len = 0; len <= 64; len++) {
      expect(v.attach(ICMP4_ECHO_REQUEST, 34, len)).toBe(len < 8 ? WireError.Truncated : WireError.Ok);
    }
    expect(v.attach(ICMP4_ECHO_REQUEST, 34, 65)).toBe(WireError.BadBounds);
  });

  test("error classification (RFC 1122 §3.2.2)", () => {
    for (const t of [3, 4, 5, 11, 12]) expect(icmpv4IsError(t)).toBe(true);
    for (const t of [0, 8, 13, 14, 255]) expect(icmpv4IsError(t)).toBe(false);
  });
});

describe("ICMPv4 builders", () => {
  test("echo reply equals the kernel's reply, copied and in place", () => {
    const req = new Icmpv4View();
    expect(req.attach(ICMP4_ECHO_REQUEST, 34, 64)).toBe(WireError.Ok);
    const out = new Uint8Array(70);
    expect(emitIcmpv4EchoReply(out, 3, req)).toBe(64);
    expect(toHex(out, 3, 64)).toBe(toHex(ICMP4_ECHO_REPLY, 34, 64));
    const inPlace = ICMP4_ECHO_REQUEST.slice();
    expect(req.attach(inPlace, 34, 64)).toBe(WireError.Ok);
    expect(emitIcmpv4EchoReply(inPlace, 34, req)).toBe(64);
    expect(toHex(inPlace, 34, 64)).toBe(toHex(ICMP4_ECHO_REPLY, 34, 64));
    expect(emitIcmpv4EchoReply(new Uint8Array(63), 0, req)).toBe(0);
  });

  test("port unreachable equals the kernel's (whole datagram quoted, RFC 1812)", () => {
    const inv = new Ipv4View();
    expect(inv.attach(UDP4, 14, UDP4.length - 14)).toBe(WireError.Ok);
    const out = new Uint8Array(600);
    const n = emitIcmpv4DestUnreachable(out, 20, Icmpv4Unreach.Port, inv.buf, inv.off, inv.len);
    expect(n).toBe(44);
    expect(toHex(out, 20, n)).toBe(toHex(ICMP4_PORT_UNREACH, 34, 44));
    // And with the kernel's outer header (tos 0xc0, ident 0x66c1) the whole packet matches.
    new Ipv4Repr({ src: inv.dst, dst: inv.src, protocol: 1, payloadLen: n, ttl: 64, ident: 0x66c1, dscpEcn: 0xc0 }).emit(
      out,
      0,
    );
    expect(toHex(out, 0, 20 + n)).toBe(toHex(ICMP4_PORT_UNREACH, 14));
  });

  test("quote length: RFC 792 minimum, RFC 1812 576-byte cap, room in out", () => {
    const inv = new Uint8Array(1500);
    new Ipv4Repr({ src: 1, dst: 2, protocol: 6, payloadLen: 1480 }).emit(inv, 0);
    const out = new Uint8Array(2000);
    const n = emitIcmpv4DestUnreachable(out, 0, Icmpv4Unreach.Host, inv, 0, 1500);
    expect(n).toBe(ICMPV4_ERROR_MAX_DATAGRAM - 20);
    const v = new Icmpv4View();
    expect(v.attach(out, 0, n)).toBe(WireError.Ok);
    expect(v.verifyChecksum()).toBe(true);
    // RFC 792: header + 64 bits.
    expect(emitIcmpv4DestUnreachable(out, 0, 1, inv, 0, 1500, 0, 0)).toBe(8 + 28);
    expect(icmpv4QuoteLen(10, 20, 0)).toBe(10);
    expect(icmpv4QuoteLen(1000, 24, 0)).toBe(32);
    // Output clamped to the buffer.
    expect(emitIcmpv4DestUnreachable(new Uint8Array(100), 10, 1, inv, 0, 1500)).toBe(90);
    expect(emitIcmpv4DestUnreachable(new Uint8Array(7), 0, 1, inv, 0, 1500)).toBe(0);
    // Nothing to quote.
    expect(emitIcmpv4DestUnreachable(out, 0, 1, inv, 0, 0)).toBe(8);
  });

  test("fragmentation needed carries the next-hop MTU (RFC 1191)", () => {
    const inv = UDP4.subarray(14);
    const out = new Uint8Array(100);
    const n = emitIcmpv4DestUnreachable(out, 0, Icmpv4Unreach.FragNeeded, inv, 0, inv.length, 1400);
    const v = new Icmpv4View();
    expect(v.attach(out, 0, n)).toBe(WireError.Ok);
    expect(v.code).toBe(4);
    expect(v.nextHopMtu).toBe(1400);
    expect(v.ident).toBe(0);
    expect(v.verifyChecksum()).toBe(true);
  });

  test("time exceeded; quoting from an overlapping region of the same buffer", () => {
    const rng = new Prng(792);
    const buf = rng.bytes(400);
    new Ipv4Repr({ src: 1, dst: 2, protocol: 17, payloadLen: 100 }).emit(buf, 40);
    const expected = new Uint8Array(200);
    const m = emitIcmpv4TimeExceeded(expected, 0, Icmpv4TimeExceeded.Ttl, buf.slice(), 40, 120);
    // Error message written 12 bytes after the start of the datagram it quotes.
    const n = emitIcmpv4TimeExceeded(buf, 52, Icmpv4TimeExceeded.Ttl, buf, 40, 120);
    expect(n).toBe(m);
    expect(toHex(buf, 52, n)).toBe(toHex(expected, 0, m));
    // And a quote taken through a different view on the same memory.
    const buf2 = rng.bytes(400);
    new Ipv4Repr({ src: 1, dst: 2, protocol: 17, payloadLen: 100 }).emit(buf2, 40);
    const exp2 = new Uint8Array(200);
    const k = emitIcmpv4TimeExceeded(exp2, 0, 1, buf2.slice(), 40, 120);
    const sub = buf2.subarray(30);
    expect(emitIcmpv4TimeExceeded(buf2, 20, 1, sub, 10, 120)).toBe(k);
    expect(toHex(buf2, 20, k)).toBe(toHex(exp2, 0, k));
  });

  test("random messages never throw", () => {
    const rng = new Prng(12);
    const v = new Icmpv4View();
    for (let i = 0; i < 2000; i++) {
      const b = rng.bytes(rng.int(80));
      const e = v.attach(b, 0, b.length);
      expectWireError(e);
      if (e === WireError.Ok) {
        v.verifyChecksum();
        expect(v.payloadLen).toBeGreaterThanOrEqual(0);
      }
    }
  });
});
