// IP addresses: the one representation, parser and formatter for every
// layer (it imports nothing from Bun or node, so the engine can use it).
//
// Forms of one address:
//  - `IP`, a small immutable record, everywhere above the engine: 4 bytes
//    for IPv4, 16 for IPv6. An IPv4-mapped IPv6 address (::ffff:a.b.c.d,
//    RFC 4291 §2.5.5.2) is always the IPv4 record, as Go's To4() makes it
//    and as upstream prints it (docs/compatibility.md, Addresses in log
//    lines).
//  - In the engine, without allocating: IPv4 as a uint32 in host
//    arithmetic (10.0.2.2 is 0x0a000202, normalised with `>>> 0` so it
//    compares with ===), IPv6 as 16 bytes at an offset of some buffer (a
//    frame, a flow key). The helpers below turn those into text or records
//    directly, without going through text.
//
// Parsing follows Go's net.ParseIP (the net/netip parser in current Go),
// because deciding "IP literal or DNS name?" must match upstream
// (docs/compatibility.md, Spec grammar, Firewall entries): dotted-quad
// IPv4 with exactly four decimal parts and no leading zeros ("010" is
// octal to inet_aton, so it is refused rather than guessed; no "0x7f.1"),
// IPv6 groups of 1-4 hex digits, one "::" that stands for at least one
// group, an IPv4 tail only in the last 32 bits, and no zone ("%eth0") except
// through parseIPZone. The first '.' or ':' decides the family.
//
// Text: dotted quad for IPv4, RFC 5952 §4 for IPv6; socket addresses as Go
// prints a *net.TCPAddr ("a.b.c.d:port", "[x::y]:port"), and Go's
// net.SplitHostPort / net.JoinHostPort.
import { readU32 } from "./bytes.ts";
import { ipv6IsV4Mapped } from "./ipv6.ts";

/** An IP address: 4 bytes (family 4) or 16 bytes (family 6), never IPv4-mapped IPv6. */
export interface IP {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A prefix (CIDR): `bytes` has the host bits cleared; `bits` is 0..32 or 0..128. */
export interface IPPrefix extends IP {
  readonly bits: number;
}

// ---------------------------------------------------------------------------
// The grammar, written into a buffer (no allocation)

/** Dotted quad text[start, end) into out[off..off+4). */
function scanIPv4(text: string, start: number, end: number, out: Uint8Array, off: number): boolean {
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 0x2e; // '.' ends the last part
    if (c === 0x2e) {
      if (digits === 0 || parts === 4) return false;
      out[off + parts++] = part;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && part === 0) return false; // leading zero
      part = part * 10 + (c - 0x30);
      digits++;
      if (part > 255) return false;
    } else {
      return false;
    }
  }
  return parts === 4;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** RFC 4291 §2.2 text text[start, end) into out[off..off+16), with Go's rules. */
function scanIPv6(text: string, start: number, end: number, out: Uint8Array, off: number): boolean {
  let filled = 0; // bytes written
  let ellipsis = -1; // byte index where "::" stands
  let i = start;
  if (end - i >= 2 && text.charCodeAt(i) === 0x3a && text.charCodeAt(i + 1) === 0x3a) {
    ellipsis = 0;
    i += 2;
  }
  while (i < end && filled < 16) {
    const groupStart = i;
    let value = 0;
    for (; i < end; i++) {
      const digit = hexValue(text.charCodeAt(i));
      if (digit < 0) break;
      if (i - groupStart > 3) return false; // more than 4 hex digits
      value = value * 16 + digit;
    }
    if (i === groupStart) return false;
    if (i < end && text.charCodeAt(i) === 0x2e) {
      // The IPv4 tail covers exactly the last 32 bits.
      if ((ellipsis < 0 && filled !== 12) || filled + 4 > 16) return false;
      if (!scanIPv4(text, groupStart, end, out, off + filled)) return false;
      filled += 4;
      i = end;
      break;
    }
    out[off + filled] = value >> 8;
    out[off + filled + 1] = value & 0xff;
    filled += 2;
    if (i === end) break;
    if (text.charCodeAt(i) !== 0x3a || i + 1 === end) return false; // a single trailing colon
    i++;
    if (text.charCodeAt(i) === 0x3a) {
      if (ellipsis >= 0) return false; // a second "::"
      ellipsis = filled;
      i++;
    }
  }
  if (i !== end) return false;
  if (filled < 16) {
    if (ellipsis < 0) return false;
    const shift = 16 - filled;
    for (let j = filled - 1; j >= ellipsis; j--) out[off + j + shift] = out[off + j]!;
    for (let j = ellipsis; j < ellipsis + shift; j++) out[off + j] = 0;
  } else if (ellipsis >= 0) {
    return false; // "::" must stand for at least one group
  }
  return true;
}

/** Parses text[start, end) as either family into a fresh record (mapped kept as IPv6). */
function scanIP(text: string, start: number, end: number): IP | null {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      const bytes = new Uint8Array(4);
      return scanIPv4(text, start, end, bytes, 0) ? { family: 4, bytes } : null;
    }
    if (c === 0x3a) {
      const bytes = new Uint8Array(16);
      return scanIPv6(text, start, end, bytes, 0) ? { family: 6, bytes } : null;
    }
    if (c === 0x25) return null; // a zone without an address
  }
  return null;
}

function unmapped(ip: IP): IP {
  return ip.family === 6 && ipv6IsV4Mapped(ip.bytes, 0) ? { family: 4, bytes: ip.bytes.slice(12) } : ip;
}

// ---------------------------------------------------------------------------
// Parsing

/** Go net.ParseIP followed by To4(): null when `text` is not an IP literal. */
export function parseIP(text: string): IP | null {
  const raw = scanIP(text, 0, text.length);
  return raw === null ? null : unmapped(raw);
}

/** Like parseIP, but IPv6 may carry a non-empty `%zone` (socket addresses, resolver answers). */
export function parseIPZone(text: string): { ip: IP; zone: string } | null {
  const percent = text.indexOf("%");
  if (percent < 0) {
    const ip = parseIP(text);
    return ip === null ? null : { ip, zone: "" };
  }
  if (percent + 1 === text.length) return null;
  const bytes = new Uint8Array(16);
  if (!scanIPv6(text, 0, percent, bytes, 0)) return null;
  return { ip: unmapped({ family: 6, bytes }), zone: text.slice(percent + 1) };
}

/**
 * Go net.ParseCIDR: "ADDR/BITS". BITS is decimal (leading zeros allowed, as
 * Go's dtoi allows them). An IPv4-mapped prefix of at least 96 bits is the
 * IPv4 prefix it describes, as Go's IPNet.Contains treats it.
 */
export function parseCIDR(text: string): IPPrefix | null {
  const slash = text.indexOf("/");
  if (slash < 0) return null;
  const raw = scanIP(text, 0, slash);
  if (raw === null) return null;
  const bitsText = text.slice(slash + 1);
  if (!/^[0-9]+$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  if (bits > raw.bytes.length * 8) return null;
  const b = raw.bytes;
  for (let i = 0; i < b.length; i++) b[i] = b[i]! & ((0xff << (8 - Math.max(0, Math.min(8, bits - i * 8)))) & 0xff);
  if (raw.family === 6 && bits >= 96 && ipv6IsV4Mapped(b, 0)) return { family: 4, bytes: b.slice(12), bits: bits - 96 };
  return { family: raw.family, bytes: b, bits };
}

const v4Scratch = new Uint8Array(4);

/** A dotted quad as the engine's uint32, or null (IPv6 text, even IPv4-mapped, is refused). */
export function ipv4FromText(text: string): number | null {
  return scanIPv4(text, 0, text.length, v4Scratch, 0) ? readU32(v4Scratch, 0) : null;
}

/** IPv6 text as the engine's 16 bytes, exactly as written (an IPv4-mapped address stays 16 bytes), or null. */
export function ipv6FromText(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  return scanIPv6(text, 0, text.length, out, 0) ? out : null;
}

// ---------------------------------------------------------------------------
// Conversions between the engine's forms and records

/** The record of an engine IPv4 number. */
export function ipFromV4(a: number): IP {
  return { family: 4, bytes: new Uint8Array([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]) };
}

/** The record of the IPv6 address at b[off..off+16) (copied; IPv4-mapped becomes IPv4). */
export function ipFromV6(b: Uint8Array, off: number): IP {
  return ipv6IsV4Mapped(b, off) ? { family: 4, bytes: b.slice(off + 12, off + 16) } : { family: 6, bytes: b.slice(off, off + 16) };
}

/** The engine's uint32 of an IPv4 record. */
export function ipV4Number(ip: IP): number {
  return readU32(ip.bytes, 0);
}

// ---------------------------------------------------------------------------
// Text

/**
 * Text of addresses the engine converts again and again. Flows log the
 * same few (the guest, the gateway, loopback) several times, and each fresh
 * conversion builds five strings. What it saves is that CPU, not collector
 * work (allocation is no lever, docs/architecture.md): without it, 14
 * interleaved runs of 10000 connections each went about 1 % slower and
 * spent ~1 µs more user time per connection, at the edge of this machine's
 * noise.
 */
const v4Text = new Map<number, string>();
const V4_TEXT_MAX = 256;

/** "10.0.2.2" for 0x0a000202. */
export function ipv4Text(a: number): string {
  const key = a >>> 0;
  let s = v4Text.get(key);
  if (s === undefined) {
    s = `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
    if (v4Text.size >= V4_TEXT_MAX) v4Text.clear();
    v4Text.set(key, s);
  }
  return s;
}

/**
 * The 16 bytes at b[off..] per RFC 5952 §4: lowercase hex, no leading
 * zeros in a group, the longest run of two or more zero groups replaced by
 * "::" (the first one on a tie, §4.2.3; a single zero group is never
 * compressed, §4.2.2), and IPv4-mapped addresses as ::ffff:a.b.c.d (§5).
 */
export function ipv6Text(b: Uint8Array, off = 0): string {
  if (ipv6IsV4Mapped(b, off)) return `::ffff:${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  let bestStart = -1;
  let bestLen = 1; // runs must be longer than 1 to be compressed
  for (let i = 0; i < 8; ) {
    if (b[off + 2 * i] !== 0 || b[off + 2 * i + 1] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && b[off + 2 * j] === 0 && b[off + 2 * j + 1] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let s = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      s += "::";
      i += bestLen - 1;
      continue;
    }
    if (s.length > 0 && !s.endsWith(":")) s += ":";
    s += ((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!).toString(16);
  }
  return s;
}

/** Dotted quad for IPv4, RFC 5952 for IPv6 (Go's String). */
export function formatIP(ip: IP): string {
  return ip.family === 4 ? ipv4Text(readU32(ip.bytes, 0)) : ipv6Text(ip.bytes, 0);
}

/** "IP:port" for an engine IPv4 number. */
export function v4EndpointText(a: number, port: number): string {
  return `${ipv4Text(a)}:${port}`;
}

/** Go's text of the IPv6 address at b[off..]: an IPv4-mapped one prints as IPv4. */
export function v6IPText(b: Uint8Array, off: number): string {
  return ipv6IsV4Mapped(b, off) ? ipv4Text(readU32(b, off + 12)) : ipv6Text(b, off);
}

/** "[IP]:port" for the IPv6 address at b[off..]; IPv4-mapped prints as "IP:port". */
export function v6EndpointText(b: Uint8Array, off: number, port: number): string {
  return ipv6IsV4Mapped(b, off) ? v4EndpointText(readU32(b, off + 12), port) : `[${ipv6Text(b, off)}]:${port}`;
}

/** "IP:port" / "[IP]:port" for a record. */
export function endpointText(ip: IP, port: number): string {
  return ip.family === 4 ? v4EndpointText(readU32(ip.bytes, 0), port) : v6EndpointText(ip.bytes, 0, port);
}

/**
 * A socket address given as text, as Go prints a *net.TCPAddr /
 * *net.UDPAddr in log lines (docs/compatibility.md, Addresses in log
 * lines): `a.b.c.d:port`, `[x::y]:port` (RFC 5952, with `%zone`),
 * IPv4-mapped IPv6 as plain IPv4, and `<nil>` when there is no address.
 */
export function formatHostPort(ip: string | null, port: number): string {
  if (ip === null) return "<nil>";
  const parsed = parseIPZone(ip);
  if (parsed === null) return joinHostPort(ip, String(port));
  if (parsed.ip.family === 4) return endpointText(parsed.ip, port);
  return `[${formatIP(parsed.ip)}${parsed.zone === "" ? "" : "%" + parsed.zone}]:${port}`;
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

// ---------------------------------------------------------------------------
// Prefixes

/** Whether `p` covers `ip` (same family only: records are never IPv4-mapped). */
export function prefixContains(p: IPPrefix, ip: IP): boolean {
  if (p.family !== ip.family) return false;
  const full = p.bits >>> 3;
  for (let i = 0; i < full; i++) if (p.bytes[i] !== ip.bytes[i]) return false;
  const rest = p.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (p.bytes[full]! & mask) === (ip.bytes[full]! & mask);
}
