// The routing policy for guest-started flows (docs/compatibility.md,
// Decision order), checked for each new TCP SYN or UDP 4-tuple that is not
// an exact -R match, and for each new echo flow with -icmp=forward
// (network "icmp", port 0):
//   1. a -deny entry matches: block;
//   2. an -allow entry matches: allow (even the static deny list);
//   3. the static deny list: block;
//   3b. link-local and cloud metadata addresses: block. Not in Go
//      slirpnetstack: a sandboxed program must not read the VM's instance
//      credentials from 169.254.169.254 (or fd00:ec2::254) nor reach the
//      host's link neighbours, and run mode routes by default;
//   4. a host local route covers it: allow iff -enable-host;
//   5. anything else: allow iff -enable-routing.
import { anyRuleMatches, type FirewallRule } from "../cli/firewall.ts";
import { formatIP, type ParsedIP } from "../cli/goip.ts";
import { LINK_LOCAL_DENY, STATIC_DENY } from "./prefix.ts";
import type { LocalRoutes } from "./routes.ts";

export type Verdict = "deny-rule" | "allow-rule" | "static-deny" | "link-local-deny" | "host" | "host-disabled" | "routing" | "routing-disabled";

export function verdictAllows(v: Verdict): boolean {
  return v === "allow-rule" || v === "host" || v === "routing";
}

export interface PolicyOptions {
  allow: readonly FirewallRule[];
  deny: readonly FirewallRule[];
  enableHost: boolean;
  enableRouting: boolean;
}

export class RoutingPolicy {
  constructor(
    private readonly opts: PolicyOptions,
    private readonly routes: LocalRoutes,
  ) {}

  decide(network: "tcp" | "udp" | "icmp", ip: ParsedIP, port: number): Verdict {
    const text = formatIP(ip);
    if (anyRuleMatches(this.opts.deny, network, text, port)) return "deny-rule";
    if (anyRuleMatches(this.opts.allow, network, text, port)) return "allow-rule";
    if (STATIC_DENY.contains(ip)) return "static-deny";
    if (LINK_LOCAL_DENY.contains(ip)) return "link-local-deny";
    if (this.routes.covers(ip)) return this.opts.enableHost ? "host" : "host-disabled";
    return this.opts.enableRouting ? "routing" : "routing-disabled";
  }
}
