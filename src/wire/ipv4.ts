/**
 * IPv4 (RFC 791) header view, record and address classes.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |  DSCP/ECN     |          Total Length         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Identification        |Flags|      Fragment Offset    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                       Source Address                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Destination Address                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Options                    |    Padding    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Addresses are uint32 numbers in host arithmetic (10.0.2.2 is 0x0a000202),
 * always normalised with `>>> 0` so they compare with ===; their text and
 * records are src/wire/addr.ts.
 */
import { finish, sum16 } from "./checksum.ts";
import { writeU32 } from "./bytes.ts";
import { WireError } from "./errors.ts";
import { View } from "./view.ts";

/**
 * IANA protocol numbers ("Assigned Internet Protocol Numbers"), shared with
 * IPv6 next-header values; the names are Linux's <netinet/in.h>.
 */
/** IPv6 Hop-by-Hop Options (RFC 8200 §4.3). */
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
/** IPv6 Routing header (RFC 8200 §4.4). */
export const IPPROTO_ROUTING = 43;
/** IPv6 Fragment header (RFC 8200 §4.5). */
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
/** IPv6 "No Next Header" (RFC 8200 §4.7). */
export const IPPROTO_NONE = 59;
/** IPv6 Destination Options (RFC 8200 §4.6). */
export const IPPROTO_DSTOPTS = 60;

export const IPV4_HEADER_LEN = 20;
/** Largest header: IHL is 4 bits, in 32-bit words. */
export const IPV4_MAX_HEADER_LEN = 60;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAG_MASK = 0x1fff;

/** Reusable view over one IPv4 packet. */
export class Ipv4View extends View {
  static readonly HEADER_LEN = IPV4_HEADER_LEN;

  /** Packet length: after a successful attach, the Total Length field. */
  declare len: number;

  /**
   * Validates an untrusted packet in buf[off, off+len):
   *  - at least 20 bytes (Truncated),
   *  - version 4 (BadVersion),
   *  - IHL >= 5 and IHL*4 <= Total Length (BadHeaderLen),
   *  - Total Length <= available bytes (BadLength).
   * Bytes after Total Length are link-layer padding (a 60-byte minimum
   * Ethernet frame carrying a 40-byte TCP ACK has 6 of them) and are
   * excluded: `len` becomes Total Length. The header checksum is not
   * checked here: call verifyChecksum() unless the device already did.
   */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < IPV4_HEADER_LEN) return WireError.Truncated;
    const vihl = buf[off];
    if (vihl >>> 4 !== 4) return WireError.BadVersion;
    const hl = (vihl & 15) << 2;
    const total = (buf[off + 2] << 8) | buf[off + 3];
    if (hl < IPV4_HEADER_LEN || hl > total) return WireError.BadHeaderLen;
    if (total > len) return WireError.BadLength;
    this.len = total;
    return WireError.Ok;
  }

  get version(): number {
    return this.u8(0) >>> 4;
  }
  get headerLen(): number {
    return (this.u8(0) & 15) << 2;
  }
  /** Sets IHL from a byte length (a multiple of 4 in 20..60) and the version to 4. */
  set headerLen(v: number) {
    this.w8(0, 0x40 | ((v >>> 2) & 15));
  }
  /** DSCP (upper 6 bits) and ECN (lower 2 bits, RFC 3168) as one byte. */
  get dscpEcn(): number {
    return this.u8(1);
  }
  set dscpEcn(v: number) {
    this.w8(1, v);
  }
  get totalLen(): number {
    return this.u16(2);
  }
  set totalLen(v: number) {
    this.w16(2, v);
  }
  get ident(): number {
    return this.u16(4);
  }
  set ident(v: number) {
    this.w16(4, v);
  }
  /** The raw flags + fragment offset word. */
  get flagsFrag(): number {
    return this.u16(6);
  }
  get dontFragment(): boolean {
    return (this.u8(6) & 0x40) !== 0;
  }
  get moreFragments(): boolean {
    return (this.u8(6) & 0x20) !== 0;
  }
  /** Fragment offset in bytes (the field counts 8-byte units, RFC 791 §3.1). */
  get fragOffset(): number {
    return (this.flagsFrag & FRAG_MASK) << 3;
  }
  /** True for any fragment, first or later: MF set or a non-zero offset. */
  get isFragment(): boolean {
    return (this.flagsFrag & (FLAG_MF | FRAG_MASK)) !== 0;
  }
  /**
   * Writes the flags and fragment offset. `fragOffsetBytes` must be a
   * multiple of 8; the reserved (evil) bit is always written as zero.
   */
  setFlagsFrag(dontFragment: boolean, moreFragments: boolean, fragOffsetBytes: number): void {
    this.w16(6, (dontFragment ? FLAG_DF : 0) | (moreFragments ? FLAG_MF : 0) | ((fragOffsetBytes >>> 3) & FRAG_MASK));
  }
  get ttl(): number {
    return this.u8(8);
  }
  set ttl(v: number) {
    this.w8(8, v);
  }
  get protocol(): number {
    return this.u8(9);
  }
  set protocol(v: number) {
    this.w8(9, v);
  }
  get checksum(): number {
    return this.u16(10);
  }
  set checksum(v: number) {
    this.w16(10, v);
  }
  get src(): number {
    return this.u32(12);
  }
  set src(v: number) {
    this.w32(12, v);
  }
  get dst(): number {
    return this.u32(16);
  }
  set dst(v: number) {
    this.w32(16, v);
  }
  get optionsOff(): number {
    return this.off + IPV4_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.headerLen - IPV4_HEADER_LEN;
  }
  get payloadOff(): number {
    return this.off + this.headerLen;
  }
  /** Total Length minus header length (never negative after a successful attach). */
  get payloadLen(): number {
    return this.len - this.headerLen;
  }

  /** RFC 791 §3.1 / RFC 1071: the header (with options) sums to 0xffff when intact. */
  verifyChecksum(): boolean {
    return finish(sum16(this.buf, this.off, this.headerLen)) === 0;
  }

  /** Computes and stores the header checksum over headerLen bytes. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = finish(sum16(this.buf, this.off, this.headerLen));
  }
}

export interface Ipv4Init {
  src?: number;
  dst?: number;
  protocol?: number;
  payloadLen?: number;
  ttl?: number;
  ident?: number;
  dontFragment?: boolean;
  dscpEcn?: number;
}

/**
 * Plain record of an IPv4 header without options. emit() writes the
 * 20-byte header *including* its checksum (it covers only the header, so
 * nothing else is needed), unlike the transport records whose checksums
 * are a separate step.
 */
export class Ipv4Repr {
  src = 0;
  dst = 0;
  protocol = 0;
  payloadLen = 0;
  ttl = 64;
  ident = 0;
  dontFragment = false;
  dscpEcn = 0;

  constructor(init?: Ipv4Init) {
    if (init !== undefined) Object.assign(this, init);
  }

  get headerLen(): number {
    return IPV4_HEADER_LEN;
  }

  /**
   * Fills the record from an attached view. Options are not represented
   * (payloadLen still excludes them); fragment fields are dropped, so check
   * view.isFragment first.
   */
  parse(v: Ipv4View): this {
    this.src = v.src;
    this.dst = v.dst;
    this.protocol = v.protocol;
    this.payloadLen = v.payloadLen;
    this.ttl = v.ttl;
    this.ident = v.ident;
    this.dontFragment = v.dontFragment;
    this.dscpEcn = v.dscpEcn;
    return this;
  }

  /** Writes the header at buf[off] with a valid checksum; returns 20. */
  emit(buf: Uint8Array, off: number): number {
    const total = IPV4_HEADER_LEN + this.payloadLen;
    buf[off] = 0x45;
    buf[off + 1] = this.dscpEcn;
    buf[off + 2] = total >>> 8;
    buf[off + 3] = total;
    buf[off + 4] = this.ident >>> 8;
    buf[off + 5] = this.ident;
    buf[off + 6] = this.dontFragment ? 0x40 : 0;
    buf[off + 7] = 0;
    buf[off + 8] = this.ttl;
    buf[off + 9] = this.protocol;
    buf[off + 10] = 0;
    buf[off + 11] = 0;
    writeU32(buf, off + 12, this.src);
    writeU32(buf, off + 16, this.dst);
    const c = finish(sum16(buf, off, IPV4_HEADER_LEN));
    buf[off + 10] = c >>> 8;
    buf[off + 11] = c;
    return IPV4_HEADER_LEN;
  }
}

/** 127.0.0.0/8 */
export function ipv4IsLoopback(a: number): boolean {
  return a >>> 24 === 127;
}
/** 224.0.0.0/4 */
export function ipv4IsMulticast(a: number): boolean {
  return a >>> 28 === 14;
}
/** 255.255.255.255 (the limited broadcast). Directed broadcast depends on the prefix: see ipv4IsBroadcastIn. */
export function ipv4IsLimitedBroadcast(a: number): boolean {
  return a >>> 0 === 0xffffffff;
}
/** True if `a` is the directed broadcast address of `net`/`prefixLen` (prefixLen < 31). */
export function ipv4IsBroadcastIn(a: number, net: number, prefixLen: number): boolean {
  if (prefixLen >= 31) return false; // RFC 3021: /31 has no broadcast
  const host = prefixLen === 0 ? 0xffffffff : ~(0xffffffff << (32 - prefixLen)) >>> 0;
  return ((a & ~host) >>> 0 === (net & ~host) >>> 0) && ((a & host) >>> 0) === host;
}
