// src/wire/proxy.ts: the client-address headers of -L tcppp and udpspp.
//
// - PROXY v1 text, every rule upstream has (docs/compatibility.md, PROXY
//   protocol for tcppp): the header must be in the buffer (the first
//   read) and hold "\n"; the line starts with "PROXY TCP4 " or
//   "PROXY TCP6 " and ends with "\r\n"; exactly four
//   single-space-separated fields; IPs of either family whatever the
//   TCP4/TCP6 word says; decimal ports 0..65535; every failure reads
//   "spp: bad magic number" except the missing "\n" ("unexpected EOF");
//   the bytes after the line are payload (headerLen).
// - PROXY v2 binary (our addition, proxy-protocol.txt §2.2): PROXY and
//   LOCAL commands, TCP4/UDP4/TCP6/UDP6/UNSPEC, TLVs skipped, truncation.
// - Cloudflare SPP (SPP for udpspp): 38 bytes, magic 0x56EC, IPv4-mapped
//   addresses shown as IPv4.
// - Hostile input: seeded random bytes never throw and results stay sane.
import { describe, expect, test } from "bun:test";
import { ERR_BAD_MAGIC, ERR_UNEXPECTED_EOF, SPP_HEADER_LEN, parseProxyHeader, parseSppHeader, type ProxyParse } from "../../../src/wire/proxy.ts";
import { Prng } from "./helpers.ts";

const latin1 = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
};

function v1(text: string): ProxyParse {
  return parseProxyHeader(latin1(text));
}

function expectOk(r: ProxyParse, addrs: { srcIp: string; dstIp: string; srcPort: number; dstPort: number } | null, headerLen: number): void {
  expect(r).toEqual({ ok: true, addrs, headerLen });
}

function expectErr(r: ProxyParse, error: string): void {
  expect(r).toEqual({ ok: false, error });
}

describe("PROXY v1", () => {
  test("TCP4 and TCP6 lines give the addresses and the header length", () => {
    const line4 = "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n";
    expectOk(v1(line4), { srcIp: "1.2.3.4", dstIp: "5.6.7.8", srcPort: 1111, dstPort: 2222 }, line4.length);
    const line6 = "PROXY TCP6 2001:db8::1 fd00::100 65535 0\r\n";
    expectOk(v1(line6), { srcIp: "2001:db8::1", dstIp: "fd00::100", srcPort: 65535, dstPort: 0 }, line6.length);
  });

  test("bytes after the line are payload: headerLen points at them", () => {
    const line = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    const buf = latin1(line + "GET / HTTP/1.0\r\n\r\n");
    const r = parseProxyHeader(buf);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.headerLen).toBe(line.length);
    expect(Buffer.from(buf.subarray(r.headerLen)).toString()).toBe("GET / HTTP/1.0\r\n\r\n");
  });

  test("binary payload after the line, including more \\r\\n, is left alone", () => {
    const line = latin1("PROXY TCP6 ::1 ::2 10 20\r\n");
    const payload = new Uint8Array([0, 0x0d, 0x0a, 0xff, 0x0a]);
    const r = parseProxyHeader(concat(line, payload));
    expect(r).toMatchObject({ ok: true, headerLen: line.length, addrs: { srcIp: "::1", dstIp: "::2", srcPort: 10, dstPort: 20 } });
  });

  test("the TCP4/TCP6 word is not checked against the address family", () => {
    expect(v1("PROXY TCP4 abcd::1 dcba::1 1 2\r\n")).toMatchObject({ ok: true, addrs: { srcIp: "abcd::1", dstIp: "dcba::1" } });
    expect(v1("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n")).toMatchObject({ ok: true, addrs: { srcIp: "1.2.3.4", dstIp: "5.6.7.8" } });
    expect(v1("PROXY TCP4 1.2.3.4 ::1 1 2\r\n")).toMatchObject({ ok: true, addrs: { srcIp: "1.2.3.4", dstIp: "::1" } });
  });

  test("no \\n in the first read: unexpected EOF (there is no second read)", () => {
    expectErr(v1(""), ERR_UNEXPECTED_EOF);
    expectErr(v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), ERR_UNEXPECTED_EOF);
    expectErr(v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"), ERR_UNEXPECTED_EOF);
    expectErr(v1("GET / HTTP/1.0"), ERR_UNEXPECTED_EOF);
  });

  test("the line must end with \\r\\n: a bare \\n is a bad header", () => {
    expectErr(v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), ERR_BAD_MAGIC);
    // The first "\n" ends the line, even if "\r\n" comes later.
    expectErr(v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nX\r\n"), ERR_BAD_MAGIC);
  });

  test("the line must start with PROXY TCP4 / PROXY TCP6 (UNKNOWN and others are rejected)", () => {
    for (const bad of [
      "PROXY UNKNOWN\r\n",
      "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
      " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4\r\n",
      "PROXY\r\n",
      "\r\n",
      "GET / HTTP/1.0\r\n",
    ]) {
      expect({ bad, r: v1(bad) }).toEqual({ bad, r: { ok: false, error: ERR_BAD_MAGIC } });
    }
  });

  test("exactly four fields separated by single spaces", () => {
    for (const bad of [
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
      "PROXY TCP4 1.2.3.4\r\n",
      "PROXY TCP4 \r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
      "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
    ]) {
      expect({ bad, r: v1(bad) }).toEqual({ bad, r: { ok: false, error: ERR_BAD_MAGIC } });
    }
  });

  test("ports: decimal 0..65535", () => {
    expect(v1("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n")).toMatchObject({ ok: true, addrs: { srcPort: 0, dstPort: 65535 } });
    for (const port of ["65536", "99999", "-1", "1a", "a", "0x10", "1.5", " ", "4294967297"]) {
      const line = `PROXY TCP4 1.2.3.4 5.6.7.8 ${port} 80\r\n`;
      expect({ line, r: v1(line) }).toEqual({ line, r: { ok: false, error: ERR_BAD_MAGIC } });
      const line2 = `PROXY TCP4 1.2.3.4 5.6.7.8 80 ${port}\r\n`;
      expect({ line2, r: v1(line2) }).toEqual({ line2, r: { ok: false, error: ERR_BAD_MAGIC } });
    }
  });

  test("IPs must be IP literals of either family", () => {
    for (const ip of ["localhost", "1.2.3", "1.2.3.4.5", "999.1.1.1", "256.0.0.1", "1.2.3.-4", "::g", "1:2:3:4:5:6:7:8:9", ":::", "fe80::1%lo", "[::1]", "", "1.2.3.4/24"]) {
      const src = `PROXY TCP4 ${ip} 5.6.7.8 1 2\r\n`;
      expect({ src, r: v1(src) }).toEqual({ src, r: { ok: false, error: ERR_BAD_MAGIC } });
      const dst = `PROXY TCP6 ::1 ${ip} 1 2\r\n`;
      expect({ dst, r: v1(dst) }).toEqual({ dst, r: { ok: false, error: ERR_BAD_MAGIC } });
    }
  });

  test("IPv4-mapped and long-form IPv6 are accepted", () => {
    expect(v1("PROXY TCP6 ::ffff:1.2.3.4 2001:0db8:0000:0000:0000:0000:0000:0001 1 2\r\n").ok).toBe(true);
  });

  test("the buffer is not modified", () => {
    const buf = latin1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nabc");
    const copy = buf.slice();
    parseProxyHeader(buf);
    expect(buf).toEqual(copy);
  });
});

// ---------------------------------------------------------------------------

const SIG = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function v2(verCmd: number, fam: number, body: Uint8Array, lenOverride?: number): Uint8Array {
  const len = lenOverride ?? body.length;
  return concat(SIG, new Uint8Array([verCmd, fam, len >> 8, len & 0xff]), body);
}

function v4Body(src: number[], dst: number[], sp: number, dp: number): Uint8Array {
  return new Uint8Array([...src, ...dst, sp >> 8, sp & 0xff, dp >> 8, dp & 0xff]);
}

function v6Body(src: Uint8Array, dst: Uint8Array, sp: number, dp: number): Uint8Array {
  return concat(src, dst, new Uint8Array([sp >> 8, sp & 0xff, dp >> 8, dp & 0xff]));
}

const V6_A = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
const V6_B = new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00]);

describe("PROXY v2 (binary, detected by its signature)", () => {
  test("PROXY TCP4", () => {
    const buf = v2(0x21, 0x11, v4Body([1, 2, 3, 4], [10, 0, 2, 100], 4660, 80));
    expectOk(parseProxyHeader(buf), { srcIp: "1.2.3.4", dstIp: "10.0.2.100", srcPort: 4660, dstPort: 80 }, 28);
  });

  test("PROXY UDP4 gives the addresses too", () => {
    const buf = v2(0x21, 0x12, v4Body([192, 0, 2, 1], [5, 6, 7, 8], 1, 65535));
    expectOk(parseProxyHeader(buf), { srcIp: "192.0.2.1", dstIp: "5.6.7.8", srcPort: 1, dstPort: 65535 }, 28);
  });

  test("PROXY TCP6 and UDP6", () => {
    for (const fam of [0x21, 0x22]) {
      const buf = v2(0x21, fam, v6Body(V6_A, V6_B, 65535, 0));
      expectOk(parseProxyHeader(buf), { srcIp: "2001:db8::1", dstIp: "fd00::100", srcPort: 65535, dstPort: 0 }, 52);
    }
  });

  test("TCP6 with IPv4-mapped addresses gives plain IPv4", () => {
    const mapped = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
    const r = parseProxyHeader(v2(0x21, 0x21, v6Body(mapped, V6_B, 7, 8)));
    expect(r).toMatchObject({ ok: true, addrs: { srcIp: "1.2.3.4", dstIp: "fd00::100" } });
  });

  test("TLVs after the addresses are skipped; the payload follows them", () => {
    const tlv = new Uint8Array([0x04, 0x00, 0x02, 0xaa, 0xbb]); // PP2_TYPE_NOOP, length 2
    const payload = latin1("hello");
    const buf = concat(v2(0x21, 0x11, concat(v4Body([1, 2, 3, 4], [5, 6, 7, 8], 9, 10), tlv)), payload);
    const r = parseProxyHeader(buf);
    expect(r).toMatchObject({ ok: true, headerLen: 16 + 12 + tlv.length, addrs: { srcIp: "1.2.3.4" } });
    if (r.ok) expect(Buffer.from(buf.subarray(r.headerLen)).toString()).toBe("hello");
  });

  test("LOCAL: no addresses (use the real peer); its body is skipped", () => {
    expectOk(parseProxyHeader(v2(0x20, 0x00, new Uint8Array(0))), null, 16);
    // LOCAL may still carry an address block, which is ignored.
    expectOk(parseProxyHeader(v2(0x20, 0x11, v4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))), null, 28);
  });

  test("UNSPEC and AF_UNIX: no addresses", () => {
    expectOk(parseProxyHeader(v2(0x21, 0x00, new Uint8Array(0))), null, 16);
    expectOk(parseProxyHeader(v2(0x21, 0x31, new Uint8Array(216))), null, 16 + 216);
  });

  test("truncated: the signature alone, a partial fixed header, a body shorter than its length", () => {
    expectErr(parseProxyHeader(SIG), ERR_UNEXPECTED_EOF);
    expectErr(parseProxyHeader(concat(SIG, new Uint8Array([0x21, 0x11, 0x00]))), ERR_UNEXPECTED_EOF);
    const full = v2(0x21, 0x11, v4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    for (let n = 16; n < full.length; n++) expectErr(parseProxyHeader(full.subarray(0, n)), ERR_UNEXPECTED_EOF);
    const full6 = v2(0x21, 0x21, v6Body(V6_A, V6_B, 1, 2));
    expectErr(parseProxyHeader(full6.subarray(0, full6.length - 1)), ERR_UNEXPECTED_EOF);
    // The length field promises more than what came.
    expectErr(parseProxyHeader(v2(0x21, 0x11, v4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 40)), ERR_UNEXPECTED_EOF);
  });

  test("a wrong version or an unknown command is a bad header", () => {
    const body = v4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    for (const verCmd of [0x11, 0x31, 0x01, 0xf1, 0x22, 0x2f]) {
      expect({ verCmd, r: parseProxyHeader(v2(verCmd, 0x11, body)) }).toEqual({ verCmd, r: { ok: false, error: ERR_BAD_MAGIC } });
    }
  });

  test("a corrupted signature is not v2: it is read as v1 and fails", () => {
    const buf = v2(0x21, 0x11, v4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    buf[11] = 0x0b;
    expect(parseProxyHeader(buf).ok).toBe(false);
  });
});

// ---------------------------------------------------------------------------

function spp(client: Uint8Array, proxy: Uint8Array, cport: number, pport: number, magic = [0x56, 0xec]): Uint8Array {
  return concat(new Uint8Array(magic), client, proxy, new Uint8Array([cport >> 8, cport & 0xff, pport >> 8, pport & 0xff]));
}

const mapped = (a: number, b: number, c: number, d: number) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]);

describe("SPP", () => {
  test("a 38-byte header with IPv4-mapped addresses gives plain IPv4", () => {
    const h = spp(mapped(1, 2, 3, 4), mapped(10, 0, 2, 100), 0x1234, 53);
    expect(h.length).toBe(SPP_HEADER_LEN);
    expectOk(parseSppHeader(h), { srcIp: "1.2.3.4", dstIp: "10.0.2.100", srcPort: 0x1234, dstPort: 53 }, 38);
  });

  test("IPv6 addresses; the payload after the header is not looked at", () => {
    const buf = concat(spp(V6_A, V6_B, 65535, 0), latin1("payload"));
    expectOk(parseSppHeader(buf), { srcIp: "2001:db8::1", dstIp: "fd00::100", srcPort: 65535, dstPort: 0 }, 38);
  });

  test("an all-zero client address is ::", () => {
    const r = parseSppHeader(spp(new Uint8Array(16), new Uint8Array(16), 0, 0));
    expect(r).toMatchObject({ ok: true, addrs: { srcIp: "::", dstIp: "::" } });
  });

  test("short: unexpected EOF", () => {
    const h = spp(mapped(1, 2, 3, 4), mapped(5, 6, 7, 8), 1, 2);
    for (const n of [0, 1, 2, 37]) expectErr(parseSppHeader(h.subarray(0, n)), ERR_UNEXPECTED_EOF);
  });

  test("bad magic", () => {
    for (const magic of [[0, 0], [0xec, 0x56], [0x56, 0xed], [0x57, 0xec]]) {
      expectErr(parseSppHeader(spp(mapped(1, 2, 3, 4), mapped(5, 6, 7, 8), 1, 2, magic)), ERR_BAD_MAGIC);
    }
    // 38 zero bytes (what later datagrams of a flow may carry) are not a first header.
    expectErr(parseSppHeader(new Uint8Array(38)), ERR_BAD_MAGIC);
  });
});

// ---------------------------------------------------------------------------

describe("hostile input (seeded)", () => {
  function check(r: ProxyParse, buf: Uint8Array): void {
    if (!r.ok) {
      expect([ERR_BAD_MAGIC, ERR_UNEXPECTED_EOF]).toContain(r.error);
      return;
    }
    expect(Number.isInteger(r.headerLen)).toBe(true);
    expect(r.headerLen).toBeGreaterThan(0);
    expect(r.headerLen).toBeLessThanOrEqual(buf.length);
    if (r.addrs !== null) {
      for (const p of [r.addrs.srcPort, r.addrs.dstPort]) {
        expect(Number.isInteger(p) && p >= 0 && p <= 65535).toBe(true);
      }
      expect(typeof r.addrs.srcIp).toBe("string");
      expect(typeof r.addrs.dstIp).toBe("string");
    }
  }

  test("random bytes, random v1-looking lines, random v2 and SPP bodies never throw", () => {
    const rng = new Prng(0x5eed);
    const prefixes = [new Uint8Array(0), latin1("PROXY TCP4 "), latin1("PROXY TCP6 "), SIG, concat(SIG, new Uint8Array([0x21])), new Uint8Array([0x56, 0xec])];
    const alphabet = latin1("0123456789abcdef.: \r\n");
    for (let i = 0; i < 20_000; i++) {
      const prefix = prefixes[rng.int(prefixes.length)]!;
      const n = rng.int(i % 10 === 0 ? 600 : 80);
      const tail = rng.bytes(n);
      // Half of the time use text-like bytes, so v1 parsing gets deep.
      if (rng.int(2) === 0) for (let j = 0; j < tail.length; j++) tail[j] = alphabet[rng.int(alphabet.length)]!;
      const buf = concat(prefix, tail);
      let r1: ProxyParse;
      let r2: ProxyParse;
      try {
        r1 = parseProxyHeader(buf);
        r2 = parseSppHeader(buf);
      } catch (e) {
        throw new Error(`threw on ${Buffer.from(buf).toString("hex")}: ${e}`);
      }
      check(r1, buf);
      check(r2, buf);
    }
  });

  test("every truncation of valid headers never throws", () => {
    const samples = [
      latin1("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nhello"),
      latin1("PROXY TCP6 2001:db8::1 fd00::100 1 2\r\n"),
      v2(0x21, 0x21, v6Body(V6_A, V6_B, 1, 2)),
      v2(0x20, 0x00, new Uint8Array(0)),
      spp(mapped(1, 2, 3, 4), mapped(5, 6, 7, 8), 1, 2),
    ];
    for (const s of samples) {
      for (let n = 0; n <= s.length; n++) {
        const buf = s.subarray(0, n);
        check(parseProxyHeader(buf), buf);
        check(parseSppHeader(buf), buf);
      }
    }
  });
});
