import { describe, expect, test } from "bun:test";
import { WireError } from "../../../src/wire/errors.ts";
import { Ipv4View } from "../../../src/wire/ipv4.ts";
import { Ipv6View } from "../../../src/wire/ipv6.ts";
import {
  TcpFlags,
  TcpOptions,
  TcpRepr,
  TcpView,
  emitTcpOptions,
  formatTcpFlags,
  parseTcpOptions,
  tcpOptionsLen,
} from "../../../src/wire/tcp.ts";
import { TCP4_PSH, TCP4_SYN, TCP4_SYNACK, TCP6_PSH, TCP6_SYN } from "./fixtures.ts";
import { Prng, expectWireError, hex, toHex } from "./helpers.ts";

function v4(frame: Uint8Array): { ip: Ipv4View; tcp: TcpView } {
  const ip = new Ipv4View();
  expect(ip.attach(frame, 14, frame.length - 14)).toBe(WireError.Ok);
  const tcp = new TcpView();
  expect(tcp.attach(frame, ip.payloadOff, ip.payloadLen)).toBe(WireError.Ok);
  return { ip, tcp };
}

function v6(frame: Uint8Array): { ip: Ipv6View; tcp: TcpView } {
  const ip = new Ipv6View();
  expect(ip.attach(frame, 14, frame.length - 14)).toBe(WireError.Ok);
  const tcp = new TcpView();
  expect(tcp.attach(frame, ip.payloadOff, ip.payloadLen)).toBe(WireError.Ok);
  return { ip, tcp };
}

/** A bare 20-byte header followed by the given option bytes (padded to 4 by the caller). */
function withOptions(opts: string): TcpView {
  const o = hex(opts);
  const b = new Uint8Array(20 + o.length);
  b[12] = ((20 + o.length) >>> 2) << 4;
  b.set(o, 20);
  const v = new TcpView();
  expect(v.attach(b, 0, b.length)).toBe(WireError.Ok);
  return v;
}

describe("TcpView", () => {
  test("real IPv4 SYN with MSS, SACK-permitted, timestamps, window scale", () => {
    const { ip, tcp } = v4(TCP4_SYN);
    expect(tcp.srcPort).toBe(54810);
    expect(tcp.dstPort).toBe(8081);
    expect(tcp.seq).toBe(3227271422);
    expect(tcp.ack).toBe(0);
    expect(tcp.dataOffset).toBe(10);
    expect(tcp.headerLen).toBe(40);
    expect(tcp.flags).toBe(TcpFlags.SYN);
    expect(tcp.syn && !tcp.ackFlag && !tcp.fin && !tcp.rst).toBe(true);
    expect(tcp.window).toBe(64240);
    expect(tcp.checksum).toBe(0xe043);
    expect(tcp.urgentPtr).toBe(0);
    expect(tcp.optionsOff).toBe(54);
    expect(tcp.optionsLen).toBe(20);
    expect(tcp.payloadLen).toBe(0);
    expect(tcp.segLen).toBe(1);
    expect(tcp.verifyChecksumV4(ip.src, ip.dst)).toBe(true);
    const o = new TcpOptions();
    expect(parseTcpOptions(tcp, o)).toBe(WireError.Ok);
    expect(o.mss).toBe(1460);
    expect(o.sackPermitted).toBe(true);
    expect(o.hasTimestamps).toBe(true);
    expect(o.tsVal).toBe(2727459530);
    expect(o.tsEcr).toBe(0);
    expect(o.windowScale).toBe(10);
    expect(o.sackCount).toBe(0);
  });

  test("real SYN-ACK and data segment", () => {
    const s = v4(TCP4_SYNACK);
    expect(s.tcp.hasFlags(TcpFlags.SYN | TcpFlags.ACK)).toBe(true);
    expect(formatTcpFlags(s.tcp.flags)).toBe("SYN|ACK");
    expect(s.tcp.ack).toBe(3227271423);
    expect(s.tcp.seq).toBe(2306391234);
    expect(s.tcp.verifyChecksumV4(s.ip.src, s.ip.dst)).toBe(true);
    const o = new TcpOptions();
    expect(parseTcpOptions(s.tcp, o)).toBe(WireError.Ok);
    expect(o.tsVal).toBe(1426358693);
    expect(o.tsEcr).toBe(2727459530);

    const d = v4(TCP4_PSH.slice());
    expect(d.tcp.flags).toBe(TcpFlags.PSH | TcpFlags.ACK);
    expect(d.tcp.headerLen).toBe(32);
    expect(d.tcp.payloadOff).toBe(66);
    expect(d.tcp.payloadLen).toBe(5);
    expect(d.tcp.segLen).toBe(5);
    expect(d.tcp.window).toBe(63);
    expect(d.tcp.verifyChecksumV4(d.ip.src, d.ip.dst)).toBe(true);
    expect(parseTcpOptions(d.tcp, o)).toBe(WireError.Ok);
    expect([o.mss, o.windowScale, o.sackPermitted, o.hasTimestamps]).toEqual([0, -1, false, true]);
    d.tcp.checksum = 0;
    d.tcp.fillChecksumV4(d.ip.src, d.ip.dst);
    expect(d.tcp.checksum).toBe(0xa8ef);
  });

  test("real IPv6 SYN and data segment checksums", () => {
    const s = v6(TCP6_SYN.slice());
    expect(s.tcp.verifyChecksumV6(s.ip.buf, s.ip.srcOff, s.ip.dstOff)).toBe(true);
    const o = new TcpOptions();
    expect(parseTcpOptions(s.tcp, o)).toBe(WireError.Ok);
    expect(o.mss).toBe(1440);
    s.tcp.fillChecksumV6(s.ip.buf, s.ip.srcOff, s.ip.dstOff);
    expect(s.tcp.checksum).toBe(0x9c5a);
    const d = v6(TCP6_PSH.slice());
    expect(d.tcp.payloadLen).toBe(6);
    expect(d.tcp.verifyChecksumV6(d.ip.buf, d.ip.srcOff, d.ip.dstOff)).toBe(true);
    d.tcp.fillChecksumV6(d.ip.buf, d.ip.srcOff, d.ip.dstOff);
    expect(d.tcp.checksum).toBe(0x193e);
    d.tcp.buf[d.tcp.payloadOff] ^= 0x20;
    expect(d.tcp.verifyChecksumV6(d.ip.buf, d.ip.srcOff, d.ip.dstOff)).toBe(false);
  });

  test("setters", () => {
    const b = new Uint8Array(40);
    const t = new TcpView().wrap(b, 0, 40);
    t.srcPort = 65535;
    t.dstPort = 1;
    t.seq = 0xffffffff;
    t.ack = 0x80000000;
    t.headerLen = 24;
    t.flags = TcpFlags.FIN | TcpFlags.ACK | TcpFlags.CWR;
    t.window = 0xfffe;
    t.urgentPtr = 7;
    t.checksum = 0x1234;
    expect([t.srcPort, t.dstPort, t.seq, t.ack, t.headerLen, t.dataOffset]).toEqual([65535, 1, 0xffffffff, 0x80000000, 24, 6]);
    expect([t.flags, t.window, t.urgentPtr, t.checksum]).toEqual([0x91, 0xfffe, 7, 0x1234]);
    expect(formatTcpFlags(t.flags)).toBe("FIN|ACK|CWR");
    expect(formatTcpFlags(0)).toBe("none");
    expect(t.payloadLen).toBe(16);
    expect(t.segLen).toBe(17);
  });

  test("hostile: every truncation, data offset < 5 or beyond the segment", () => {
    const seg = TCP4_SYN.subarray(34);
    const t = new TcpView();
    for (let len = 0; len <= seg.length; len++) {
      expect(t.attach(seg, 0, len)).toBe(len < 20 ? WireError.Truncated : len < 40 ? WireError.BadHeaderLen : WireError.Ok);
    }
    const b = seg.slice();
    for (let d = 0; d < 16; d++) {
      b[12] = d << 4;
      expect(t.attach(b, 0, 40)).toBe(d < 5 || d > 10 ? WireError.BadHeaderLen : WireError.Ok);
    }
    const big = new Uint8Array(80);
    big[12] = 0xf0;
    expect(t.attach(big, 0, 80)).toBe(WireError.Ok);
    expect(t.headerLen).toBe(60);
    expect(t.attach(big, 0, 59)).toBe(WireError.BadHeaderLen);
  });
});

describe("TCP options", () => {
  test("emitting the real SYN's options reproduces Linux's layout byte for byte", () => {
    const o = new TcpOptions();
    o.mss = 1460;
    o.sackPermitted = true;
    o.hasTimestamps = true;
    o.tsVal = 2727459530;
    o.tsEcr = 0;
    o.windowScale = 10;
    const out = new Uint8Array(40);
    expect(tcpOptionsLen(o)).toBe(20);
    expect(emitTcpOptions(out, 0, o)).toBe(20);
    expect(toHex(out, 0, 20)).toBe(toHex(TCP4_SYN, 54, 20));
  });

  test("TcpRepr emit reproduces the real SYN and data segments (checksums filled after)", () => {
    const { ip } = v4(TCP4_SYN);
    const r = new TcpRepr({ srcPort: 54810, dstPort: 8081, seq: 3227271422, ack: 0, flags: TcpFlags.SYN, window: 64240 });
    r.options.mss = 1460;
    r.options.sackPermitted = true;
    r.options.hasTimestamps = true;
    r.options.tsVal = 2727459530;
    r.options.windowScale = 10;
    expect(r.headerLen).toBe(40);
    const out = new Uint8Array(41);
    expect(r.emit(out, 1)).toBe(40);
    new TcpView().wrap(out, 1, 40).fillChecksumV4(ip.src, ip.dst);
    expect(toHex(out, 1)).toBe(toHex(TCP4_SYN, 34));

    const d = new TcpRepr({ srcPort: 54810, dstPort: 8081, seq: 3227271423, ack: 2306391235, flags: 0x18, window: 63 });
    d.options.hasTimestamps = true;
    d.options.tsVal = 2727459530;
    d.options.tsEcr = 1426358693;
    const seg = new Uint8Array(37);
    const hl = d.emit(seg, 0);
    expect(hl).toBe(32);
    seg.set(new TextEncoder().encode("hello"), hl);
    new TcpView().wrap(seg, 0, 37).fillChecksumV4(ip.src, ip.dst);
    expect(toHex(seg)).toBe(toHex(TCP4_PSH, 34));

    // And parse back.
    const t = new TcpView();
    expect(t.attach(seg, 0, 37)).toBe(WireError.Ok);
    const back = new TcpRepr();
    expect(back.parse(t)).toBe(WireError.Ok);
    expect([back.seq, back.ack, back.flags, back.window, back.options.tsEcr]).toEqual([
      3227271423, 2306391235, 0x18, 63, 1426358693,
    ]);
  });

  test("SACK blocks: as many as fit in 40 bytes", () => {
    const o = new TcpOptions();
    for (let i = 0; i < 4; i++) expect(o.addSackBlock(1000 * i, 1000 * i + 500)).toBe(true);
    expect(o.addSackBlock(1, 2)).toBe(false);
    const out = new Uint8Array(40);
    const t = new TcpView();
    const back = new TcpOptions();
    const check = (expectLen: number, expectBlocks: number) => {
      const n = emitTcpOptions(out, 0, o);
      expect(n).toBe(expectLen);
      expect(tcpOptionsLen(o)).toBe(n);
      expect(n % 4).toBe(0);
      expect(n).toBeLessThanOrEqual(40);
      const seg = new Uint8Array(20 + n);
      seg[12] = ((20 + n) >>> 2) << 4;
      seg.set(out.subarray(0, n), 20);
      expect(t.attach(seg, 0, seg.length)).toBe(WireError.Ok);
      expect(parseTcpOptions(t, back)).toBe(WireError.Ok);
      expect(back.sackCount).toBe(expectBlocks);
      for (let i = 0; i < expectBlocks; i++) {
        expect(back.sackBlocks[2 * i]).toBe(1000 * i);
        expect(back.sackBlocks[2 * i + 1]).toBe(1000 * i + 500);
      }
    };
    check(36, 4); // no timestamps: NOP NOP 05 34 + 4 blocks
    o.hasTimestamps = true;
    check(40, 3); // 12 + 4 + 24
    o.mss = 1460;
    o.windowScale = 7;
    check(40, 2); // 4 + 12 + 4 + (4 + 16): SYN-sized options leave room for 2
    o.sackPermitted = true;
    check(40, 2);
    o.hasTimestamps = false;
    check(40, 3); // 4 + 4 + 4 + (4 + 24)
    o.mss = 0;
    check(36, 3); // 4 + 4 + (4 + 24); a fourth block would need 44
  });

  test("wraparound values and clamping", () => {
    const o = new TcpOptions();
    o.windowScale = 20;
    o.addSackBlock(0xfffffff0, 0x10);
    o.hasTimestamps = true;
    o.tsVal = 0xffffffff;
    o.tsEcr = 0x80000000;
    const out = new Uint8Array(60);
    const n = emitTcpOptions(out, 20, o);
    out[12] = ((20 + n) >>> 2) << 4;
    const t = new TcpView();
    expect(t.attach(out, 0, 20 + n)).toBe(WireError.Ok);
    const back = new TcpOptions();
    expect(parseTcpOptions(t, back)).toBe(WireError.Ok);
    expect(back.windowScale).toBe(14);
    expect([back.sackBlocks[0], back.sackBlocks[1]]).toEqual([0xfffffff0, 0x10]);
    expect([back.tsVal, back.tsEcr]).toEqual([0xffffffff, 0x80000000]);
  });

  test("parsing rules: NOP, EOL, unknown kinds, wrong lengths, window scale clamp", () => {
    const o = new TcpOptions();
    // Window scale 15 is read as 14 (RFC 7323 §2.3).
    expect(parseTcpOptions(withOptions("01 03030f"), o)).toBe(WireError.Ok);
    expect(o.windowScale).toBe(14);
    // EOL ends the list: the MSS after it is not read.
    expect(parseTcpOptions(withOptions("00 020405b4 000000"), o)).toBe(WireError.Ok);
    expect(o.mss).toBe(0);
    // Unknown kind 30 (MPTCP) with length 6 is skipped.
    expect(parseTcpOptions(withOptions("1e06 00000000 020405b4 0000"), o)).toBe(WireError.Ok);
    expect(o.mss).toBe(1460);
    // Known kinds with the wrong length are ignored but skipped by their length.
    // MSS len 5, WS len 4, SACK-permitted len 3, TS len 11, then a valid WS proving the walk went on.
    expect(parseTcpOptions(withOptions("01 020505b400 03040a00 040300 080b000000000000000000 01030307"), o)).toBe(
      WireError.Ok,
    );
    expect([o.mss, o.windowScale, o.sackPermitted, o.hasTimestamps]).toEqual([0, 7, false, false]);
    // SACK whose length is not 2 + 8n is ignored.
    expect(parseTcpOptions(withOptions("0101 050b 00000001 00000002 00 000000"), o)).toBe(WireError.Ok);
    expect(o.sackCount).toBe(0);
    // A reused record is reset between segments.
    expect(parseTcpOptions(withOptions("020405b4"), o)).toBe(WireError.Ok);
    expect(parseTcpOptions(withOptions(""), o)).toBe(WireError.Ok);
    expect(o.mss).toBe(0);
  });

  test("malformed lists: zero/one length, overrun, kind without length; earlier options kept", () => {
    const o = new TcpOptions();
    expect(parseTcpOptions(withOptions("020405b4 0800 0000"), o)).toBe(WireError.BadOption); // length 0
    expect(o.mss).toBe(1460); // parsed before the bad option, documented as usable
    expect(parseTcpOptions(withOptions("0801 0000"), o)).toBe(WireError.BadOption); // length 1
    expect(parseTcpOptions(withOptions("080a 00000000"), o)).toBe(WireError.BadOption); // runs past the header
    expect(o.hasTimestamps).toBe(false);
    expect(parseTcpOptions(withOptions("010101 08"), o)).toBe(WireError.BadOption); // kind in the last byte
    expect(parseTcpOptions(withOptions("0428 0000"), o)).toBe(WireError.BadOption); // 40 bytes claimed in 4
    expect(parseTcpOptions(withOptions("01010101 01010101 01010101 01010101 01010101 01010101 01010101 01010101 01010101 01010101"), o)).toBe(
      WireError.Ok,
    ); // 40 NOPs
  });

  test("random option bytes: bounded results, WireError codes only (seeded)", () => {
    const rng = new Prng(7323);
    const o = new TcpOptions();
    const t = new TcpView();
    const b = new Uint8Array(60);
    for (let i = 0; i < 5000; i++) {
      const n = 4 * rng.int(11);
      b.fill(0);
      rng.fill(b, 20, n);
      // Bias towards known kinds so their parsers run.
      for (let k = 20; k < 20 + n; k += 1 + rng.int(6)) if (rng.int(2)) b[k] = [1, 2, 3, 4, 5, 8][rng.int(6)];
      b[12] = ((20 + n) >>> 2) << 4;
      expect(t.attach(b, 0, 20 + n)).toBe(WireError.Ok);
      const e = parseTcpOptions(t, o);
      expectWireError(e, [WireError.Ok, WireError.BadOption]);
      expect(o.sackCount).toBeLessThanOrEqual(4);
      expect(o.windowScale).toBeLessThanOrEqual(14);
      expect(o.windowScale).toBeGreaterThanOrEqual(-1);
    }
  });

  test("emit/parse round trip of random option records (seeded)", () => {
    const rng = new Prng(2018);
    const t = new TcpView();
    const back = new TcpOptions();
    for (let i = 0; i < 2000; i++) {
      const o = new TcpOptions();
      if (rng.int(2)) o.mss = 1 + rng.int(65535);
      if (rng.int(2)) o.windowScale = rng.int(15);
      o.sackPermitted = rng.int(2) === 1;
      if (rng.int(2)) {
        o.hasTimestamps = true;
        o.tsVal = rng.u32();
        o.tsEcr = rng.u32();
      }
      const nb = rng.int(5);
      for (let k = 0; k < nb; k++) o.addSackBlock(rng.u32(), rng.u32());
      const seg = new Uint8Array(60);
      const n = emitTcpOptions(seg, 20, o);
      expect(n).toBe(tcpOptionsLen(o));
      expect(n).toBeLessThanOrEqual(40);
      seg[12] = ((20 + n) >>> 2) << 4;
      expect(t.attach(seg, 0, 20 + n)).toBe(WireError.Ok);
      expect(parseTcpOptions(t, back)).toBe(WireError.Ok);
      expect([back.mss, back.windowScale, back.sackPermitted, back.hasTimestamps, back.tsVal, back.tsEcr]).toEqual([
        o.mss,
        o.windowScale,
        o.sackPermitted,
        o.hasTimestamps,
        o.tsVal,
        o.tsEcr,
      ]);
      expect(back.sackCount).toBeLessThanOrEqual(o.sackCount);
      for (let k = 0; k < 2 * back.sackCount; k++) expect(back.sackBlocks[k]).toBe(o.sackBlocks[k]);
      const copy = new TcpOptions().copyFrom(back);
      expect(copy.sackCount).toBe(back.sackCount);
    }
  });
});
