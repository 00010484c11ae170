// `-allow` / `-deny` entries (docs/compatibility.md, Firewall entries).
// How a rule matches a flow is src/host/control/policy.ts.
//
//   entry    := [network "://"] hostpart [":" ports]   (network default "tcp")
//   hostpart := CIDR | IP | hostname                   (IPv6 bracketed)
//   ports    := N | N "-" M
//
// Checks come in upstream's order: field count, then ports, then the host
// (CIDR, else IP literal, else a DNS name resolved now, IPv4 preferred,
// SRV syntax allowed). The first failing entry's error is the flag error.
import type { FirewallRule } from "../host/control/policy.ts";
import type { Resolver } from "../host/control/resolve.ts";
import { parsePort, splitBracketFields, splitScheme } from "./forward.ts";
import { parseCIDR, parseIP, type IPPrefix } from "../wire/addr.ts";

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
    prefix,
    portMin,
    portMax,
    allPorts: portMin === 0 && portMax === 0,
  };
}

async function parseHostPart(host: string, resolver: Resolver): Promise<IPPrefix> {
  const cidr = parseCIDR(host);
  if (cidr !== null) return cidr;
  let ip = parseIP(host);
  if (ip === null) {
    const resolved = await resolver.resolveLabel(host, 4);
    ip = parseIP(resolved.ip);
    if (ip === null) throw new Error(`Empty dns reponse for "${host}"`);
  }
  return { ...ip, bits: ip.family === 4 ? 32 : 128 };
}
