// PrefixSet: CIDR matching on address bytes, the boundaries of non-octet
// prefix lengths, IPv4-mapped spellings, and the two deny lists.
import { describe, expect, test } from "bun:test";
import { LINK_LOCAL_DENY, PrefixSet, STATIC_DENY } from "../../../src/host/control/prefix.ts";
import { ipFromV6, parseCIDR, parseIP, ipv6FromText, type IP } from "../../../src/wire/addr.ts";

const ip = (t: string): IP => parseIP(t)!;

describe("PrefixSet", () => {
  test("a /20 holds exactly its 4096 addresses: first and last in, one either side out", () => {
    const s = PrefixSet.parse(["192.168.16.0/20"]);
    expect(s.contains(ip("192.168.16.0"))).toBe(true);
    expect(s.contains(ip("192.168.31.255"))).toBe(true);
    expect(s.contains(ip("192.168.24.7"))).toBe(true);
    expect(s.contains(ip("192.168.15.255"))).toBe(false);
    expect(s.contains(ip("192.168.32.0"))).toBe(false);
  });

  test("host bits in the CIDR text are masked off (Go's ParseCIDR)", () => {
    const s = PrefixSet.parse(["10.1.2.3/8"]);
    expect(s.contains(ip("10.255.0.1"))).toBe(true);
    expect(s.contains(ip("11.0.0.0"))).toBe(false);
  });

  test("/0 holds every address of its family and none of the other; /32 and /128 one address", () => {
    const any4 = PrefixSet.parse(["0.0.0.0/0"]);
    expect(any4.contains(ip("255.255.255.255"))).toBe(true);
    expect(any4.contains(ip("2001:db8::1"))).toBe(false);
    const any6 = PrefixSet.parse(["::/0"]);
    expect(any6.contains(ip("2001:db8::1"))).toBe(true);
    expect(any6.contains(ip("1.2.3.4"))).toBe(false);
    const one = PrefixSet.parse(["192.0.2.1/32", "2001:db8::1/128"]);
    expect(one.contains(ip("192.0.2.1"))).toBe(true);
    expect(one.contains(ip("192.0.2.0"))).toBe(false);
    expect(one.contains(ip("2001:db8::1"))).toBe(true);
    expect(one.contains(ip("2001:db8::"))).toBe(false);
  });

  test("IPv6 boundaries inside an octet: fe80::/10 ends at febf:ffff..., fec0:: is out", () => {
    const s = PrefixSet.parse(["fe80::/10"]);
    expect(s.contains(ip("fe80::"))).toBe(true);
    expect(s.contains(ip("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))).toBe(true);
    expect(s.contains(ip("fec0::"))).toBe(false);
    expect(s.contains(ip("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))).toBe(false);
  });

  test("an IPv4-mapped address matches IPv4 prefixes, in text and from packet bytes", () => {
    const s = PrefixSet.parse(["203.0.113.0/24"]);
    expect(s.contains(ip("::ffff:203.0.113.9"))).toBe(true);
    expect(s.contains(ipFromV6(ipv6FromText("::ffff:203.0.113.9")!, 0))).toBe(true);
    expect(s.contains(ip("::ffff:203.0.114.9"))).toBe(false);
  });

  test("an IPv4-mapped prefix of at least 96 bits is the IPv4 prefix it describes", () => {
    const s = PrefixSet.parse(["::ffff:198.51.100.0/120"]);
    expect(s.contains(ip("198.51.100.200"))).toBe(true);
    expect(s.contains(ip("198.51.101.0"))).toBe(false);
  });

  test("replace swaps the whole set; size counts prefixes", () => {
    const s = PrefixSet.parse(["10.0.0.0/8", "fd00::/8"]);
    expect(s.size).toBe(2);
    s.replace([parseCIDR("192.0.2.0/24")!]);
    expect(s.size).toBe(1);
    expect(s.contains(ip("10.0.0.1"))).toBe(false);
    expect(s.contains(ip("192.0.2.77"))).toBe(true);
    s.replace([]);
    expect(s.contains(ip("192.0.2.77"))).toBe(false);
  });

  test("a bad CIDR is refused at parse", () => {
    expect(() => PrefixSet.parse(["10.0.0.0/33"])).toThrow("bad CIDR 10.0.0.0/33");
    expect(() => PrefixSet.parse(["10.0.0.0"])).toThrow("bad CIDR");
  });
});

describe("deny lists", () => {
  test("static deny: loopback, this network, broadcast, NAT64, and their mapped spellings (the guest's network is the policy's to add)", () => {
    for (const a of ["127.0.0.1", "0.1.2.3", "255.255.255.255", "::1", "::", "::1.2.3.4", "64:ff9b::808:808", "::ffff:127.0.0.1", "::ffff:0:1.2.3.4"])
      expect([a, STATIC_DENY.contains(ip(a))]).toEqual([a, true]);
    for (const a of ["10.0.2.2", "10.0.3.1", "8.8.8.8", "255.255.255.254", "::2:0:0:1", "2001:db8::1", "64:ff9b:1::1"])
      expect([a, STATIC_DENY.contains(ip(a))]).toEqual([a, false]);
  });

  test("link-local deny: 169.254/16, fe80::/10, the AWS IPv6 metadata address only", () => {
    for (const a of ["169.254.169.254", "169.254.0.0", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254"])
      expect([a, LINK_LOCAL_DENY.contains(ip(a))]).toEqual([a, true]);
    for (const a of ["169.253.255.255", "169.255.0.0", "fd00:ec2::253", "fd00:ec2::255"]) expect([a, LINK_LOCAL_DENY.contains(ip(a))]).toEqual([a, false]);
  });
});
