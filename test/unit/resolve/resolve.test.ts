// Name resolution (docs/compatibility.md, Names in forward specs): system
// lookups with Go's wording, and QUERY@srv-SERVER labels against a real DNS
// server on loopback.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSystemResolver, hostsFileAddresses, pickAddress, type Resolver } from "../../../src/host/control/resolve.ts";
import { TestDnsServer } from "../../support/dns-server.ts";

let dns: TestDnsServer;
let dns6: TestDnsServer;
let scratch: string;
let resolver: Resolver;

const RECORDS = [
  { name: "tcp.echo.server", type: "SRV", port: 7777, target: "echo.test." },
  { name: "echo.test", type: "A", address: "127.0.0.5" },
  { name: "echo.test", type: "AAAA", address: "fd00::5" },
  // Several records: the lowest priority wins, then the heaviest weight.
  { name: "multi.srv", type: "SRV", port: 1, target: "echo.test.", priority: 20, weight: 100 },
  { name: "multi.srv", type: "SRV", port: 2, target: "echo.test.", priority: 10, weight: 1 },
  { name: "multi.srv", type: "SRV", port: 3, target: "echo.test.", priority: 10, weight: 50 },
  { name: "zero.port", type: "SRV", port: 0, target: "echo.test." },
  { name: "v6only.srv", type: "SRV", port: 9, target: "v6only.test." },
  { name: "v6only.test", type: "AAAA", address: "fd00::6" },
  // The target is in our hosts file (and the server says otherwise).
  { name: "hosts.srv", type: "SRV", port: 10, target: "inhosts.test." },
  { name: "inhosts.test", type: "A", address: "127.0.0.99" },
  // The target is known to neither: the system resolver decides.
  { name: "system.srv", type: "SRV", port: 11, target: "localhost." },
  { name: "nowhere.srv", type: "SRV", port: 12, target: "target.invalid." },
  { name: "big.srv", type: "SRV", port: 13, target: "echo.test." },
] as const;


beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "resolve-test-"));
  const hostsPath = join(scratch, "hosts");
  writeFileSync(hostsPath, "# test hosts\n127.0.0.42 InHosts.test other # comment\n::1 inhosts.test\n");
  dns = await TestDnsServer.start({ records: [...RECORDS], truncateOverUdp: ["big.srv"] });
  // IPv6 everywhere is a goal of the product: a machine without ::1 fails here, loudly.
  dns6 = await TestDnsServer.start({ host: "::1", records: [...RECORDS] });
  resolver = createSystemResolver({ hostsPath, dnsTimeoutMs: 200, dnsAttempts: 1 });
});

afterAll(async () => {
  await dns.stop();
  await dns6?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a failure");
}

describe("lookupHost (system resolver)", () => {
  test("names and literals", async () => {
    expect(await resolver.lookupHost("localhost", 4)).toBe("127.0.0.1");
    expect(await resolver.lookupHost("127.0.0.1", null)).toBe("127.0.0.1");
    expect(await resolver.lookupHost("::1", 4)).toBe("::1");
    expect(await resolver.lookupHost("::ffff:10.1.2.3", 6)).toBe("10.1.2.3");
  });

  test("errors in Go's words", async () => {
    expect(await failure(resolver.lookupHost("nohost.invalid", 4))).toBe("lookup nohost.invalid: no such host");
    expect(await failure(resolver.lookupHost("notahostó", 4))).toBe("lookup notahostó: no such host");
    expect(await failure(resolver.lookupHost("", 4))).toBe("lookup : no such host");
  });

  test("a plain label resolves with no port", async () => {
    expect(await resolver.resolveLabel("localhost")).toEqual({ ip: "127.0.0.1", port: null });
  });
});

describe("pickAddress (first of the preferred family, else the first)", () => {
  test.each([
    [["fd00::1", "10.0.0.1", "10.0.0.2"], 4, "10.0.0.1"],
    [["10.0.0.1", "fd00::1", "fd00::2"], 6, "fd00::1"],
    [["fd00::1", "fd00::2"], 4, "fd00::1"],
    [["fd00::1", "10.0.0.1"], null, "fd00::1"],
    [[], 4, null],
  ] as const)("%j prefer %p", (addresses, prefer, expected) => {
    expect(pickAddress(addresses, prefer)).toBe(expected);
  });
});

describe("hostsFileAddresses", () => {
  test("case-insensitive, trailing dot, comments, file order", () => {
    const text = "127.0.0.1 localhost\n# 1.1.1.1 a.test\n10.0.0.1\tA.test b.test #x\nbogus a.test\n::1 a.test.\n";
    expect(hostsFileAddresses(text, "a.test")).toEqual(["10.0.0.1", "::1"]);
    expect(hostsFileAddresses(text, "A.TEST.")).toEqual(["10.0.0.1", "::1"]);
    expect(hostsFileAddresses(text, "c.test")).toEqual([]);
  });
});

describe("QUERY@srv-SERVER labels", () => {
  test("PORT alone means 127.0.0.1:PORT; the SRV port and target come back", async () => {
    expect(await resolver.resolveLabel(`tcp.echo.server@srv-${dns.port}`)).toEqual({ ip: "127.0.0.5", port: 7777 });
  });

  test("HOST:PORT", async () => {
    expect(await resolver.resolveLabel(`tcp.echo.server@srv-127.0.0.1:${dns.port}`)).toEqual({
      ip: "127.0.0.5",
      port: 7777,
    });
    expect(await resolver.resolveLabel(`tcp.echo.server@srv-localhost:${dns.port}`)).toEqual({
      ip: "127.0.0.5",
      port: 7777,
    });
  });

  test("[::1]:PORT", async () => {
    expect(await resolver.resolveLabel(`tcp.echo.server@srv-[::1]:${dns6.port}`)).toEqual({
      ip: "127.0.0.5",
      port: 7777,
    });
  });

  test("the lowest priority wins, then the heaviest weight", async () => {
    expect((await resolver.resolveLabel(`multi.srv@srv-${dns.port}`)).port).toBe(3);
  });

  test("an SRV port of 0 is reported as 0 (the cache then keeps the spec's port)", async () => {
    expect(await resolver.resolveLabel(`zero.port@srv-${dns.port}`)).toEqual({ ip: "127.0.0.5", port: 0 });
  });

  test("the target: IPv4 preferred, else IPv6, at the same server", async () => {
    expect(await resolver.resolveLabel(`v6only.srv@srv-${dns.port}`)).toEqual({ ip: "fd00::6", port: 9 });
    expect(await resolver.resolveLabel(`tcp.echo.server@srv-${dns.port}`, 6)).toEqual({ ip: "fd00::5", port: 7777 });
  });

  test("the target: /etc/hosts first", async () => {
    expect(await resolver.resolveLabel(`hosts.srv@srv-${dns.port}`)).toEqual({ ip: "127.0.0.42", port: 10 });
    expect(await resolver.resolveLabel(`hosts.srv@srv-${dns.port}`, 6)).toEqual({ ip: "::1", port: 10 });
  });

  test("the target: the system resolver last", async () => {
    expect(await resolver.resolveLabel(`system.srv@srv-${dns.port}`)).toEqual({ ip: "127.0.0.1", port: 11 });
    expect(await failure(resolver.resolveLabel(`nowhere.srv@srv-${dns.port}`))).toBe(
      "lookup target.invalid: no such host",
    );
  });

  test("a truncated SRV reply is asked again over TCP", async () => {
    const before = dns.queries.length;
    expect(await resolver.resolveLabel(`big.srv@srv-${dns.port}`)).toEqual({ ip: "127.0.0.5", port: 13 });
    const srvQueries = dns.queries.slice(before).filter((q) => q.name === "big.srv");
    expect(srvQueries.map((q) => q.transport)).toEqual(["udp", "tcp"]);
  });

  test("no such SRV name", async () => {
    expect(await failure(resolver.resolveLabel(`missing.srv@srv-${dns.port}`))).toBe(
      `Failed to lookup SRV "missing.srv" on "127.0.0.1:${dns.port}"`,
    );
  });

  test("a name with no SRV records", async () => {
    expect(await failure(resolver.resolveLabel(`echo.test@srv-${dns.port}`))).toBe(
      `Failed to lookup SRV "echo.test" on "127.0.0.1:${dns.port}"`,
    );
  });

  test("nothing listens on the port", async () => {
    const started = performance.now();
    expect(await failure(resolver.resolveLabel("tcp.echo.server@srv-1"))).toBe(
      'Failed to lookup SRV "tcp.echo.server" on "127.0.0.1:1"',
    );
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test("a server that never answers", async () => {
    dns.setSilent(true);
    try {
      expect(await failure(resolver.resolveLabel(`tcp.echo.server@srv-${dns.port}`))).toBe(
        `Failed to lookup SRV "tcp.echo.server" on "127.0.0.1:${dns.port}"`,
      );
    } finally {
      dns.setSilent(false);
    }
  });

  test("a bad server address", async () => {
    expect(await failure(resolver.resolveLabel("a@srv-"))).toBe('Failed to lookup SRV "a" on "127.0.0.1:"');
    expect(await failure(resolver.resolveLabel("a@srv-x"))).toBe('Failed to lookup SRV "a" on "127.0.0.1:x"');
    expect(await failure(resolver.resolveLabel("a@srv-::1:53"))).toBe('Failed to lookup SRV "a" on "::1:53"');
    expect(await failure(resolver.resolveLabel("a@srv-nohost.invalid:53"))).toBe(
      'Failed to lookup SRV "a" on "nohost.invalid:53"',
    );
  });

  test("QUERY is quoted Go-style", async () => {
    expect(await failure(resolver.resolveLabel('q"ó\n@srv-1'))).toBe('Failed to lookup SRV "q\\"ó\\n" on "127.0.0.1:1"');
  });

  test("only srv- is a known type", async () => {
    expect(await failure(resolver.resolveLabel("a@foo"))).toBe('Unknown dns type "foo"');
    expect(await failure(resolver.resolveLabel("a@SRV-53"))).toBe('Unknown dns type "SRV-53"');
    expect(await failure(resolver.resolveLabel("a@"))).toBe('Unknown dns type ""');
  });
});
