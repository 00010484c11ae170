// Addresses of engine flows as text and as parsed IPs, for host sockets,
// policy checks and log lines. Once per flow, but on every connection:
// built straight from the engine's numbers and bytes, without parsing text
// back. IPv4-mapped IPv6 addresses count as IPv4, as upstream prints them
// (docs/compatibility.md, Addresses in log lines).
import { ipv4ToString } from "../wire/ipv4.ts";
import { ipv6IsV4Mapped, ipv6ToString } from "../wire/ipv6.ts";
import { readU32 } from "../wire/bytes.ts";
import type { ParsedIP } from "../cli/goip.ts";
import type { FlowTuple } from "../stack/flow-key.ts";
import { v4EndpointText, v6EndpointText } from "../io/addr.ts";

function v6Text(a: Uint8Array): string {
  return ipv6IsV4Mapped(a, 0) ? ipv4ToString(readU32(a, 12)) : ipv6ToString(a, 0);
}

function endpoint(family: 4 | 6, v4: number, v6: Uint8Array | null, port: number): string {
  return family === 4 ? v4EndpointText(v4, port) : v6EndpointText(v6!, 0, port);
}

/** The address the guest talked to (our side of the flow). */
export function localIpText(t: FlowTuple): string {
  return t.family === 4 ? ipv4ToString(t.localV4) : v6Text(t.localV6!);
}

/** "10.0.2.100:40000" / "[fd00::100]:40000", Go's address text. */
export function guestEndpoint(t: FlowTuple): string {
  return endpoint(t.family, t.remoteV4, t.remoteV6, t.remotePort);
}

/** Where the guest was going, Go-style. */
export function destinationEndpoint(t: FlowTuple): string {
  return endpoint(t.family, t.localV4, t.localV6, t.localPort);
}

/** "IP:port" of the destination, for exact -R matches (no brackets). */
export function destinationKey(t: FlowTuple): string {
  return `${localIpText(t)}:${t.localPort}`;
}

/** The destination as a parsed IP. */
export function destinationIp(t: FlowTuple): ParsedIP {
  if (t.family === 4) {
    const a = t.localV4;
    return { family: 4, bytes: new Uint8Array([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]) };
  }
  const b = t.localV6!;
  return ipv6IsV4Mapped(b, 0) ? { family: 4, bytes: b.slice(12, 16) } : { family: 6, bytes: b };
}
