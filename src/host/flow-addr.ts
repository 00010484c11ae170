// Addresses of engine flows as text, for host sockets and log lines (cold
// path: once per flow).
import { ipv4ToString } from "../wire/ipv4.ts";
import { ipv6ToString } from "../wire/ipv6.ts";
import { formatHostPort } from "../cli/goaddr.ts";
import { parseGoIP, type ParsedIP } from "../cli/goip.ts";
import type { FlowTuple } from "../stack/flow-key.ts";

/** The address the guest talked to (our side of the flow). */
export function localIpText(t: FlowTuple): string {
  return t.family === 4 ? ipv4ToString(t.localV4) : ipv6ToString(t.localV6!, 0);
}

/** The guest's own address. */
export function remoteIpText(t: FlowTuple): string {
  return t.family === 4 ? ipv4ToString(t.remoteV4) : ipv6ToString(t.remoteV6!, 0);
}

/** "10.0.2.100:40000" / "[fd00::100]:40000" (contract §13.1). */
export function guestEndpoint(t: FlowTuple): string {
  return formatHostPort(remoteIpText(t), t.remotePort);
}

/** Where the guest was going, Go-style. */
export function destinationEndpoint(t: FlowTuple): string {
  return formatHostPort(localIpText(t), t.localPort);
}

/** The destination as a parsed IP (IPv4-mapped IPv6 becomes IPv4, contract §19). */
export function destinationIp(t: FlowTuple): ParsedIP {
  return parseGoIP(localIpText(t))!;
}
