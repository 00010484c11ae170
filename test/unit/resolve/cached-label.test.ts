// The DNS label cache (docs/compatibility.md, DNS cache) with an injected
// clock, and a spec's label resolved end to end through a real DNS server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { applyForwardDefaults, parseForwardSpec } from "../../../src/cli/forward.ts";
import { formatSpecSide } from "../../../src/host/flows/forward-spec.ts";
import { CachedLabel, createSystemResolver, type ResolvedLabel, type Resolver } from "../../../src/host/control/resolve.ts";
import { TestDnsServer } from "../../support/dns-server.ts";

/** A Resolver whose answers the test scripts; it counts the lookups. */
class ScriptedResolver implements Resolver {
  calls = 0;
  next: ResolvedLabel | Error = { ip: "192.0.2.1", port: null };
  /** When set, lookups wait for this promise (to test overlapping uses). */
  gate: Promise<void> | null = null;

  async lookupHost(): Promise<string> {
    throw new Error("not used");
  }

  async resolveLabel(): Promise<ResolvedLabel> {
    this.calls++;
    if (this.gate !== null) await this.gate;
    if (this.next instanceof Error) throw this.next;
    return this.next;
  }
}

const PLACEHOLDER = { ip: "127.0.0.1", port: 2222 };

describe("CachedLabel", () => {
  test("a static address never resolves", async () => {
    const resolver = new ScriptedResolver();
    const cached = new CachedLabel(null, PLACEHOLDER, 5000, resolver);
    expect(await cached.retrieve(0)).toEqual(PLACEHOLDER);
    expect(await cached.retrieve(1e12)).toEqual(PLACEHOLDER);
    expect(resolver.calls).toBe(0);
  });

  test("the first use resolves; uses within the TTL (inclusive) are served from the cache", async () => {
    const resolver = new ScriptedResolver();
    const cached = new CachedLabel("a.test", PLACEHOLDER, 5000, resolver);
    expect(cached.value).toEqual(PLACEHOLDER);
    expect(await cached.retrieve(1000)).toEqual({ ip: "192.0.2.1", port: 2222 });
    expect(cached.fetchedAt).toBe(1000);
    resolver.next = { ip: "192.0.2.2", port: null };
    expect(await cached.retrieve(6000)).toEqual({ ip: "192.0.2.1", port: 2222 }); // exactly TTL later
    expect(resolver.calls).toBe(1);
    expect(await cached.retrieve(6001)).toEqual({ ip: "192.0.2.2", port: 2222 });
    expect(resolver.calls).toBe(2);
  });

  test("a non-zero SRV port replaces the spec's port; 0 keeps it", async () => {
    const resolver = new ScriptedResolver();
    const cached = new CachedLabel("q@srv-53", PLACEHOLDER, 0, resolver);
    resolver.next = { ip: "192.0.2.3", port: 0 };
    expect(await cached.retrieve(0)).toEqual({ ip: "192.0.2.3", port: 2222 });
    resolver.next = { ip: "192.0.2.3", port: 7777 };
    expect(await cached.retrieve(1)).toEqual({ ip: "192.0.2.3", port: 7777 });
    resolver.next = { ip: "192.0.2.4", port: 0 };
    expect(await cached.retrieve(2)).toEqual({ ip: "192.0.2.4", port: 7777 });
  });

  test("a failed first lookup gives null until the TTL has passed, never the loopback placeholder", async () => {
    const resolver = new ScriptedResolver();
    resolver.next = new Error("lookup a.test: no such host");
    const cached = new CachedLabel("a.test", PLACEHOLDER, 5000, resolver);
    expect(await cached.retrieve(0)).toBeNull();
    expect(cached.lastError?.message).toBe("lookup a.test: no such host");
    // The time was marked before resolving: within the TTL no new lookup,
    // and no address either (upstream served the placeholder, host loopback).
    expect(await cached.retrieve(100)).toBeNull();
    expect(resolver.calls).toBe(1);
    expect(await cached.retrieve(5001)).toBeNull();
    expect(resolver.calls).toBe(2);
    resolver.next = { ip: "192.0.2.9", port: null };
    expect(await cached.retrieve(10002)).toEqual({ ip: "192.0.2.9", port: 2222 });
    expect(cached.lastError).toBeNull();
  });

  test("after a success, a failure serves the stale address until the TTL has passed", async () => {
    const resolver = new ScriptedResolver();
    const cached = new CachedLabel("a.test", PLACEHOLDER, 5000, resolver);
    await cached.retrieve(0);
    resolver.next = new Error("boom");
    expect(await cached.retrieve(5001)).toBeNull();
    expect(await cached.retrieve(5002)).toEqual({ ip: "192.0.2.1", port: 2222 });
  });

  test("a TTL of 0 resolves on every use, even at the same instant", async () => {
    const resolver = new ScriptedResolver();
    const cached = new CachedLabel("a.test", PLACEHOLDER, 0, resolver);
    await cached.retrieve(5);
    await cached.retrieve(5);
    await cached.retrieve(5);
    expect(resolver.calls).toBe(3);
    resolver.next = new Error("down");
    expect(await cached.retrieve(5)).toBeNull();
    expect(await cached.retrieve(5)).toBeNull();
  });

  test("overlapping uses are serialised: the second sees the first's fresh timestamp", async () => {
    const resolver = new ScriptedResolver();
    let open!: () => void;
    resolver.gate = new Promise((resolve) => (open = resolve));
    resolver.next = new Error("slow failure");
    const cached = new CachedLabel("a.test", PLACEHOLDER, 5000, resolver);
    const first = cached.retrieve(0);
    const second = cached.retrieve(1);
    open();
    expect(await first).toBeNull();
    expect(await second).toBeNull();
    expect(resolver.calls).toBe(1);
  });

  test("the preferred family is passed to the resolver", async () => {
    const seen: (4 | 6 | undefined)[] = [];
    const resolver: Resolver = {
      lookupHost: async () => "",
      resolveLabel: async (_label, prefer) => {
        seen.push(prefer);
        return { ip: "::1", port: null };
      },
    };
    await new CachedLabel("a.test", PLACEHOLDER, 0, resolver).retrieve(0);
    await new CachedLabel("a.test", PLACEHOLDER, 0, resolver, 6).retrieve(0);
    expect(seen).toEqual([4, 6]);
  });
});

describe("a -R label end to end", () => {
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await TestDnsServer.start({
      records: [
        { name: "tcp.echo.server", type: "SRV", port: 7777, target: "echo.test." },
        { name: "echo.test", type: "A", address: "127.0.0.5" },
      ],
    });
  });
  afterAll(async () => {
    await dns.stop();
  });

  test("-R=tcp://:2222:tcp.echo.server@srv-PORT:0 resolves to the SRV target and port, then fails when the server is gone", async () => {
    const resolver = createSystemResolver({ dnsTimeoutMs: 200, dnsAttempts: 1 });
    const spec = applyForwardDefaults(parseForwardSpec(`tcp://:2222:tcp.echo.server@srv-${dns.port}:0`, "remote"), "remote");
    const host = new CachedLabel(spec.host.label, { ip: spec.host.ip!, port: spec.host.port }, 0, resolver);
    const current = await host.retrieve(0);
    expect(current).toEqual({ ip: "127.0.0.5", port: 7777 });
    expect(formatSpecSide(current, host.label)).toBe("127.0.0.5:7777");

    // With -dns-ttl=0 the next use asks again: the server is gone, so it fails.
    await dns.stop();
    const again = await host.retrieve(1);
    expect(again).toBeNull();
    expect(host.lastError?.message).toBe(`Failed to lookup SRV "tcp.echo.server" on "127.0.0.1:${dns.port}"`);
    expect(formatSpecSide(again, host.label)).toBe(`tcp.echo.server@srv-${dns.port}-failed`);
  });
});
