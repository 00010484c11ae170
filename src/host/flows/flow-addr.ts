// Addresses of engine flows as text and as records, for host sockets,
// policy checks and log lines. Once per flow, but on every connection:
// built straight from the engine's numbers and bytes (src/wire/addr.ts),
// without parsing text back. IPv4-mapped IPv6 addresses count as IPv4, as
// upstream prints them (docs/compatibility.md, Addresses in log lines).
import { ipFromV4, ipFromV6, ipv4Text, v4EndpointText, v6EndpointText, v6IPText, type IP } from "../../wire/addr.ts";
import type { FlowTuple } from "../../stack/flow-key.ts";

/** The address the guest talked to (our side of the flow). */
export function destIpText(t: FlowTuple): string {
  return t.family === 4 ? ipv4Text(t.destV4) : v6IPText(t.destV6!, 0);
}

/** "10.0.2.100:40000" / "[fd00::100]:40000", Go's address text. */
export function guestEndpoint(t: FlowTuple): string {
  return t.family === 4 ? v4EndpointText(t.guestV4, t.guestPort) : v6EndpointText(t.guestV6!, 0, t.guestPort);
}

/** Where the guest was going, Go-style. */
export function destinationEndpoint(t: FlowTuple): string {
  return t.family === 4 ? v4EndpointText(t.destV4, t.destPort) : v6EndpointText(t.destV6!, 0, t.destPort);
}

/** "IP:port" of the destination, for exact -R matches (no brackets). */
export function destinationKey(t: FlowTuple): string {
  return `${destIpText(t)}:${t.destPort}`;
}

/** The destination as a record. */
export function destinationIp(t: FlowTuple): IP {
  return t.family === 4 ? ipFromV4(t.destV4) : ipFromV6(t.destV6!, 0);
}
