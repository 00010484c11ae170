// IP literals as Go's net.ParseIP / net.ParseCIDR read them (forward specs
// and firewall entries, docs/compatibility.md).
import { describe, expect, test } from "bun:test";
import { normalizeIPLiteral, parseGoCIDR, parseGoIPWithZone } from "../../../src/cli/goip.ts";

describe("normalizeIPLiteral (net.ParseIP + To4 + String)", () => {
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
    expect(normalizeIPLiteral(text)).toBe(expected);
  });
});

describe("parseGoIPWithZone", () => {
  test("keeps the zone of an IPv6 address", () => {
    const parsed = parseGoIPWithZone("fe80::1%eth0");
    expect(parsed?.zone).toBe("eth0");
    expect(parsed?.ip.family).toBe(6);
    expect(parseGoIPWithZone("fe80::1%")).toBeNull();
    expect(parseGoIPWithZone("1.2.3.4")?.zone).toBe("");
  });
});

describe("parseGoCIDR", () => {
  const show = (text: string) => {
    const cidr = parseGoCIDR(text);
    if (cidr === null) return null;
    return `${cidr.family}:${normalizeIPLiteral(
      cidr.family === 4 ? Array.from(cidr.bytes).join(".") : hexGroups(cidr.bytes),
    )}/${cidr.bits}`;
  };
  const hexGroups = (bytes: Uint8Array) => {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return groups.join(":");
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
});
