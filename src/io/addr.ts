// Socket addresses as the rest of the program sees them: Go-style text for
// log lines ("127.0.0.1:80", "[::1]:80"; IPv4-mapped IPv6 prints as IPv4,
// docs/compatibility.md, Addresses in log lines) and parsed IPs, straight
// from struct sockaddr bytes.
import { AF_INET, SockAddr } from "../../ffi/net.ts";
import type { ParsedIP } from "../cli/goip.ts";
import { ipv4ToString } from "../wire/ipv4.ts";
import { ipv6IsV4Mapped, ipv6ToString } from "../wire/ipv6.ts";
import { readU32 } from "../wire/bytes.ts";

const V6 = SockAddr.V6_OFF;

/** "IP:port" for an IPv4 address held as a number. */
export function v4EndpointText(v4: number, port: number): string {
  return `${ipv4ToString(v4)}:${port}`;
}

/** "[IP]:port" for the IPv6 address at b[off..]; IPv4-mapped prints as IPv4. */
export function v6EndpointText(b: Uint8Array, off: number, port: number): string {
  return ipv6IsV4Mapped(b, off) ? v4EndpointText(readU32(b, off + 12), port) : `[${ipv6ToString(b, off)}]:${port}`;
}

export function sockAddrText(sa: SockAddr): string {
  return sa.family === AF_INET ? v4EndpointText(sa.v4, sa.port) : v6EndpointText(sa.bytes, V6, sa.port);
}

/** The address part, IPv4-mapped IPv6 as IPv4. */
export function sockAddrIP(sa: SockAddr): ParsedIP {
  const b = sa.bytes;
  if (sa.family === AF_INET) return { family: 4, bytes: b.slice(4, 8) };
  if (ipv6IsV4Mapped(b, V6)) return { family: 4, bytes: b.slice(V6 + 12, V6 + 16) };
  return { family: 6, bytes: b.slice(V6, V6 + 16) };
}

/** "IP:port" / "[IP]:port" for a parsed IP. */
export function endpointText(ip: ParsedIP, port: number): string {
  return ip.family === 4 ? v4EndpointText(readU32(ip.bytes, 0), port) : v6EndpointText(ip.bytes, 0, port);
}
