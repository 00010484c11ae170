// The address module: Go's net.ParseIP / ParseCIDR rules, RFC 5952 text,
// Go's socket address text and host:port grammar, and the conversions
// between the engine's forms (uint32, 16 bytes at an offset) and records.
import { describe, expect, test } from "bun:test";
import {
  endpointText,
  formatHostPort,
  formatIP,
  ipFromV4,
  ipFromV6,
  ipV4Number,
  ipv4FromText,
  ipv4Text,
  ipv6FromText,
  ipv6Text,
  joinHostPort,
  parseCIDR,
  parseIP,
  parseIPZone,
  prefixContains,
  splitHostPort,
  v4EndpointText,
  v6EndpointText,
  v6IPText,
} from "../../../src/wire/addr.ts";
import { Prng } from "./helpers.ts";

const normalize = (text: string): string | null => {
  const ip = parseIP(text);
  return ip === null ? null : formatIP(ip);
};

describe("parseIP + formatIP (net.ParseIP + To4 + String)", () => {
  test.each([
    ["127.0.1.2", "127.0.1.2"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    // IPv4-mapped text becomes plain IPv4.
    ["::ffff:127.1.2.3", "127.1.2.3"],
    ["::ffff:7f01:0203", "127.1.2.3"],
    ["0:0:0:0:0000:ffff:127.1.2.3", "127.1.2.3"],
    ["0:0:0:0:000000:ffff:127.1.2.3", null], // more than 4 hex digits
    // IPv6 in RFC 5952 form.
    ["2001:4860:0:2001::68", "2001:4860:0:2001::68"],
    ["2001:4860:0000:2001:0000:0000:0000:0068", "2001:4860:0:2001::68"],
    ["2001:DB8::1", "2001:db8::1"],
    ["1:0:0:1:0:0:0:1", "1:0:0:1::1"],
    ["1:0:0:1:0:0:1:1", "1::1:0:0:1:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["fd00::100", "fd00::100"],
    ["::1.2.3.4", "::102:304"], // IPv4-compatible, not mapped
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    // Not literals (they become labels).
    ["", null],
    ["localhost", null],
    ["127.001.002.003", null],
    ["-0.0.0.0", null],
    ["0.-1.0.0", null],
    ["0.0.0.0.0", null],
    ["256.0.0.0", null],
    ["1.2.3", null],
    ["1.2.3.", null],
    ["1..2.3", null],
    ["0x7f.0.0.1", null],
    ["::1%eth0", null],
    ["%eth0", null],
    ["1::2::3", null],
    ["1:2:3:4:5:6:7:8:9", null],
    ["1:2:3:4:5:6:7::8", null],
    ["1:2:3:4:5:6:7:8::", null],
    ["12345::", null],
    [":1", null],
    ["1:", null],
    ["1:2:3:4:5:6:7:1.2.3.4", null],
    ["1.2.3.4:80", null],
    ["[::1]", null],
  ])("%j", (text, expected) => {
    expect(normalize(text)).toBe(expected);
  });

  test("records: 4 bytes for IPv4 (mapped included), 16 for IPv6", () => {
    expect(parseIP("::ffff:10.0.2.100")).toEqual({ family: 4, bytes: new Uint8Array([10, 0, 2, 100]) });
    expect(parseIP("fd00::2")?.bytes).toEqual(new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]));
  });
});

describe("parseIPZone", () => {
  test("keeps the zone of an IPv6 address", () => {
    const parsed = parseIPZone("fe80::1%eth0");
    expect(parsed?.zone).toBe("eth0");
    expect(parsed?.ip.family).toBe(6);
    expect(parseIPZone("fe80::1%")).toBeNull();
    expect(parseIPZone("1.2.3.4")?.zone).toBe("");
    expect(parseIPZone("1.2.3.4%eth0")).toBeNull();
    expect(parseIPZone("::ffff:1.2.3.4%eth0")).toEqual({ ip: { family: 4, bytes: new Uint8Array([1, 2, 3, 4]) }, zone: "eth0" });
  });
});

describe("parseCIDR", () => {
  const show = (text: string) => {
    const cidr = parseCIDR(text);
    return cidr === null ? null : `${cidr.family}:${formatIP(cidr)}/${cidr.bits}`;
  };

  test.each([
    ["135.104.0.0/32", "4:135.104.0.0/32"],
    ["0.0.0.0/24", "4:0.0.0.0/24"],
    ["135.104.0.1/24", "4:135.104.0.0/24"],
    ["10.1.2.3/8", "4:10.0.0.0/8"],
    ["0.0.0.0/0", "4:0.0.0.0/0"],
    ["1.2.3.4/08", "4:1.0.0.0/8"],
    ["::1/128", "6:::1/128"],
    ["abcd:2345::/127", "6:abcd:2345::/127"],
    ["abcd:2345::/65", "6:abcd:2345::/65"],
    ["3ffe::/16", "6:3ffe::/16"],
    ["::/0", "6:::/0"],
    // A mapped prefix of >= 96 bits is the IPv4 prefix it describes.
    ["::ffff:10.0.0.0/104", "4:10.0.0.0/8"],
    ["::ffff:10.1.2.3/128", "4:10.1.2.3/32"],
    ["::ffff:10.0.0.0/80", "6:::/80"],
    ["1.2.3.4/33", null],
    ["1.2.3.4/", null],
    ["1.2.3.4/-1", null],
    ["1.2.3.4/8/9", null],
    ["::/129", null],
    ["1.2.3.4", null],
    ["fe80::1%eth0/64", null],
    ["localhost/8", null],
  ])("%j", (text, expected) => {
    expect(show(text)).toBe(expected);
  });

  test("prefixContains: same family, whole and partial bytes", () => {
    const p = parseCIDR("10.0.2.0/23")!;
    expect(prefixContains(p, parseIP("10.0.3.255")!)).toBe(true);
    expect(prefixContains(p, parseIP("10.0.4.0")!)).toBe(false);
    expect(prefixContains(p, parseIP("::ffff:10.0.2.1")!)).toBe(true);
    expect(prefixContains(parseCIDR("fe80::/10")!, parseIP("febf::1")!)).toBe(true);
    expect(prefixContains(parseCIDR("fe80::/10")!, parseIP("fec0::1")!)).toBe(false);
    expect(prefixContains(parseCIDR("::/0")!, parseIP("1.2.3.4")!)).toBe(false);
    expect(prefixContains(parseCIDR("0.0.0.0/0")!, parseIP("::1")!)).toBe(false);
  });
});

describe("engine forms", () => {
  test("ipv4FromText / ipv4Text", () => {
    expect(ipv4FromText("10.0.2.2")).toBe(0x0a000202);
    expect(ipv4FromText("0.0.0.0")).toBe(0);
    expect(ipv4FromText("255.255.255.255")).toBe(0xffffffff);
    expect(ipv4Text(0xffffffff)).toBe("255.255.255.255");
    expect(ipv4Text(0x0a000264)).toBe("10.0.2.100");
    expect(ipv4Text(-1)).toBe("255.255.255.255");
    for (const bad of [
      "",
      "1",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.",
      ".1.2.3",
      "1..2.3",
      "256.1.1.1",
      "1.2.3.1000",
      "01.2.3.4",
      "1.2.3.00",
      "0x1.2.3.4",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1.2.3.-4",
      "+1.2.3.4",
      "1.2.3.4/24",
      "::1",
      "::ffff:1.2.3.4",
    ]) {
      expect(ipv4FromText(bad)).toBeNull();
    }
    const rng = new Prng(11);
    for (let i = 0; i < 1000; i++) {
      const a = rng.u32();
      expect(ipv4FromText(ipv4Text(a))).toBe(a);
    }
  });

  test("ipv6FromText / ipv6Text: RFC 5952 text form", () => {
    const cases: [string, string][] = [
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // §4.2.2: one zero group is not "::"
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // §4.2.3: the longest run
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // §4.2.3: first of equal runs
      ["2001:DB8::AbCd", "2001:db8::abcd"], // §4.3: lowercase
      ["0:0:0:0:0:0:0:0", "::"],
      ["::1", "::1"],
      ["1::", "1::"],
      ["1:0:0:0:0:0:0:0", "1::"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["fe80:0:0:0:5054:ff:fe12:3456", "fe80::5054:ff:fe12:3456"],
      ["ff02::1:ff00:2", "ff02::1:ff00:2"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
      ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
      ["::ffff:10.0.2.100", "::ffff:10.0.2.100"], // §5: the 16 bytes keep the mapped form
      ["::ffff:a00:264", "::ffff:10.0.2.100"],
      ["::10.0.2.100", "::a00:264"], // IPv4-compatible (deprecated): plain hex
      ["64:ff9b::1.2.3.4", "64:ff9b::102:304"],
      ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ];
    for (const [input, canonical] of cases) {
      const a = new Uint8Array(18);
      a.set(ipv6FromText(input)!, 2);
      expect(ipv6Text(a, 2)).toBe(canonical);
    }
  });

  test("invalid IPv6 text is refused", () => {
    for (const bad of [
      "",
      ":",
      ":::",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "12345::",
      ":1::",
      "1::2:",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "g::",
      "::ffff:1.2.3",
      "::1.2.3.4.5",
      "::1.2.3.4:5",
      "1:2:3:4:5:6:7:1.2.3.4",
      "::256.0.0.1",
      "fe80::1%eth0",
      "fd00::/64",
      " ::1",
      "::1 ",
      "1.2.3.4",
      "0x1::",
      "::-1",
      "1:2:3:4:5:6:7:8:".repeat(3),
    ]) {
      expect(ipv6FromText(bad)).toBeNull();
      if (bad !== "1.2.3.4") expect(parseIP(bad)).toBeNull();
    }
  });

  test("format/parse round trip on random and sparse addresses (seeded)", () => {
    const rng = new Prng(5952);
    const a = new Uint8Array(16);
    for (let i = 0; i < 3000; i++) {
      rng.fill(a);
      // Zero out random groups to exercise "::" placement.
      for (let g = 0; g < 8; g++) if (rng.int(3) === 0) a[2 * g] = a[2 * g + 1] = 0;
      const s = ipv6Text(a);
      expect(ipv6FromText(s)).toEqual(a);
      expect(s).toBe(s.toLowerCase());
      expect(s.includes(":::")).toBe(false);
    }
  });

  test("records from the engine's forms, IPv4-mapped as IPv4", () => {
    expect(ipFromV4(0x0a000264)).toEqual({ family: 4, bytes: new Uint8Array([10, 0, 2, 100]) });
    expect(ipV4Number(parseIP("10.0.2.100")!)).toBe(0x0a000264);
    const frame = new Uint8Array(20);
    frame.set(ipv6FromText("::ffff:10.0.2.100")!, 4);
    expect(ipFromV6(frame, 4)).toEqual({ family: 4, bytes: new Uint8Array([10, 0, 2, 100]) });
    frame.set(ipv6FromText("fd00::100")!, 4);
    const ip = ipFromV6(frame, 4);
    expect(formatIP(ip)).toBe("fd00::100");
    frame.fill(0);
    expect(formatIP(ip)).toBe("fd00::100"); // a copy, not a view of the frame
  });
});

describe("socket address text", () => {
  test("from engine forms and records", () => {
    expect(v4EndpointText(0x0a000264, 40000)).toBe("10.0.2.100:40000");
    const b = new Uint8Array(18);
    b.set(ipv6FromText("fd00::100")!, 2);
    expect(v6EndpointText(b, 2, 22)).toBe("[fd00::100]:22");
    b.set(ipv6FromText("::ffff:127.0.0.1")!, 2);
    expect(v6EndpointText(b, 2, 22)).toBe("127.0.0.1:22");
    expect(v6IPText(b, 2)).toBe("127.0.0.1");
    expect(ipv6Text(b, 2)).toBe("::ffff:127.0.0.1");
    expect(endpointText(parseIP("::1")!, 53)).toBe("[::1]:53");
    expect(endpointText(parseIP("1.2.3.4")!, 0)).toBe("1.2.3.4:0");
  });

  test.each([
    ["1.2.3.4", 80, "1.2.3.4:80"],
    ["127.0.0.1", 41234, "127.0.0.1:41234"],
    ["::1", 41234, "[::1]:41234"],
    ["::", 41234, "[::]:41234"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", 53, "[2001:db8::1]:53"],
    ["FD00::100", 22, "[fd00::100]:22"],
    ["fe80::1%eth0", 8, "[fe80::1%eth0]:8"],
    ["::ffff:1.2.3.4", 80, "1.2.3.4:80"],
    ["::ffff:7f00:1", 0, "127.0.0.1:0"],
    [null, 80, "<nil>"],
  ])("formatHostPort %p port %p", (ip, port, expected) => {
    expect(formatHostPort(ip, port)).toBe(expected);
  });
});

describe("joinHostPort", () => {
  test("brackets hosts with a colon", () => {
    expect(joinHostPort("::1", "53")).toBe("[::1]:53");
    expect(joinHostPort("localhost", "53")).toBe("localhost:53");
    expect(joinHostPort("", "80")).toBe(":80");
  });
});

describe("splitHostPort", () => {
  test.each([
    ["localhost:80", { host: "localhost", port: "80" }],
    ["127.0.0.1:0", { host: "127.0.0.1", port: "0" }],
    ["[::1]:8600", { host: "::1", port: "8600" }],
    ["[fe80::1%eth0]:53", { host: "fe80::1%eth0", port: "53" }],
    [":80", { host: "", port: "80" }],
    ["host:", { host: "host", port: "" }],
    ["[]:1", { host: "", port: "1" }],
  ])("%j", (text, expected) => {
    expect(splitHostPort(text)).toEqual(expected);
  });

  test.each([
    ["localhost", "address localhost: missing port in address"],
    ["::1:53", "address ::1:53: too many colons in address"],
    ["[::1", "address [::1: missing ']' in address"],
    ["[::1]", "address [::1]: missing port in address"],
    ["[::1]x:1", "address [::1]x:1: missing port in address"],
    ["[::1]:1:2", "address [::1]:1:2: too many colons in address"],
    ["a[b:1", "address a[b:1: unexpected '[' in address"],
    ["a]b:1", "address a]b:1: unexpected ']' in address"],
    ["[a]:1]", "address [a]:1]: unexpected ']' in address"],
  ])("%j fails", (text, message) => {
    expect(() => splitHostPort(text)).toThrow(message);
  });
});
