// `-allow` / `-deny` entries (docs/compatibility.md, Firewall entries) and
// how a rule matches a flow.
//
//   entry    := [network "://"] hostpart [":" ports]   (network default "tcp")
//   hostpart := CIDR | IP | hostname                   (IPv6 bracketed)
//   ports    := N | N "-" M
//
// Checks come in upstream's order: field count, then ports, then the host
// (CIDR, else IP literal, else a DNS name resolved now, IPv4 preferred,
// SRV syntax allowed). The first failing entry's error is the flag error.
import ipaddr from "ipaddr.js";
import type { Resolver } from "../host/resolve.ts";
import { parsePort, splitBracketFields, splitScheme } from "./forward.ts";
import { formatIP, parseGoCIDR, parseGoIP, type ParsedCIDR } from "./goip.ts";

export interface FirewallPrefix {
  family: 4 | 6;
  /** The network address, host bits cleared (dotted IPv4 or RFC 5952 IPv6). */
  addr: string;
  bits: number;
}

export interface FirewallRule {
  /** Free text; only "tcp" and "udp" can ever match, as upstream. */
  network: string;
  prefix: FirewallPrefix;
  portMin: number;
  portMax: number;
  /** No port part, or exactly 0-0. */
  allPorts: boolean;
}

/** Parses one -allow/-deny flag value: a comma-separated list of entries. */
export async function parseFirewallList(value: string, resolver: Resolver): Promise<FirewallRule[]> {
  const rules: FirewallRule[] = [];
  for (const entry of value.split(",")) {
    rules.push(await parseFirewallEntry(entry, resolver));
  }
  return rules;
}

async function parseFirewallEntry(entry: string, resolver: Resolver): Promise<FirewallRule> {
  const { network, rest } = splitScheme(entry, "tcp");
  const fields = splitBracketFields(rest);
  if (fields.length < 1 || fields.length > 2) throw new Error("error parsing ipportrange");
  const host = fields[0]!;

  let portMin = 0;
  let portMax = 0;
  if (fields.length === 2) {
    const range = fields[1]!;
    const dash = range.indexOf("-");
    if (dash >= 0) {
      // Both ends are parsed before either error is reported; the first wins.
      let minError: unknown = null;
      let maxError: unknown = null;
      try {
        portMin = parsePort(range.slice(0, dash));
      } catch (error) {
        minError = error;
      }
      try {
        portMax = parsePort(range.slice(dash + 1));
      } catch (error) {
        maxError = error;
      }
      if (minError !== null) throw minError;
      if (maxError !== null) throw maxError;
    } else {
      portMin = parsePort(range);
      portMax = portMin;
    }
    if (portMax < portMin) throw new Error("min port must be smaller equal than max");
  }

  const prefix = await parseHostPart(host, resolver);
  return {
    network,
    prefix: { family: prefix.family, addr: formatIP(prefix), bits: prefix.bits },
    portMin,
    portMax,
    allPorts: portMin === 0 && portMax === 0,
  };
}

async function parseHostPart(host: string, resolver: Resolver): Promise<ParsedCIDR> {
  const cidr = parseGoCIDR(host);
  if (cidr !== null) return cidr;
  let ip = parseGoIP(host);
  if (ip === null) {
    const resolved = await resolver.resolveLabel(host, 4);
    ip = parseGoIP(resolved.ip);
    if (ip === null) throw new Error(`Empty dns reponse for "${host}"`);
  }
  return { ...ip, bits: ip.family === 4 ? 32 : 128 };
}

/**
 * Whether a rule covers a flow to ip:port over `network`. IPv4 prefixes
 * match IPv4 and IPv4-mapped IPv6 addresses; IPv6 prefixes match other
 * IPv6 addresses only (Go's IPNet.Contains).
 */
export function ruleMatches(rule: FirewallRule, network: string, ip: string, port: number): boolean {
  if (rule.network !== network) return false;
  if (!rule.allPorts && (port < rule.portMin || port > rule.portMax)) return false;
  const address = parseGoIP(ip);
  if (address === null || address.family !== rule.prefix.family) return false;
  return ipaddr.fromByteArray(Array.from(address.bytes)).match(prefixAddress(rule.prefix), rule.prefix.bits);
}

// Rules are matched for every new guest flow: keep each prefix parsed once.
const parsedPrefixes = new WeakMap<FirewallPrefix, ipaddr.IPv4 | ipaddr.IPv6>();

function prefixAddress(prefix: FirewallPrefix): ipaddr.IPv4 | ipaddr.IPv6 {
  let parsed = parsedPrefixes.get(prefix);
  if (parsed === undefined) {
    const ip = parseGoIP(prefix.addr);
    if (ip === null) throw new Error(`firewall prefix is not an IP: ${prefix.addr}`);
    parsed = ipaddr.fromByteArray(Array.from(ip.bytes));
    parsedPrefixes.set(prefix, parsed);
  }
  return parsed;
}

/** Whether any rule in the list matches (upstream's IPPortRangeSlice.Contains). */
export function anyRuleMatches(rules: readonly FirewallRule[], network: string, ip: string, port: number): boolean {
  return rules.some((rule) => ruleMatches(rule, network, ip, port));
}
