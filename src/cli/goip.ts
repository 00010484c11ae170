// IP literals exactly as Go's net.ParseIP / net.ParseCIDR accept them.
//
// Deciding "is this an IP literal or a DNS label?" must match upstream: a
// forward-spec host that parses as an IP literal is a static address,
// anything else a label (docs/compatibility.md, Spec grammar); a firewall
// entry is tried as CIDR, then IP, then DNS name (Firewall entries).
// ipaddr.js is more lenient than Go (it takes "0x7f.1" and reads
// "::1.2.3.4" as IPv4-mapped), so the decision is made here, with the rules
// of Go's net/netip parser (the one net.ParseIP uses in current Go): strict
// dotted-quad IPv4 without leading zeros, IPv6 groups of 1-4 hex digits,
// one "::" that stands for at least one group, an IPv4 tail only in the
// last 32 bits, and no zone. ipaddr.js then does the printing (RFC 5952)
// and the prefix arithmetic.
//
// Like upstream's netParseIP, IPv4 and IPv4-mapped IPv6 text both become a
// 4-byte IPv4 address (so it also prints as IPv4 in log lines).
import ipaddr from "ipaddr.js";

export interface ParsedIP {
  family: 4 | 6;
  /** 4 bytes for family 4, 16 bytes for family 6. */
  bytes: Uint8Array;
}

export interface ParsedCIDR extends ParsedIP {
  /** Prefix length, 0..32 or 0..128; `bytes` already has the host bits cleared. */
  bits: number;
}

/** Go net.ParseIP followed by To4(): null when `text` is not an IP literal. */
export function parseGoIP(text: string): ParsedIP | null {
  const raw = parseRawAddress(text);
  if (raw === null) return null;
  return normalizeMapped(raw);
}

/** Like parseGoIP, but a `%zone` suffix is allowed on IPv6 (for printing socket addresses). */
export function parseGoIPWithZone(text: string): { ip: ParsedIP; zone: string } | null {
  const percent = text.indexOf("%");
  if (percent < 0) {
    const ip = parseGoIP(text);
    return ip === null ? null : { ip, zone: "" };
  }
  const zone = text.slice(percent + 1);
  if (zone === "") return null;
  const bytes = parseIPv6(text.slice(0, percent));
  if (bytes === null) return null;
  return { ip: normalizeMapped({ family: 6, bytes }), zone };
}

/** The canonical text of an IP literal (dotted IPv4, RFC 5952 IPv6), or null. */
export function normalizeIPLiteral(text: string): string | null {
  const ip = parseGoIP(text);
  return ip === null ? null : formatIP(ip);
}

/** Dotted quad for IPv4, RFC 5952 (Go's String) for IPv6. */
export function formatIP(ip: ParsedIP): string {
  if (ip.family === 4) return Array.from(ip.bytes).join(".");
  return (ipaddr.fromByteArray(Array.from(ip.bytes)) as ipaddr.IPv6).toRFC5952String();
}

export function isIPv6Literal(text: string): boolean {
  const ip = parseGoIP(text);
  return ip !== null && ip.family === 6;
}

/**
 * Go net.ParseCIDR: "ADDR/BITS". BITS is decimal (leading zeros allowed,
 * as Go's dtoi allows them). An IPv4-mapped prefix of at least 96 bits is
 * the IPv4 prefix it describes, as Go's IPNet.Contains treats it.
 */
export function parseGoCIDR(text: string): ParsedCIDR | null {
  const slash = text.indexOf("/");
  if (slash < 0) return null;
  const raw = parseRawAddress(text.slice(0, slash));
  if (raw === null) return null;
  const bitsText = text.slice(slash + 1);
  if (!/^[0-9]+$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  if (bits > raw.bytes.length * 8) return null;
  const masked = maskBytes(raw.bytes, bits);
  if (raw.family === 6 && bits >= 96 && isMapped(masked)) {
    return { family: 4, bytes: masked.slice(12), bits: bits - 96 };
  }
  return { family: raw.family, bytes: masked, bits };
}

function maskBytes(bytes: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function isMapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function normalizeMapped(ip: ParsedIP): ParsedIP {
  if (ip.family === 6 && isMapped(ip.bytes)) return { family: 4, bytes: ip.bytes.slice(12) };
  return ip;
}

/** The first '.' or ':' decides the family, as in netip.ParseAddr; zones are refused. */
function parseRawAddress(text: string): ParsedIP | null {
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ".") {
      const bytes = parseIPv4(text);
      return bytes === null ? null : { family: 4, bytes };
    }
    if (c === ":") {
      const bytes = parseIPv6(text);
      return bytes === null ? null : { family: 6, bytes };
    }
    if (c === "%") return null;
  }
  return null;
}

function parseIPv4(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let value = 0;
  let digits = 0;
  let field = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && value === 0) return null; // leading zero
      value = value * 10 + (c - 0x30);
      digits++;
      if (value > 255) return null;
    } else if (c === 0x2e) {
      if (i === 0 || i === text.length - 1 || text.charCodeAt(i - 1) === 0x2e) return null;
      if (field === 3) return null;
      out[field++] = value;
      value = 0;
      digits = 0;
    } else {
      return null;
    }
  }
  if (field < 3) return null;
  out[3] = value;
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function parseIPv6(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  let ellipsis = -1;
  let filled = 0;
  let s = text;
  if (s.length >= 2 && s[0] === ":" && s[1] === ":") {
    ellipsis = 0;
    s = s.slice(2);
    if (s === "") return out;
  }
  while (filled < 16) {
    let value = 0;
    let length = 0;
    for (; length < s.length; length++) {
      const digit = hexValue(s.charCodeAt(length));
      if (digit < 0) break;
      if (length > 3) return null; // more than 4 hex digits
      value = value * 16 + digit;
    }
    if (length === 0) return null;
    if (length < s.length && s[length] === ".") {
      // The IPv4 tail must cover exactly the last 32 bits.
      if (ellipsis < 0 && filled !== 12) return null;
      if (filled + 4 > 16) return null;
      const tail = parseIPv4(s);
      if (tail === null) return null;
      out.set(tail, filled);
      filled += 4;
      s = "";
      break;
    }
    out[filled] = value >> 8;
    out[filled + 1] = value & 0xff;
    filled += 2;
    s = s.slice(length);
    if (s === "") break;
    if (s[0] !== ":" || s.length === 1) return null;
    s = s.slice(1);
    if (s[0] === ":") {
      if (ellipsis >= 0) return null; // a second "::"
      ellipsis = filled;
      s = s.slice(1);
      if (s === "") break;
    }
  }
  if (s !== "") return null;
  if (filled < 16) {
    if (ellipsis < 0) return null;
    const shift = 16 - filled;
    for (let j = filled - 1; j >= ellipsis; j--) {
      out[j + shift] = out[j]!;
      out[j] = 0;
    }
  } else if (ellipsis >= 0) {
    return null; // "::" must stand for at least one group
  }
  return out;
}
