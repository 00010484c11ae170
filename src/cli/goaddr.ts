// Go-style socket address text (docs/compatibility.md, Addresses in log
// lines) and Go's host:port splitting and joining (net.SplitHostPort /
// net.JoinHostPort), used for `-m` and for the SRV server part of a label.
import { formatIP, parseGoIPWithZone } from "./goip.ts";

/**
 * A socket address as Go prints a *net.TCPAddr / *net.UDPAddr in log lines
 * (docs/compatibility.md, Addresses in log lines): `a.b.c.d:port`,
 * `[x::y]:port` (RFC 5952, with `%zone`), IPv4-mapped IPv6 as plain IPv4,
 * and `<nil>` when there is no address.
 */
export function formatHostPort(ip: string | null, port: number): string {
  if (ip === null) return "<nil>";
  const parsed = parseGoIPWithZone(ip);
  if (parsed === null) return joinHostPort(ip, String(port));
  const text = formatIP(parsed.ip);
  if (parsed.ip.family === 4) return `${text}:${port}`;
  return `[${text}${parsed.zone === "" ? "" : "%" + parsed.zone}]:${port}`;
}

/** Go net.JoinHostPort: brackets around a host that holds a colon. */
export function joinHostPort(host: string, port: string): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Go *net.AddrError text: "address ADDR: WHY". */
export class GoAddrError extends Error {
  constructor(
    readonly why: string,
    readonly address: string,
  ) {
    super(address === "" ? why : `address ${address}: ${why}`);
    this.name = "GoAddrError";
  }
}

/** Go net.SplitHostPort, with its error texts. */
export function splitHostPort(hostport: string): { host: string; port: string } {
  const fail = (why: string): never => {
    throw new GoAddrError(why, hostport);
  };
  const lastColon = hostport.lastIndexOf(":");
  if (lastColon < 0) fail("missing port in address");
  let host: string;
  let noOpenAfter = 0; // no '[' may appear from here on
  let noCloseAfter = 0; // no ']' may appear from here on
  if (hostport[0] === "[") {
    const end = hostport.indexOf("]");
    if (end < 0) fail("missing ']' in address");
    if (end + 1 === hostport.length) fail("missing port in address");
    if (end + 1 !== lastColon) {
      if (hostport[end + 1] === ":") fail("too many colons in address");
      fail("missing port in address");
    }
    host = hostport.slice(1, end);
    noOpenAfter = 1;
    noCloseAfter = end + 1;
  } else {
    host = hostport.slice(0, lastColon);
    if (host.includes(":")) fail("too many colons in address");
  }
  if (hostport.indexOf("[", noOpenAfter) >= 0) fail("unexpected '[' in address");
  if (hostport.indexOf("]", noCloseAfter) >= 0) fail("unexpected ']' in address");
  return { host, port: hostport.slice(lastColon + 1) };
}
