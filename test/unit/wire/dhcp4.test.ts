// DHCPv4 wire format (RFC 2131 §2, RFC 2132, RFC 3396, RFC 3397): the
// view's checks, the option walk (overload into file and sname), the
// writer's splitting of long options, option 119's encoding, and hostile
// messages that must never throw nor read outside their window.
import { describe, expect, test } from "bun:test";
import {
  DHCP4_OPTIONS_OFF,
  Dhcp4Options,
  Dhcp4View,
  Dhcp4Writer,
  DhcpOpt,
  encodeDomainSearch,
  parseDhcp4Options,
} from "../../../src/wire/dhcp4.ts";
import { WireError, isWireError } from "../../../src/wire/errors.ts";
import { Prng, embed } from "./helpers.ts";

function message(options: number[]): Uint8Array {
  const b = new Uint8Array(DHCP4_OPTIONS_OFF + options.length);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  b.set([0xde, 0xad, 0xbe, 0xef], 4);
  b.set([0x80, 0], 10);
  b.set([2, 0, 0, 0, 0, 9], 28);
  b.set([99, 130, 83, 99], 236);
  b.set(options, DHCP4_OPTIONS_OFF);
  return b;
}

const v = new Dhcp4View();
const o = new Dhcp4Options();

describe("Dhcp4View and parseDhcp4Options", () => {
  test("fixed fields and options, at an offset inside a larger buffer", () => {
    const m = message([53, 1, 3, 50, 4, 10, 0, 2, 100, 54, 4, 10, 0, 2, 2, 57, 2, 5, 220, 255]);
    const b = embed(m, 11);
    expect(v.attach(b, 11, m.length)).toBe(WireError.Ok);
    expect([v.op, v.htype, v.hlen, v.xid, v.flags, v.chaddrOff]).toEqual([1, 1, 6, 0xdeadbeef, 0x8000, 11 + 28]);
    expect(parseDhcp4Options(v, o)).toBe(WireError.Ok);
    expect([o.messageType, o.requestedIp, o.serverId, o.maxMessageSize]).toEqual([3, 0x0a000264, 0x0a000202, 1500]);
  });

  test("short messages are Truncated, a wrong cookie Malformed, a bad window BadBounds", () => {
    const m = message([53, 1, 1, 255]);
    expect(v.attach(m, 0, 239)).toBe(WireError.Truncated);
    const c = m.slice();
    c[238] = 0;
    expect(v.attach(c, 0, c.length)).toBe(WireError.Malformed);
    expect(v.attach(m, 5, m.length)).toBe(WireError.BadBounds);
  });

  test("an option running past the message, or one of ours with the wrong length, is BadOption", () => {
    for (const opts of [[53, 1], [53, 5, 1], [53, 2, 1, 1], [50, 3, 1, 2, 3], [54, 5, 1, 2, 3, 4, 5], [57, 1, 2], [52, 2, 1, 1], [12]]) {
      expect(v.attach(message(opts), 0, DHCP4_OPTIONS_OFF + opts.length)).toBe(WireError.Ok);
      expect(parseDhcp4Options(v, o)).toBe(WireError.BadOption);
    }
  });

  test("END stops the walk (what follows is padding); the message's end does too", () => {
    v.attach(message([53, 1, 1, 255, 53, 1, 9]), 0, DHCP4_OPTIONS_OFF + 7);
    expect(parseDhcp4Options(v, o)).toBe(WireError.Ok);
    expect(o.messageType).toBe(1);
    v.attach(message([0, 0, 53, 1, 8]), 0, DHCP4_OPTIONS_OFF + 5);
    expect(parseDhcp4Options(v, o)).toBe(WireError.Ok);
    expect(o.messageType).toBe(8);
  });

  test("option 52 (RFC 2131 §4.1): file, then sname, carry options; 52 there is ignored", () => {
    const m = message([52, 1, 3, 255]);
    m.set([53, 1, 3, 52, 1, 0, 255], 108);
    m.set([50, 4, 10, 0, 2, 101, 255], 44);
    v.attach(m, 0, m.length);
    expect(parseDhcp4Options(v, o)).toBe(WireError.Ok);
    expect([o.messageType, o.requestedIp]).toEqual([3, 0x0a000265]);
    // Only file (1): sname is not read.
    m[242] = 1;
    expect(parseDhcp4Options(v, o)).toBe(WireError.Ok);
    expect(o.requestedIp).toBe(0);
    // An option overflowing the file field.
    m.set([12, 10], 108 + 120);
    m[108 + 6] = 0;
    expect(parseDhcp4Options(v, o)).toBe(WireError.BadOption);
  });
});

describe("Dhcp4Writer", () => {
  const req = message([53, 1, 1, 255]);
  v.attach(req, 0, req.length);

  test("echoes xid, flags and chaddr, writes addresses and pads to 300 bytes", () => {
    const w = new Dhcp4Writer();
    const buf = new Uint8Array(700).fill(0xee);
    w.begin(buf, 10, 548, v, 0, 0x0a000264, 0);
    expect(w.u8(DhcpOpt.MESSAGE_TYPE, 2)).toBe(true);
    expect(w.addresses(DhcpOpt.DNS, [0x01020304, 0x05060708])).toBe(true);
    expect(w.addresses(DhcpOpt.DNS, [])).toBe(false);
    const n = w.end();
    expect(n).toBe(300);
    const m = buf.subarray(10, 10 + n);
    expect([...m.subarray(0, 12)]).toEqual([2, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x80, 0]);
    expect([...m.subarray(16, 20)]).toEqual([10, 0, 2, 100]);
    expect([...m.subarray(28, 34)]).toEqual([2, 0, 0, 0, 0, 9]);
    expect([...m.subarray(240, 254)]).toEqual([53, 1, 2, 6, 8, 1, 2, 3, 4, 5, 6, 7, 8, 255]);
    expect(m.subarray(254).every((x) => x === 0)).toBe(true);
    expect(buf[10 + 300]).toBe(0xee);
  });

  test("long data is split into options of at most 255 bytes (RFC 3396); what does not fit is refused whole", () => {
    const w = new Dhcp4Writer();
    const buf = new Uint8Array(2000);
    const data = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
    w.begin(buf, 0, 1500, v, 0, 0, 0);
    expect(w.bytes(119, data)).toBe(true);
    const n = w.end();
    expect([buf[240], buf[241], buf[240 + 257], buf[240 + 258], buf[240 + 514], buf[240 + 515]]).toEqual([119, 255, 119, 255, 119, 90]);
    expect(n).toBe(240 + 606 + 1);
    w.begin(buf, 0, 548, v, 0, 0, 0);
    expect(w.bytes(119, data)).toBe(false);
    expect(w.u32(51, 1)).toBe(true);
    expect(w.end()).toBe(300);
    expect([...buf.subarray(240, 247)]).toEqual([51, 4, 0, 0, 0, 1, 255]);
  });
});

describe("encodeDomainSearch (RFC 3397)", () => {
  test("RFC 3397 §3's example: eng.apple.com and marketing.apple.com", () => {
    const b = encodeDomainSearch(["eng.apple.com.", "marketing.apple.com"]);
    const enc = (s: string) => [...new TextEncoder().encode(s)];
    expect([...b]).toEqual([3, ...enc("eng"), 5, ...enc("apple"), 3, ...enc("com"), 0, 9, ...enc("marketing"), 0xc0, 4]);
  });

  test("a repeated name is one pointer; case does not matter; invalid names are left out", () => {
    const b = encodeDomainSearch(["a.example", "A.EXAMPLE", "bad..name", "x".repeat(64) + ".com", "example"]);
    expect([...b]).toEqual([1, 97, 7, ...new TextEncoder().encode("example"), 0, 0xc0, 0, 0xc0, 2]);
    expect(encodeDomainSearch([]).length).toBe(0);
    expect(encodeDomainSearch(["."]).length).toBe(0);
  });
});

describe("hostile DHCP messages", () => {
  function guarded(b: Uint8Array, lo: number, hi: number): Uint8Array {
    return new Proxy(b, {
      get(target, prop) {
        if (typeof prop === "string" && prop.length > 0 && prop.charCodeAt(0) >= 48 && prop.charCodeAt(0) <= 57) {
          const i = Number(prop);
          if (i < lo || i >= hi) throw new Error(`out-of-window read at ${i} (window ${lo}..${hi})`);
          return target[i];
        }
        const r = Reflect.get(target, prop, target);
        return typeof r === "function" ? r.bind(target) : r;
      },
    });
  }

  test("20000 random option areas behind a good cookie: codes only, no read outside the window", () => {
    const rng = new Prng(0xd0c);
    for (let i = 0; i < 20_000; i++) {
      const len = DHCP4_OPTIONS_OFF + rng.int(120);
      const raw = rng.bytes(len + 8);
      raw.set([99, 130, 83, 99], 4 + 236);
      // Often claim overload, so file and sname get walked too.
      if (rng.int(2)) raw.set([52, 1, rng.int(4)], 4 + DHCP4_OPTIONS_OFF);
      const g = guarded(raw, 4, 4 + len);
      const e = v.attach(g, 4, len);
      expect(e).toBe(WireError.Ok);
      expect(isWireError(parseDhcp4Options(v, o))).toBe(true);
    }
  });
});
