// The routing policy's order (deny rule, allow rule, static deny list,
// link-local/metadata rule, host routes, routing), on fixed routes.
import { describe, expect, test } from "bun:test";
import { parseFirewallList } from "../../../src/cli/firewall.ts";
import { parseIP } from "../../../src/wire/addr.ts";
import { RoutingPolicy, type FirewallRule, type PolicyOptions } from "../../../src/host/control/policy.ts";
import { createSystemResolver } from "../../../src/host/control/resolve.ts";
import { LocalRoutes } from "../../../src/host/control/routes.ts";
import { DEFAULT_GUEST_NET_V4, guestNetV4FromText } from "../../../src/wire/guest-net.ts";

/** Literal entries only: the resolver is never asked. */
const rules = (value: string): Promise<FirewallRule[]> => parseFirewallList(value, createSystemResolver({ dnsTimeoutMs: 1, dnsAttempts: 1 }));

function policy(opts: Partial<PolicyOptions>, guestNet = DEFAULT_GUEST_NET_V4): RoutingPolicy {
  // A LocalRoutes that was never refreshed covers nothing: every address is "the internet".
  return new RoutingPolicy({ allow: [], deny: [], enableHost: true, enableRouting: true, ...opts }, new LocalRoutes(() => {}), guestNet);
}

function decide(p: RoutingPolicy, ip: string, network: "tcp" | "udp" | "icmp" = "tcp", port = 80): string {
  return p.decide(network, parseIP(ip)!, port);
}

describe("pings (-icmp=forward)", () => {
  test("only icmp:// entries match them; the rest of the order is the same", async () => {
    const p = policy({ deny: await rules("icmp://198.51.100.0/24,192.0.2.1"), allow: await rules("icmp://10.0.2.9") });
    expect(decide(p, "198.51.100.7", "icmp", 0)).toBe("deny-rule");
    expect(decide(p, "198.51.100.7", "tcp")).toBe("routing");
    expect(decide(p, "192.0.2.1", "icmp", 0)).toBe("routing");
    expect(decide(p, "10.0.2.9", "icmp", 0)).toBe("allow-rule");
    expect(decide(p, "10.0.2.8", "icmp", 0)).toBe("static-deny");
  });
});

describe("the guest's network is on the static deny list", () => {
  test("10.0.2.0/24 by default; with another network (slirp4netns's --cidr), that one, and 10.0.2.x is routed", () => {
    expect(["10.0.2.2", "10.0.2.50", "::ffff:10.0.2.9", "10.0.3.1"].map((ip) => decide(policy({}), ip))).toEqual(["static-deny", "static-deny", "static-deny", "routing"]);
    const other = policy({}, guestNetV4FromText("10.0.3.0/24")!);
    expect(["10.0.3.2", "10.0.3.255", "10.0.2.2", "10.0.4.1"].map((ip) => decide(other, ip))).toEqual(["static-deny", "static-deny", "routing", "routing"]);
  });
});

describe("link-local and metadata addresses", () => {
  const open = policy({});
  test.each(["169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254"])("%s is denied even with routing on", (ip) => {
    expect(decide(open, ip)).toBe("link-local-deny");
    expect(decide(open, ip, "udp", 53)).toBe("link-local-deny");
  });

  test("neighbours of the ranges are routed", () => {
    for (const ip of ["169.253.255.255", "169.255.0.0", "fec0::1", "fd00:ec2::253"]) expect(decide(open, ip)).toBe("routing");
  });

  test("-allow opens them, -deny still beats -allow", async () => {
    const p = policy({ allow: await rules("169.254.169.254,udp://[fd00:ec2::254]"), deny: await rules("169.254.169.254:22") });
    expect(decide(p, "169.254.169.254")).toBe("allow-rule");
    expect(decide(p, "169.254.169.254", "tcp", 22)).toBe("deny-rule");
    expect(decide(p, "fd00:ec2::254", "udp")).toBe("allow-rule");
    expect(decide(p, "fd00:ec2::254", "tcp")).toBe("link-local-deny");
    expect(decide(p, "169.254.1.1")).toBe("link-local-deny");
  });
});
