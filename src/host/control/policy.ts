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
import { prefixContains, type IP, type IPPrefix } from "../../wire/addr.ts";
import { LINK_LOCAL_DENY, STATIC_DENY } from "./prefix.ts";
import { inGuestNetV4, type GuestNetV4 } from "../../wire/guest-net.ts";
import type { LocalRoutes } from "./routes.ts";

/** One -allow/-deny entry, as src/cli/firewall.ts parses it (docs/compatibility.md, Firewall entries). */
export interface FirewallRule {
  /** Free text; only "tcp" and "udp" can ever match, as upstream. */
  network: string;
  /** Host bits cleared; an IPv4-mapped prefix of >= 96 bits is the IPv4 prefix. */
  prefix: IPPrefix;
  portMin: number;
  portMax: number;
  /** No port part, or exactly 0-0. */
  allPorts: boolean;
}

/**
 * Whether a rule covers a flow to ip:port over `network`. IPv4 prefixes
 * match IPv4 (and so IPv4-mapped IPv6) addresses; IPv6 prefixes match other
 * IPv6 addresses only (Go's IPNet.Contains).
 */
export function ruleMatches(rule: FirewallRule, network: string, ip: IP, port: number): boolean {
  if (rule.network !== network) return false;
  if (!rule.allPorts && (port < rule.portMin || port > rule.portMax)) return false;
  return prefixContains(rule.prefix, ip);
}

/** Whether any rule in the list matches (upstream's IPPortRangeSlice.Contains). */
export function anyRuleMatches(rules: readonly FirewallRule[], network: string, ip: IP, port: number): boolean {
  for (const rule of rules) if (ruleMatches(rule, network, ip, port)) return true;
  return false;
}

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
    /** The guest's network: on the static deny list. */
    private readonly guestNet: GuestNetV4,
  ) {}

  decide(network: "tcp" | "udp" | "icmp", ip: IP, port: number): Verdict {
    if (anyRuleMatches(this.opts.deny, network, ip, port)) return "deny-rule";
    if (anyRuleMatches(this.opts.allow, network, ip, port)) return "allow-rule";
    if (STATIC_DENY.contains(ip) || inGuestNetV4(this.guestNet, ip)) return "static-deny";
    if (LINK_LOCAL_DENY.contains(ip)) return "link-local-deny";
    if (this.routes.covers(ip)) return this.opts.enableHost ? "host" : "host-disabled";
    return this.opts.enableRouting ? "routing" : "routing-disabled";
  }
}
