import { describe, expect, test } from "bun:test";
import { WireError } from "../../../src/wire/errors.ts";
import { Ipv4View } from "../../../src/wire/ipv4.ts";
import { Ipv6View } from "../../../src/wire/ipv6.ts";
import { UdpRepr, UdpView } from "../../../src/wire/udp.ts";
import { UDP4, UDP6 } from "./fixtures.ts";
import { Prng, embed, toHex } from "./helpers.ts";

function v4(frame: Uint8Array): { ip: Ipv4View; udp: UdpView } {
  const ip = new Ipv4View();
  expect(ip.attach(frame, 14, frame.length - 14)).toBe(WireError.Ok);
  const udp = new UdpView();
  expect(udp.attach(frame, ip.payloadOff, ip.payloadLen)).toBe(WireError.Ok);
  return { ip, udp };
}

function v6(frame: Uint8Array): { ip: Ipv6View; udp: UdpView } {
  const ip = new Ipv6View();
  expect(ip.attach(frame, 14, frame.length - 14)).toBe(WireError.Ok);
  const udp = new UdpView();
  expect(udp.attach(frame, ip.payloadOff, ip.payloadLen)).toBe(WireError.Ok);
  return { ip, udp };
}

describe("UdpView", () => {
  test("real IPv4 datagram", () => {
    const { ip, udp } = v4(UDP4.slice());
    expect(udp.srcPort).toBe(57779);
    expect(udp.dstPort).toBe(9999);
    expect(udp.length).toBe(16);
    expect(udp.checksum).toBe(0xbd35);
    expect(udp.payloadOff).toBe(42);
    expect(udp.payloadLen).toBe(8);
    expect(new TextDecoder().decode(udp.buf.subarray(udp.payloadOff, udp.payloadOff + udp.payloadLen))).toBe("hi udp4!");
    expect(udp.verifyChecksumV4(ip.src, ip.dst)).toBe(true);
    expect(udp.verifyChecksumV4(ip.src, ip.dst + 1)).toBe(false);
    udp.checksum = 0x1111;
    udp.fillChecksumV4(ip.src, ip.dst);
    expect(udp.checksum).toBe(0xbd35);
    // 0 means "no checksum" over IPv4.
    udp.checksum = 0;
    expect(udp.verifyChecksumV4(ip.src, ip.dst + 1)).toBe(true);
  });

  test("real IPv6 datagram with odd payload length", () => {
    const { ip, udp } = v6(UDP6.slice());
    expect(udp.srcPort).toBe(57488);
    expect(udp.length).toBe(15);
    expect(udp.payloadLen).toBe(7);
    expect(udp.checksum).toBe(0xd9dd);
    expect(udp.verifyChecksumV6(ip.buf, ip.srcOff, ip.dstOff)).toBe(true);
    udp.checksum = 0;
    expect(udp.verifyChecksumV6(ip.buf, ip.srcOff, ip.dstOff)).toBe(false); // RFC 8200 §8.1
    udp.fillChecksumV6(ip.buf, ip.srcOff, ip.dstOff);
    expect(udp.checksum).toBe(0xd9dd);
  });

  test("a computed checksum of 0 is sent as 0xffff (v4 and v6) and verifies", () => {
    const { ip, udp } = v4(UDP4.slice());
    // Make the covered data sum to 0xffff by planting the checksum value in the payload.
    const b = udp.buf;
    const p = udp.payloadOff;
    b[p] = 0;
    b[p + 1] = 0;
    udp.fillChecksumV4(ip.src, ip.dst);
    const c = udp.checksum;
    b[p] = c >>> 8;
    b[p + 1] = c & 0xff;
    udp.fillChecksumV4(ip.src, ip.dst);
    expect(udp.checksum).toBe(0xffff);
    expect(udp.verifyChecksumV4(ip.src, ip.dst)).toBe(true);

    const s6 = v6(UDP6.slice());
    const q = s6.udp.payloadOff;
    s6.udp.buf[q] = 0;
    s6.udp.buf[q + 1] = 0;
    s6.udp.fillChecksumV6(s6.ip.buf, s6.ip.srcOff, s6.ip.dstOff);
    const c6 = s6.udp.checksum;
    s6.udp.buf[q] = c6 >>> 8;
    s6.udp.buf[q + 1] = c6 & 0xff;
    s6.udp.fillChecksumV6(s6.ip.buf, s6.ip.srcOff, s6.ip.dstOff);
    expect(s6.udp.checksum).toBe(0xffff);
    expect(s6.udp.verifyChecksumV6(s6.ip.buf, s6.ip.srcOff, s6.ip.dstOff)).toBe(true);
  });

  test("hostile lengths: truncation, Length < 8, Length > available; shorter Length trims", () => {
    const seg = UDP4.subarray(34);
    const u = new UdpView();
    for (let len = 0; len <= seg.length; len++) {
      expect(u.attach(seg, 0, len)).toBe(len < 8 ? WireError.Truncated : len < 16 ? WireError.BadLength : WireError.Ok);
    }
    const mk = (l: number) => {
      const b = seg.slice();
      b[4] = l >>> 8;
      b[5] = l & 0xff;
      return b;
    };
    for (const l of [0, 1, 7]) expect(u.attach(mk(l), 0, 16)).toBe(WireError.BadLength);
    expect(u.attach(mk(17), 0, 16)).toBe(WireError.BadLength);
    expect(u.attach(mk(0xffff), 0, 16)).toBe(WireError.BadLength);
    expect(u.attach(mk(8), 0, 16)).toBe(WireError.Ok);
    expect(u.len).toBe(8);
    expect(u.payloadLen).toBe(0);
    expect(u.attach(mk(12), 0, 16)).toBe(WireError.Ok);
    expect(u.payloadLen).toBe(4);
  });

  test("Repr emit reproduces the real header (before checksum) and round-trips", () => {
    const out = embed(UDP4.subarray(42), 8 + 3);
    const r = new UdpRepr({ srcPort: 57779, dstPort: 9999, payloadLen: 8 });
    expect(r.emit(out, 3)).toBe(8);
    const u = new UdpView();
    expect(u.attach(out, 3, 16)).toBe(WireError.Ok);
    u.fillChecksumV4(0x0a000264, 0x0a000202);
    expect(toHex(out, 3, 16)).toBe(toHex(UDP4, 34));
    expect({ ...new UdpRepr().parse(u) }).toEqual({ ...r });
    const rng = new Prng(768);
    for (let i = 0; i < 300; i++) {
      const x = new UdpRepr({ srcPort: rng.int(65536), dstPort: rng.int(65536), payloadLen: rng.int(100) });
      const b = new Uint8Array(8 + x.payloadLen);
      x.emit(b, 0);
      expect(u.attach(b, 0, b.length)).toBe(WireError.Ok);
      expect({ ...new UdpRepr().parse(u) }).toEqual({ ...x });
      u.srcPort = 1;
      u.dstPort = 2;
      u.length = 8;
      expect([u.srcPort, u.dstPort, u.length]).toEqual([1, 2, 8]);
    }
  });
});
