// The DNS message codec (src/wire/dns.ts): known packets, compression,
// and hostile input that must never throw.
import { describe, expect, test } from "bun:test";
import {
  DnsClass,
  DnsRcode,
  DnsType,
  encodeDnsMessage,
  encodeDnsName,
  encodeDnsQuery,
  parseDnsHeader,
  parseDnsMessage,
  type DnsMessage,
} from "../../../src/wire/dns.ts";
import { WireError } from "../../../src/wire/errors.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g)!.map((byte) => parseInt(byte, 16)));
}

function parsedOk(bytes: Uint8Array): DnsMessage {
  const result = parseDnsMessage(bytes);
  if (!result.ok) throw new Error(result.error);
  return result.message;
}

// A query for example.com/A, ID 0x1234, RD set.
const QUERY = hex("1234 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001");

// Its answer: QR AA RD RA, two A records, owner names compressed to offset 12.
const RESPONSE = hex(`
  1234 8580 0001 0002 0000 0000
  07 6578616d706c65 03 636f6d 00 0001 0001
  c00c 0001 0001 00000e10 0004 5db8d822
  c00c 0001 0001 00000e10 0004 01020304`);

// An SRV answer whose target is "echo" + a pointer into the question name
// ("_x._tcp.test" at 12: "test" starts at offset 12 + 3 + 5 = 20).
const SRV_RESPONSE = hex(`
  beef 8400 0001 0001 0000 0000
  02 5f78 04 5f746370 04 74657374 00 0021 0001
  c00c 0021 0001 0000003c 000d 000a 0005 1f90 04 6563686f c014`);

describe("known packets", () => {
  test("a query", () => {
    const message = parsedOk(QUERY);
    expect(message.header).toEqual({
      id: 0x1234,
      response: false,
      opcode: 0,
      authoritative: false,
      truncated: false,
      recursionDesired: true,
      recursionAvailable: false,
      z: 0,
      rcode: 0,
    });
    expect(message.questions).toEqual([{ name: "example.com", type: DnsType.A, class: DnsClass.IN }]);
    expect(message.answers).toEqual([]);
  });

  test("encodeDnsQuery gives the same bytes", () => {
    expect(encodeDnsQuery(0x1234, "example.com", DnsType.A)).toEqual(QUERY);
    expect(encodeDnsQuery(0x1234, "example.com.", DnsType.A)).toEqual(QUERY);
  });

  test("a response with compressed owner names", () => {
    const message = parsedOk(RESPONSE);
    expect(message.header).toMatchObject({ response: true, authoritative: true, recursionAvailable: true });
    expect(message.answers).toEqual([
      { name: "example.com", type: DnsType.A, class: DnsClass.IN, ttl: 3600, data: { kind: "a", address: "93.184.216.34" } },
      { name: "example.com", type: DnsType.A, class: DnsClass.IN, ttl: 3600, data: { kind: "a", address: "1.2.3.4" } },
    ]);
  });

  test("an SRV record whose target is compressed", () => {
    const message = parsedOk(SRV_RESPONSE);
    expect(message.answers).toEqual([
      {
        name: "_x._tcp.test",
        type: DnsType.SRV,
        class: DnsClass.IN,
        ttl: 60,
        data: { kind: "srv", priority: 10, weight: 5, port: 8080, target: "echo.test" },
      },
    ]);
  });

  test("header flags, counts and rcode", () => {
    const bytes = encodeDnsMessage({
      header: { id: 7, response: true, opcode: 2, truncated: true, z: 5, rcode: DnsRcode.NXDOMAIN },
    });
    expect(bytes).toEqual(hex("0007 9253 0000 0000 0000 0000"));
    expect(parseDnsHeader(bytes)).toEqual({
      id: 7,
      response: true,
      opcode: 2,
      authoritative: false,
      truncated: true,
      recursionDesired: false,
      recursionAvailable: false,
      z: 5,
      rcode: 3,
    });
    expect(parseDnsHeader(bytes.subarray(0, 11))).toBeNull();
  });
});

describe("round trips", () => {
  test("every record kind", () => {
    const message: DnsMessage = {
      header: {
        id: 0xabcd,
        response: true,
        opcode: 0,
        authoritative: true,
        truncated: false,
        recursionDesired: true,
        recursionAvailable: false,
        z: 0,
        rcode: 0,
      },
      questions: [{ name: "a.test", type: DnsType.ANY, class: DnsClass.IN }],
      answers: [
        { name: "a.test", type: DnsType.CNAME, class: 1, ttl: 1, data: { kind: "cname", target: "b.test" } },
        { name: "b.test", type: DnsType.A, class: 1, ttl: 2, data: { kind: "a", address: "10.0.2.3" } },
        { name: "b.test", type: DnsType.AAAA, class: 1, ttl: 3, data: { kind: "aaaa", address: "fd00::3" } },
        { name: "b.test", type: DnsType.AAAA, class: 1, ttl: 3, data: { kind: "aaaa", address: "1:0:0:1::1" } },
        {
          name: "_s._udp.b.test",
          type: DnsType.SRV,
          class: 1,
          ttl: 4,
          data: { kind: "srv", priority: 1, weight: 2, port: 3, target: "" },
        },
      ],
      authorities: [{ name: "", type: DnsType.NS, class: 1, ttl: 5, data: { kind: "raw", bytes: encodeDnsName("ns.test") } }],
      additionals: [{ name: "", type: DnsType.OPT, class: 1232, ttl: 0, data: { kind: "raw", bytes: new Uint8Array(0) } }],
    };
    expect(parsedOk(encodeDnsMessage(message))).toEqual(message);
  });

  test("awkward label bytes survive as \\DDD and \\. escapes", () => {
    const name = "a\\.b\\\\c\\000\\255.test";
    const wire = encodeDnsName(name);
    expect(wire).toEqual(Uint8Array.from([7, 0x61, 0x2e, 0x62, 0x5c, 0x63, 0, 255, 4, 0x74, 0x65, 0x73, 0x74, 0]));
    const message = parsedOk(encodeDnsQuery(1, name, DnsType.A));
    expect(message.questions[0]!.name).toBe("a\\.b\\\\c\\000\\255.test");
  });

  test("names that cannot be encoded are refused on emit", () => {
    expect(() => encodeDnsName("a..b")).toThrow(RangeError);
    expect(() => encodeDnsName("x".repeat(64))).toThrow(RangeError);
    expect(() => encodeDnsName(Array(130).fill("a").join("."))).toThrow(RangeError);
    expect(encodeDnsName("")).toEqual(Uint8Array.from([0]));
    expect(encodeDnsName(".")).toEqual(Uint8Array.from([0]));
  });
});

describe("hostile input", () => {
  const header = (qd: number, an: number) =>
    `0001 8000 ${qd.toString(16).padStart(4, "0")} ${an.toString(16).padStart(4, "0")} 0000 0000`;

  test.each([
    ["empty", ""],
    ["short header", "0001 8000 0001"],
    ["question count past the end", header(1, 0)],
    ["label past the end", `${header(1, 0)} 05 6162`],
    ["pointer to itself", `${header(1, 0)} c00c 0001 0001`],
    ["two pointers in a loop", `${header(1, 0)} c00e c00c 0001 0001`],
    ["pointer past the end", `${header(1, 0)} c0ff 0001 0001`],
    ["truncated pointer", `${header(1, 0)} c0`],
    ["reserved label type", `${header(1, 0)} 40 0001 0001`],
    ["record data past the end", `${header(0, 1)} 00 0001 0001 00000000 0010 01020304`],
    ["A record of 3 bytes", `${header(0, 1)} 00 0001 0001 00000000 0003 010203`],
    ["AAAA record of 4 bytes", `${header(0, 1)} 00 001c 0001 00000000 0004 01020304`],
    ["SRV record too short", `${header(0, 1)} 00 0021 0001 00000000 0006 000000000000`],
    ["SRV target running out of its data", `${header(0, 1)} 00 0021 0001 00000000 0008 000000000000 0361`],
    ["CNAME target shorter than its data", `${header(0, 1)} 00 0005 0001 00000000 0003 00 0000`],
    ["name over 255 bytes", `${header(1, 0)} ${("3f" + "61".repeat(63)).repeat(4)} 00 0001 0001`],
    ["truncated TTL", `${header(0, 1)} 00 0001 0001 0000`],
  ])("%s is refused", (_name, text) => {
    const result = parseDnsMessage(text === "" ? new Uint8Array(0) : hex(text));
    expect(result.ok).toBe(false);
  });

  test("failures carry the shared WireError codes", () => {
    const code = (text: string) => {
      const result = parseDnsMessage(text === "" ? new Uint8Array(0) : hex(text));
      return result.ok ? null : result.code;
    };
    expect(code("")).toBe(WireError.Truncated);
    expect(code(`${header(1, 0)} 05 6162`)).toBe(WireError.Truncated);
    expect(code(`${header(1, 0)} 40 0001 0001`)).toBe(WireError.Unsupported);
    expect(code(`${header(1, 0)} c00c 0001 0001`)).toBe(WireError.Malformed);
  });

  test("a name of exactly 255 bytes is fine", () => {
    const name = [..."abc"].map((c) => c.repeat(63)).concat("d".repeat(61)).join(".");
    expect(encodeDnsName(name).length).toBe(255);
    expect(parsedOk(encodeDnsQuery(1, name, DnsType.A)).questions[0]!.name).toBe(name);
  });

  test("a long chain of pointers is capped", () => {
    // 200 pointers, each to the previous one, then a use of the last.
    const bytes: number[] = Array.from(hex(header(1, 0)));
    bytes.push(0); // root name at offset 12
    for (let i = 0; i < 200; i++) {
      const target = i === 0 ? 12 : 13 + (i - 1) * 2;
      bytes.push(0xc0 | (target >> 8), target & 0xff);
    }
    const last = 13 + 199 * 2;
    // Rewrite the question: it starts at 12 with the chain's end.
    const chained = Uint8Array.from([...bytes.slice(0, 12), 0xc0 | (last >> 8), last & 0xff, 0, 1, 0, 1, ...bytes.slice(12)]);
    expect(parseDnsMessage(chained).ok).toBe(false);
  });

  /** A small seeded PRNG (mulberry32), so failures reproduce. */
  function random(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  test("10,000 seeded random buffers never throw", () => {
    const next = random(0x5eed);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const length = Math.floor(next() * 96);
      const bytes = new Uint8Array(length);
      for (let j = 0; j < length; j++) bytes[j] = Math.floor(next() * 256);
      // Small section counts make it past the header more often.
      if (length >= 12 && next() < 0.7) {
        for (const at of [4, 6, 8, 10]) {
          bytes[at] = 0;
          bytes[at + 1] = Math.floor(next() * 3);
        }
      }
      const result = parseDnsMessage(bytes);
      if (result.ok) accepted++;
    }
    expect(accepted).toBeGreaterThan(0);
  });

  test("10,000 seeded mutations of real messages never throw", () => {
    const next = random(0xd15ea5e);
    const seeds = [QUERY, RESPONSE, SRV_RESPONSE];
    for (let i = 0; i < 10_000; i++) {
      const bytes = seeds[i % seeds.length]!.slice();
      const flips = 1 + Math.floor(next() * 4);
      for (let f = 0; f < flips; f++) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256);
      const cut = next() < 0.3 ? Math.floor(next() * bytes.length) : bytes.length;
      expect(() => parseDnsMessage(bytes.subarray(0, cut))).not.toThrow();
    }
  });
});
