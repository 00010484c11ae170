// Hand-written Ethernet/ARP/IPv4/ICMP frame builders and parsers for
// integration tests that talk to the stack through a raw frame channel (the
// -fd socketpair). Deliberately independent of src/wire, so a bug there
// cannot hide itself by being on both sides of a test.

export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
export const ETH_ARP = 0x0806;
export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;

export function mac(text: string): Uint8Array {
  return Uint8Array.from(text.split(":").map((h) => parseInt(h, 16)));
}

export function ipv4(text: string): Uint8Array {
  return Uint8Array.from(text.split(".").map((d) => Number(d)));
}

export function ipv4Text(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function macText(b: Uint8Array, off = 0): string {
  return [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** RFC 1071 Internet checksum of `b`. */
export function inetChecksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

export interface ArpFields {
  op: 1 | 2;
  senderMac: Uint8Array;
  senderIp: Uint8Array;
  targetMac: Uint8Array;
  targetIp: Uint8Array;
}

/** The 28-byte ARP body for Ethernet/IPv4. */
export function arpBody(a: ArpFields): Uint8Array {
  const b = new Uint8Array(28);
  const v = new DataView(b.buffer);
  v.setUint16(0, 1); // htype Ethernet
  v.setUint16(2, ETH_IPV4);
  b[4] = 6;
  b[5] = 4;
  v.setUint16(6, a.op);
  b.set(a.senderMac, 8);
  b.set(a.senderIp, 14);
  b.set(a.targetMac, 18);
  b.set(a.targetIp, 24);
  return b;
}

export function parseArp(frame: Uint8Array): ArpFields | null {
  if (frame.length < 14 + 28 || etherType(frame) !== ETH_ARP) return null;
  const b = frame.subarray(14);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint16(0) !== 1 || v.getUint16(2) !== ETH_IPV4 || b[4] !== 6 || b[5] !== 4) return null;
  const op = v.getUint16(6);
  if (op !== 1 && op !== 2) return null;
  return {
    op,
    senderMac: b.slice(8, 14),
    senderIp: b.slice(14, 18),
    targetMac: b.slice(18, 24),
    targetIp: b.slice(24, 28),
  };
}

export function etherType(frame: Uint8Array): number {
  return frame.length >= 14 ? (frame[12]! << 8) | frame[13]! : -1;
}

export interface Ipv4Fields {
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  id: number;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOffset?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  ttl?: number;
  payload: Uint8Array;
}

/** An IPv4 packet (20-byte header, correct checksum). */
export function ipv4Packet(p: Ipv4Fields): Uint8Array {
  const b = new Uint8Array(20 + p.payload.length);
  const v = new DataView(b.buffer);
  b[0] = 0x45;
  v.setUint16(2, b.length);
  v.setUint16(4, p.id);
  const flags = (p.dontFragment ? 0x4000 : 0) | (p.moreFragments ? 0x2000 : 0);
  v.setUint16(6, flags | ((p.fragOffset ?? 0) >> 3));
  b[8] = p.ttl ?? 64;
  b[9] = p.protocol;
  b.set(p.src, 12);
  b.set(p.dst, 16);
  v.setUint16(10, inetChecksum(b.subarray(0, 20)));
  b.set(p.payload, 20);
  return b;
}

/** ICMPv4 echo request or reply with a checksum. */
export function icmpEcho(type: 0 | 8, id: number, seq: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + data.length);
  const v = new DataView(b.buffer);
  b[0] = type;
  v.setUint16(4, id);
  v.setUint16(6, seq);
  b.set(data, 8);
  v.setUint16(2, inetChecksum(b));
  return b;
}

/**
 * Splits an IPv4 datagram's payload into fragments whose whole IP packets
 * are at most `mtu` bytes (every fragment but the last carries a multiple
 * of 8 bytes).
 */
export function fragmentIpv4(p: Ipv4Fields, mtu: number): Uint8Array[] {
  const chunk = Math.floor((mtu - 20) / 8) * 8;
  const out: Uint8Array[] = [];
  for (let off = 0; off < p.payload.length; off += chunk) {
    const part = p.payload.subarray(off, Math.min(off + chunk, p.payload.length));
    out.push(ipv4Packet({ ...p, payload: part, fragOffset: off, moreFragments: off + chunk < p.payload.length }));
  }
  return out;
}

export interface ParsedIpv4 {
  headerLength: number;
  totalLength: number;
  id: number;
  dontFragment: boolean;
  moreFragments: boolean;
  fragOffset: number;
  protocol: number;
  src: string;
  dst: string;
  /** Payload bytes as the total length says. */
  payload: Uint8Array;
}

/** Parses an IPv4 packet starting at `off` of `b` (an Ethernet frame: off 14). */
export function parseIpv4(b: Uint8Array, off = 14): ParsedIpv4 | null {
  if (b.length < off + 20 || b[off]! >> 4 !== 4) return null;
  const v = new DataView(b.buffer, b.byteOffset + off, b.byteLength - off);
  const ihl = (b[off]! & 0xf) * 4;
  const total = v.getUint16(2);
  if (ihl < 20 || total < ihl || off + total > b.length) return null;
  const ff = v.getUint16(6);
  return {
    headerLength: ihl,
    totalLength: total,
    id: v.getUint16(4),
    dontFragment: (ff & 0x4000) !== 0,
    moreFragments: (ff & 0x2000) !== 0,
    fragOffset: (ff & 0x1fff) * 8,
    protocol: b[off + 9]!,
    src: ipv4Text(b, off + 12),
    dst: ipv4Text(b, off + 16),
    payload: b.subarray(off + ihl, off + total),
  };
}

/** Reassembles fragments of one datagram (any order); null if incomplete. */
export function reassembleIpv4(frags: ParsedIpv4[]): Uint8Array | null {
  const last = frags.find((f) => !f.moreFragments);
  if (!last) return null;
  const size = last.fragOffset + last.payload.length;
  const out = new Uint8Array(size);
  const have = new Uint8Array(size);
  for (const f of frags) {
    if (f.fragOffset + f.payload.length > size) return null;
    out.set(f.payload, f.fragOffset);
    have.fill(1, f.fragOffset, f.fragOffset + f.payload.length);
  }
  return have.every((x) => x === 1) ? out : null;
}

/** A deterministic payload pattern. */
export function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
