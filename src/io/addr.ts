// Conversions between struct sockaddr (ffi/net.ts SockAddr) and the
// address forms of src/wire/addr.ts, in one place: Go-style text for log
// lines ("127.0.0.1:80", "[::1]:80"; IPv4-mapped IPv6 prints as IPv4,
// docs/compatibility.md, Addresses in log lines), records, and a map key,
// read straight from the sockaddr bytes. Into a SockAddr: `sa.set(ip.bytes, port)`.
import { AF_INET, SockAddr } from "../../ffi/net.ts";
import { ipFromV6, ipFromV4, v4EndpointText, v6EndpointText, type IP } from "../wire/addr.ts";
import { readU32 } from "../wire/bytes.ts";
import { ipv6IsV4Mapped } from "../wire/ipv6.ts";

const V6 = SockAddr.V6_OFF;

/** Go's text of the address and port. */
export function sockAddrText(sa: SockAddr): string {
  return sa.family === AF_INET ? v4EndpointText(sa.v4, sa.port) : v6EndpointText(sa.bytes, V6, sa.port);
}

/** The address part as a record (IPv4-mapped IPv6 as IPv4). */
export function sockAddrIP(sa: SockAddr): IP {
  return sa.family === AF_INET ? ipFromV4(sa.v4) : ipFromV6(sa.bytes, V6);
}

/**
 * A map key for the address and port: IPv4 (mapped included) as one
 * number, so a datagram needs no string; IPv6 as its text.
 */
export function sockAddrKey(sa: SockAddr): number | string {
  if (sa.family === AF_INET) return sa.v4 * 65536 + sa.port;
  if (ipv6IsV4Mapped(sa.bytes, V6)) return readU32(sa.bytes, V6 + 12) * 65536 + sa.port;
  return sockAddrText(sa);
}
