// -allow / -deny entries (docs/compatibility.md, Firewall entries).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseFirewallList } from "../../../src/cli/firewall.ts";
import { ruleMatches, type FirewallRule } from "../../../src/host/control/policy.ts";
import { parseIP, type IP } from "../../../src/wire/addr.ts";
import { createSystemResolver } from "../../../src/host/control/resolve.ts";
import { TestDnsServer } from "../../support/dns-server.ts";

const resolver = createSystemResolver({ dnsTimeoutMs: 300, dnsAttempts: 1 });

async function rules(value: string): Promise<FirewallRule[]> {
  return await parseFirewallList(value, resolver);
}

async function errorOf(value: string): Promise<string> {
  try {
    await rules(value);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${value} parsed`);
}

function rule(network: string, family: 4 | 6, addr: string, bits: number, portMin = 0, portMax = 0): FirewallRule {
  return { network, prefix: { family, bytes: parseIP(addr)!.bytes, bits }, portMin, portMax, allPorts: portMin === 0 && portMax === 0 };
}

const ip = (text: string): IP => parseIP(text)!;

describe("entries", () => {
  test.each([
    ["10.0.0.0/8", [rule("tcp", 4, "10.0.0.0", 8)]],
    ["10.1.2.3/8", [rule("tcp", 4, "10.0.0.0", 8)]],
    ["1.2.3.4", [rule("tcp", 4, "1.2.3.4", 32)]],
    ["udp://1.2.3.4:53", [rule("udp", 4, "1.2.3.4", 32, 53, 53)]],
    ["tcp://1.2.3.4:1-1024", [rule("tcp", 4, "1.2.3.4", 32, 1, 1024)]],
    ["1.2.3.4:0-0", [rule("tcp", 4, "1.2.3.4", 32)]],
    ["1.2.3.4:0-5", [rule("tcp", 4, "1.2.3.4", 32, 0, 5)]],
    ["[3ffe::100]", [rule("tcp", 6, "3ffe::100", 128)]],
    ["udp://[3ffe::/16]:53", [rule("udp", 6, "3ffe::", 16, 53, 53)]],
    ["[::ffff:10.0.0.0/104]", [rule("tcp", 4, "10.0.0.0", 8)]],
    ["[::ffff:1.2.3.4]", [rule("tcp", 4, "1.2.3.4", 32)]],
    ["sctp://1.2.3.4", [rule("sctp", 4, "1.2.3.4", 32)]],
    ["localhost", [rule("tcp", 4, "127.0.0.1", 32)]],
    ["10.0.0.0/8,udp://[::1]:53", [rule("tcp", 4, "10.0.0.0", 8), rule("udp", 6, "::1", 128, 53, 53)]],
  ])("%j", async (value, expected) => {
    expect(await rules(value)).toEqual(expected);
  });
});

describe("errors, in upstream's order", () => {
  test.each([
    ["1.2.3.4:1:2", "error parsing ipportrange"],
    ["3ffe::100", "error parsing ipportrange"],
    ["[::1]:a", 'strconv.ParseUint: parsing "a": invalid syntax'],
    ["1.2.3.4:0-b", 'strconv.ParseUint: parsing "b": invalid syntax'],
    ["1.2.3.4:a-b", 'strconv.ParseUint: parsing "a": invalid syntax'],
    ["1.2.3.4:1-", 'strconv.ParseUint: parsing "": invalid syntax'],
    ["1.2.3.4:1-2-3", 'strconv.ParseUint: parsing "2-3": invalid syntax'],
    ["1.2.3.4:", 'strconv.ParseUint: parsing "": invalid syntax'],
    ["1.2.3.4:70000", 'strconv.ParseUint: parsing "70000": value out of range'],
    ["1.2.3.4:5-1", "min port must be smaller equal than max"],
    // Ports are checked before the host is resolved.
    ["nohost.invalid:x", 'strconv.ParseUint: parsing "x": invalid syntax'],
    ["notahostó", "lookup notahostó: no such host"],
    ["nohost.invalid", "lookup nohost.invalid: no such host"],
    // An empty entry is resolved as an empty host name.
    ["1.2.3.4,", "lookup : no such host"],
    ["", "lookup : no such host"],
    ["x@foo", 'Unknown dns type "foo"'],
    ["x@srv-1", 'Failed to lookup SRV "x" on "127.0.0.1:1"'],
  ])("%j", async (value, message) => {
    expect(await errorOf(value)).toBe(message);
  });

  test("the first failing entry wins", async () => {
    expect(await errorOf("1.2.3.4:x,nohost.invalid")).toBe('strconv.ParseUint: parsing "x": invalid syntax');
    expect(await errorOf("nohost.invalid,1.2.3.4:x")).toBe("lookup nohost.invalid: no such host");
  });
});

describe("SRV names in entries", () => {
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await TestDnsServer.start({
      records: [
        { name: "fw.srv", type: "SRV", port: 9, target: "fw.target." },
        { name: "fw.target", type: "A", address: "192.0.2.77" },
      ],
    });
  });
  afterAll(async () => {
    await dns.stop();
  });

  test("QUERY@srv-PORT resolves through the given server (ports stay the entry's)", async () => {
    expect(await rules(`udp://[fw.srv@srv-${dns.port}]:53`)).toEqual([rule("udp", 4, "192.0.2.77", 32, 53, 53)]);
  });
});

describe("ruleMatches", () => {
  test("network, ports and prefix must all match", async () => {
    const [r] = await rules("udp://10.0.0.0/8:53-54");
    expect(ruleMatches(r!, "udp", ip("10.9.8.7"), 53)).toBe(true);
    expect(ruleMatches(r!, "udp", ip("10.9.8.7"), 54)).toBe(true);
    expect(ruleMatches(r!, "udp", ip("10.9.8.7"), 55)).toBe(false);
    expect(ruleMatches(r!, "tcp", ip("10.9.8.7"), 53)).toBe(false);
    expect(ruleMatches(r!, "udp", ip("11.0.0.1"), 53)).toBe(false);
  });

  test("IPv4 prefixes match IPv4-mapped addresses; IPv6 prefixes never match IPv4", async () => {
    const [v4] = await rules("10.0.0.0/8");
    const [all6] = await rules("[::/0]");
    expect(ruleMatches(v4!, "tcp", ip("::ffff:10.1.1.1"), 80)).toBe(true);
    expect(ruleMatches(all6!, "tcp", ip("10.1.1.1"), 80)).toBe(false);
    expect(ruleMatches(all6!, "tcp", ip("::ffff:10.1.1.1"), 80)).toBe(false);
    expect(ruleMatches(all6!, "tcp", ip("2001:db8::1"), 80)).toBe(true);
    expect(ruleMatches(v4!, "tcp", ip("2001:db8::1"), 80)).toBe(false);
  });

  test("no port part, or 0-0, means all ports", async () => {
    const [none] = await rules("1.2.3.4");
    const [zero] = await rules("1.2.3.4:0-0");
    const [zeroToFive] = await rules("1.2.3.4:0-5");
    for (const port of [0, 1, 65535]) {
      expect(ruleMatches(none!, "tcp", ip("1.2.3.4"), port)).toBe(true);
      expect(ruleMatches(zero!, "tcp", ip("1.2.3.4"), port)).toBe(true);
    }
    expect(ruleMatches(zeroToFive!, "tcp", ip("1.2.3.4"), 6)).toBe(false);
    expect(ruleMatches(zeroToFive!, "tcp", ip("1.2.3.4"), 0)).toBe(true);
  });

  test("a host rule is a single address", async () => {
    const [r] = await rules("[fd00::1]");
    expect(ruleMatches(r!, "tcp", ip("fd00::1"), 1)).toBe(true);
    expect(ruleMatches(r!, "tcp", ip("fd00::2"), 1)).toBe(false);
  });
});
