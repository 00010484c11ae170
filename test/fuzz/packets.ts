// Packet builders and an Internet checksum for the fuzzer, written apart
// from src/wire so that a bug there cannot vouch for itself: what goes in
// is built here, what comes out is checked by invariants.ts with the same
// independent helpers.

export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;
export const ETH_ARP = 0x0806;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
export const EXT_HOP = 0;
export const EXT_ROUTING = 43;
export const EXT_FRAGMENT = 44;
export const EXT_DSTOPTS = 60;
export const EXT_NONE = 59;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

/** Sum of 16-bit big-endian words (RFC 1071), not folded. */
export function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

/** The complemented, folded checksum. */
export function finish(acc: number): number {
  return ~fold(acc) & 0xffff;
}

export function pseudoV4(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

export function pseudoV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, proto: number, len: number): number {
  return sum16(src, srcOff, 16) + sum16(dst, dstOff, 16) + (len >>> 16) + (len & 0xffff) + proto;
}

export function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v;
}

export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

export function get16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

export function get32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Where an L3 packet comes from and goes to: the pseudo-header of its L4 checksum. */
export type Addrs = { v: 4; src: number; dst: number } | { v: 6; src: Uint8Array; dst: Uint8Array };

export function pseudo(a: Addrs, proto: number, len: number): number {
  return a.v === 4 ? pseudoV4(a.src, a.dst, proto, len) : pseudoV6(a.src, 0, a.dst, 0, proto, len);
}

/**
 * How an L4 checksum is filled: right, wrong, zero (UDP over IPv4: "none"),
 * or the pseudo-header sum only, as a guest kernel leaves it for a
 * NEEDS_CSUM frame (the device vouches for it through RxMeta).
 */
export type CsumMode = "ok" | "bad" | "zero" | "partial";

export function fillL4Checksum(l4: Uint8Array, at: number, ph: number, mode: CsumMode): void {
  put16(l4, at, 0);
  if (mode === "zero") return;
  if (mode === "partial") {
    put16(l4, at, fold(ph));
    return;
  }
  let c = finish(sum16(l4, 0, l4.length, ph));
  if (c === 0) c = 0xffff;
  if (mode === "bad") c ^= 0x1234;
  put16(l4, at, c);
}

// ---------------------------------------------------------------------
// Link and network layers
// ---------------------------------------------------------------------

export function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  put16(f, 12, type);
  f.set(payload, 14);
  return f;
}

export interface V4Header {
  src: number;
  dst: number;
  proto: number;
  id: number;
  /** Fragment offset in bytes (multiple of 8). */
  fragOff?: number;
  more?: boolean;
  df?: boolean;
  ttl?: number;
  /** IP options (padded to 4 bytes by the builder). */
  options?: Uint8Array;
  badChecksum?: boolean;
  /** Total Length field override (a lie). */
  totalLen?: number;
}

export function ipv4(h: V4Header, payload: Uint8Array): Uint8Array {
  const optLen = h.options ? (h.options.length + 3) & ~3 : 0;
  const hl = 20 + Math.min(optLen, 40);
  const b = new Uint8Array(hl + payload.length);
  b[0] = 0x40 | (hl >>> 2);
  put16(b, 2, h.totalLen ?? b.length);
  put16(b, 4, h.id);
  put16(b, 6, (h.df ? 0x4000 : 0) | (h.more ? 0x2000 : 0) | ((h.fragOff ?? 0) >>> 3));
  b[8] = h.ttl ?? 64;
  b[9] = h.proto;
  put32(b, 12, h.src);
  put32(b, 16, h.dst);
  if (h.options) b.set(h.options.subarray(0, hl - 20), 20);
  put16(b, 10, finish(sum16(b, 0, hl)) ^ (h.badChecksum ? 0x0100 : 0));
  b.set(payload, hl);
  return b;
}

/** An IPv6 packet; `payload` starts with whatever `nextHeader` names (extension headers included). */
export function ipv6(src: Uint8Array, dst: Uint8Array, nextHeader: number, hopLimit: number, payload: Uint8Array, payloadLenLie?: number): Uint8Array {
  const b = new Uint8Array(40 + payload.length);
  put32(b, 0, 0x60000000);
  put16(b, 4, payloadLenLie ?? payload.length);
  b[6] = nextHeader;
  b[7] = hopLimit;
  b.set(src, 8);
  b.set(dst, 24);
  b.set(payload, 40);
  return b;
}

/** Hop-by-Hop, Routing or Destination Options: (units + 1) * 8 bytes, body padded with PadN. */
export function extHeader(next: number, units: number, body: Uint8Array | null): Uint8Array {
  const b = new Uint8Array((units + 1) * 8);
  b[0] = next;
  b[1] = units;
  if (body !== null) b.set(body.subarray(0, b.length - 2), 2);
  else {
    // One PadN option covering the rest (RFC 8200 §4.2).
    b[2] = 1;
    b[3] = b.length - 4;
  }
  return b;
}

export function fragHeader(next: number, offBytes: number, more: boolean, ident: number): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = next;
  put16(b, 2, (offBytes & 0xfff8) | (more ? 1 : 0));
  put32(b, 4, ident);
  return b;
}

// ---------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------

export interface TcpFields {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent?: number;
  /** Raw option bytes (zero-padded, EOL, to a multiple of 4; at most 40). */
  options?: Uint8Array;
  /** Data Offset override (a lie about the header length). */
  dataOffset?: number;
}

export function tcp(a: Addrs, t: TcpFields, payload: Uint8Array, mode: CsumMode): Uint8Array {
  const optLen = t.options ? Math.min((t.options.length + 3) & ~3, 40) : 0;
  const hl = 20 + optLen;
  const b = new Uint8Array(hl + payload.length);
  put16(b, 0, t.sport);
  put16(b, 2, t.dport);
  put32(b, 4, t.seq);
  put32(b, 8, t.ack);
  b[12] = (t.dataOffset ?? hl >>> 2) << 4;
  b[13] = t.flags;
  put16(b, 14, t.window);
  put16(b, 18, t.urgent ?? 0);
  if (t.options) b.set(t.options.subarray(0, optLen), 20);
  b.set(payload, hl);
  fillL4Checksum(b, 16, pseudo(a, PROTO_TCP, b.length), mode);
  return b;
}

export function udp(a: Addrs, sport: number, dport: number, payload: Uint8Array, mode: CsumMode, lengthLie?: number): Uint8Array {
  const b = new Uint8Array(8 + payload.length);
  put16(b, 0, sport);
  put16(b, 2, dport);
  put16(b, 4, lengthLie ?? b.length);
  b.set(payload, 8);
  fillL4Checksum(b, 6, pseudo(a, PROTO_UDP, b.length), mode);
  return b;
}

/** ICMPv4 message: no pseudo-header. */
export function icmp4(type: number, code: number, rest: number, body: Uint8Array, bad: boolean): Uint8Array {
  const b = new Uint8Array(8 + body.length);
  b[0] = type;
  b[1] = code;
  put32(b, 4, rest);
  b.set(body, 8);
  put16(b, 2, finish(sum16(b, 0, b.length)) ^ (bad ? 1 : 0));
  return b;
}

/** ICMPv6 message: `body` follows the 4-byte type/code/checksum. */
export function icmp6(a: Addrs, type: number, code: number, body: Uint8Array, mode: CsumMode): Uint8Array {
  const b = new Uint8Array(4 + body.length);
  b[0] = type;
  b[1] = code;
  b.set(body, 4);
  fillL4Checksum(b, 2, pseudo(a, PROTO_ICMPV6, b.length), mode);
  return b;
}

/** ARP for Ethernet/IPv4 (RFC 826). */
export function arp(op: number, senderMac: Uint8Array, senderIp: number, targetMac: Uint8Array, targetIp: number): Uint8Array {
  const b = new Uint8Array(28);
  put16(b, 0, 1);
  put16(b, 2, ETH_IPV4);
  b[4] = 6;
  b[5] = 4;
  put16(b, 6, op);
  b.set(senderMac, 8);
  put32(b, 14, senderIp);
  b.set(targetMac, 18);
  put32(b, 24, targetIp);
  return b;
}

/** Solicited-node multicast address of `a` (RFC 4291 §2.7.1). */
export function solicitedNode(a: Uint8Array): Uint8Array {
  const m = new Uint8Array(16);
  m.set([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]);
  m.set(a.subarray(13, 16), 13);
  return m;
}

export function v4Bytes(a: number): Uint8Array {
  const b = new Uint8Array(4);
  put32(b, 0, a);
  return b;
}
