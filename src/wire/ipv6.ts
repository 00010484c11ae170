/**
 * IPv6 (RFC 8200) header view, extension-header walk, record and address
 * helpers.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version| Traffic Class |           Flow Label                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Payload Length        |  Next Header  |   Hop Limit   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 Source Address (16 bytes, at +8)              |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |              Destination Address (16 bytes, at +24)           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Addresses are never turned into objects on the hot path: the view gives
 * their offsets and the helpers below copy/compare/classify 16 bytes in
 * place; their text and records are src/wire/addr.ts.
 */
import { WireError } from "./errors.ts";
import { IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ROUTING } from "./ipv4.ts";
import { View } from "./view.ts";

export const IPV6_HEADER_LEN = 40;
/** RFC 8200 §5: every link must carry 1280-byte packets; ICMPv6 errors are sized to it. */
export const IPV6_MIN_MTU = 1280;
/**
 * Hard cap on extension headers walked. RFC 8200 §4.1's recommended order
 * has at most six before the upper layer (HBH, DestOpts, Routing, Fragment,
 * AH/ESP, DestOpts); anything longer is an attack on our CPU, not traffic.
 */
export const IPV6_MAX_EXT_HEADERS = 8;

/** Reusable view over one IPv6 packet. */
export class Ipv6View extends View {
  static readonly HEADER_LEN = IPV6_HEADER_LEN;

  /** After a successful attach: 40 + Payload Length (trailing link padding excluded). */
  declare len: number;

  /**
   * Validates an untrusted packet:
   *  - 40 bytes present (Truncated), version 6 (BadVersion);
   *  - 40 + Payload Length <= available bytes (BadLength);
   *  - Payload Length 0 with a Hop-by-Hop header next means a jumbogram
   *    (RFC 2675), whose real length is in an option; we never accept
   *    packets larger than 64 KiB, so it is Unsupported.
   * Payload Length 0 with any other next header is legal (e.g. No Next
   * Header, 59); the upper layer then finds zero bytes and fails its own
   * length check.
   */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < IPV6_HEADER_LEN) return WireError.Truncated;
    if (buf[off] >>> 4 !== 6) return WireError.BadVersion;
    const pl = (buf[off + 4] << 8) | buf[off + 5];
    if (pl === 0 && buf[off + 6] === IPPROTO_HOPOPTS) return WireError.Unsupported;
    if (IPV6_HEADER_LEN + pl > len) return WireError.BadLength;
    this.len = IPV6_HEADER_LEN + pl;
    return WireError.Ok;
  }

  get version(): number {
    return this.u8(0) >>> 4;
  }
  /** DSCP + ECN, straddling the first two bytes. */
  get trafficClass(): number {
    return ((this.u8(0) & 15) << 4) | (this.u8(1) >>> 4);
  }
  set trafficClass(v: number) {
    this.w8(0, 0x60 | ((v >>> 4) & 15));
    this.w8(1, ((v & 15) << 4) | (this.u8(1) & 15));
  }
  get flowLabel(): number {
    return ((this.u8(1) & 15) << 16) | this.u16(2);
  }
  set flowLabel(v: number) {
    this.w8(1, (this.u8(1) & 0xf0) | ((v >>> 16) & 15));
    this.w16(2, v);
  }
  get payloadLen(): number {
    return this.u16(4);
  }
  set payloadLen(v: number) {
    this.w16(4, v);
  }
  get nextHeader(): number {
    return this.u8(6);
  }
  set nextHeader(v: number) {
    this.w8(6, v);
  }
  get hopLimit(): number {
    return this.u8(7);
  }
  set hopLimit(v: number) {
    this.w8(7, v);
  }
  get srcOff(): number {
    return this.off + 8;
  }
  get dstOff(): number {
    return this.off + 24;
  }
  get payloadOff(): number {
    return this.off + IPV6_HEADER_LEN;
  }
  copySrc(out: Uint8Array, outOff = 0): void {
    copyIpv6(out, outOff, this.buf, this.off + 8);
  }
  copyDst(out: Uint8Array, outOff = 0): void {
    copyIpv6(out, outOff, this.buf, this.off + 24);
  }
  setSrc(addr: Uint8Array, addrOff = 0): void {
    copyIpv6(this.buf, this.off + 8, addr, addrOff);
  }
  setDst(addr: Uint8Array, addrOff = 0): void {
    copyIpv6(this.buf, this.off + 24, addr, addrOff);
  }
  srcEquals(addr: Uint8Array, addrOff = 0): boolean {
    return ipv6Equal(this.buf, this.off + 8, addr, addrOff);
  }
  dstEquals(addr: Uint8Array, addrOff = 0): boolean {
    return ipv6Equal(this.buf, this.off + 24, addr, addrOff);
  }
}

/**
 * Result of walkExtensions(), caller-owned and reused. Offsets are absolute
 * positions in the view's buffer.
 */
export class Ipv6ExtResult {
  /** Final protocol: the upper layer (6, 17, 58, ...), or 50/51/59, or whatever follows a Fragment header. */
  protocol = 0;
  /** Offset of that protocol's first byte. */
  offset = 0;
  /** Offset of the Next Header byte that holds `protocol` (in the IPv6 header or the last extension). */
  nextHeaderFieldOff = 0;
  /** Extension headers walked. */
  extCount = 0;
  /** Offset of the first Routing header, or -1 (RFC 8200 §4.4 processing is the caller's). */
  routingOff = -1;
  /** Whether a Fragment header was found (the walk stops right after it). */
  hasFragment = false;
  /** Fragment Offset in bytes. */
  fragOffset = 0;
  /** M flag: more fragments follow. */
  moreFragments = false;
  /** Identification (uint32). */
  fragIdent = 0;
  /** Offset of the Fragment header, or -1. */
  fragHeaderOff = -1;
  /**
   * Offset of the Next Header byte naming the Fragment header (44), or -1.
   * Reassembly removes the Fragment header by copying its Next Header
   * value there (RFC 8200 §4.5).
   */
  fragPrevNextHeaderOff = -1;
  /** First byte of this fragment's piece of the fragmentable part (after the Fragment header), or -1. */
  fragmentableOff = -1;

  reset(): void {
    this.protocol = 0;
    this.offset = 0;
    this.nextHeaderFieldOff = 0;
    this.extCount = 0;
    this.routingOff = -1;
    this.hasFragment = false;
    this.fragOffset = 0;
    this.moreFragments = false;
    this.fragIdent = 0;
    this.fragHeaderOff = -1;
    this.fragPrevNextHeaderOff = -1;
    this.fragmentableOff = -1;
  }
}

/**
 * Follows the extension-header chain of an attached packet (RFC 8200 §4).
 *
 * Walked: Hop-by-Hop (0, only directly after the IPv6 header, §4.1;
 * elsewhere Malformed), Routing (43) and Destination Options (60), whose
 * length is (Hdr Ext Len + 1) * 8 bytes, and Fragment (44, 8 bytes). Every
 * header must lie inside the payload (Truncated otherwise) and at most
 * IPV6_MAX_EXT_HEADERS are followed (TooManyExtensions): each header moves
 * forward by at least 8 bytes, so the walk always terminates, and the cap
 * keeps its cost constant.
 *
 * The walk stops after a Fragment header: what follows is a piece of the
 * fragmentable part, which may be cut anywhere and can only be parsed after
 * reassembly (walk the reassembled packet again). ESP (50), AH (51), No
 * Next Header (59) and every other value end the walk as the final
 * protocol. Options inside HBH/DestOpts are not interpreted.
 */
export function walkExtensions(v: Ipv6View, out: Ipv6ExtResult): WireError {
  out.reset();
  const buf = v.buf;
  const end = v.off + v.len;
  let nh = buf[v.off + 6];
  let nhField = v.off + 6;
  let pos = v.off + IPV6_HEADER_LEN;
  let count = 0;
  for (;;) {
    if (nh === IPPROTO_HOPOPTS || nh === IPPROTO_ROUTING || nh === IPPROTO_DSTOPTS) {
      if (nh === IPPROTO_HOPOPTS && count !== 0) return WireError.Malformed;
      if (count >= IPV6_MAX_EXT_HEADERS) return WireError.TooManyExtensions;
      if (end - pos < 8) return WireError.Truncated;
      const hl = (buf[pos + 1] + 1) << 3;
      if (hl > end - pos) return WireError.Truncated;
      if (nh === IPPROTO_ROUTING && out.routingOff < 0) out.routingOff = pos;
      nhField = pos;
      nh = buf[pos];
      pos += hl;
      count++;
    } else if (nh === IPPROTO_FRAGMENT) {
      if (count >= IPV6_MAX_EXT_HEADERS) return WireError.TooManyExtensions;
      if (end - pos < 8) return WireError.Truncated;
      // Next Header(1) Reserved(1) FragOffset(13 bits) Res(2) M(1) Identification(4)
      const w = (buf[pos + 2] << 8) | buf[pos + 3];
      out.hasFragment = true;
      out.fragOffset = w & 0xfff8; // 13-bit offset in 8-byte units, already shifted by its position
      out.moreFragments = (w & 1) !== 0;
      out.fragIdent = ((buf[pos + 4] << 24) | (buf[pos + 5] << 16) | (buf[pos + 6] << 8) | buf[pos + 7]) >>> 0;
      out.fragHeaderOff = pos;
      out.fragPrevNextHeaderOff = nhField;
      out.fragmentableOff = pos + 8;
      nhField = pos;
      nh = buf[pos];
      pos += 8;
      count++;
      break;
    } else {
      break;
    }
  }
  out.protocol = nh;
  out.offset = pos;
  out.nextHeaderFieldOff = nhField;
  out.extCount = count;
  return WireError.Ok;
}

export interface Ipv6Init {
  src?: Uint8Array;
  dst?: Uint8Array;
  nextHeader?: number;
  payloadLen?: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

/** Plain record of a fixed IPv6 header (extension headers are emitted by the caller). */
export class Ipv6Repr {
  src: Uint8Array = new Uint8Array(16);
  dst: Uint8Array = new Uint8Array(16);
  nextHeader = 0;
  payloadLen = 0;
  hopLimit = 64;
  trafficClass = 0;
  flowLabel = 0;

  constructor(init?: Ipv6Init) {
    if (init !== undefined) Object.assign(this, init);
  }

  get headerLen(): number {
    return IPV6_HEADER_LEN;
  }

  /** Copies the fixed header from an attached view (addresses into this record's arrays). */
  parse(v: Ipv6View): this {
    v.copySrc(this.src);
    v.copyDst(this.dst);
    this.nextHeader = v.nextHeader;
    this.payloadLen = v.payloadLen;
    this.hopLimit = v.hopLimit;
    this.trafficClass = v.trafficClass;
    this.flowLabel = v.flowLabel;
    return this;
  }

  /** Writes the 40-byte header at buf[off]; returns 40. IPv6 has no header checksum. */
  emit(buf: Uint8Array, off: number): number {
    const tc = this.trafficClass;
    const fl = this.flowLabel;
    buf[off] = 0x60 | ((tc >>> 4) & 15);
    buf[off + 1] = ((tc & 15) << 4) | ((fl >>> 16) & 15);
    buf[off + 2] = fl >>> 8;
    buf[off + 3] = fl;
    buf[off + 4] = this.payloadLen >>> 8;
    buf[off + 5] = this.payloadLen;
    buf[off + 6] = this.nextHeader;
    buf[off + 7] = this.hopLimit;
    copyIpv6(buf, off + 8, this.src, 0);
    copyIpv6(buf, off + 24, this.dst, 0);
    return IPV6_HEADER_LEN;
  }
}

// ---------------------------------------------------------------------------
// Address helpers (an address is 16 bytes at some offset of some buffer)

export function copyIpv6(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number): void {
  for (let i = 0; i < 16; i++) dst[dstOff + i] = src[srcOff + i];
}

export function ipv6Equal(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** ff00::/8 */
export function ipv6IsMulticast(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xff;
}
/** :: */
export function ipv6IsUnspecified(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[off + i] !== 0) return false;
  return true;
}
/** ::1 */
export function ipv6IsLoopback(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 15; i++) if (a[off + i] !== 0) return false;
  return a[off + 15] === 1;
}
/** fe80::/10 */
export function ipv6IsLinkLocal(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xfe && (a[off + 1] & 0xc0) === 0x80;
}
/** ::ffff:0:0/96 (RFC 4291 §2.5.5.2) */
export function ipv6IsV4Mapped(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 10; i++) if (a[off + i] !== 0) return false;
  return a[off + 10] === 0xff && a[off + 11] === 0xff;
}

/**
 * Solicited-node multicast address of `addr` (RFC 4291 §2.7.1):
 * ff02::1:ff00:0/104 with the low 24 bits of the address. NS for an
 * address go there (RFC 4861 §7.2.2).
 */
export function solicitedNodeMulticast(addr: Uint8Array, addrOff: number, out: Uint8Array, outOff = 0): void {
  out[outOff] = 0xff;
  out[outOff + 1] = 0x02;
  for (let i = 2; i < 11; i++) out[outOff + i] = 0;
  out[outOff + 11] = 0x01;
  out[outOff + 12] = 0xff;
  out[outOff + 13] = addr[addrOff + 13];
  out[outOff + 14] = addr[addrOff + 14];
  out[outOff + 15] = addr[addrOff + 15];
}

/** True if `a` is the solicited-node multicast address of `addr`. */
export function isSolicitedNodeFor(a: Uint8Array, aOff: number, addr: Uint8Array, addrOff: number): boolean {
  if (a[aOff] !== 0xff || a[aOff + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (a[aOff + i] !== 0) return false;
  return (
    a[aOff + 11] === 1 &&
    a[aOff + 12] === 0xff &&
    a[aOff + 13] === addr[addrOff + 13] &&
    a[aOff + 14] === addr[addrOff + 14] &&
    a[aOff + 15] === addr[addrOff + 15]
  );
}

/** Ethernet destination for an IPv6 multicast address: 33:33 + its low 32 bits (RFC 2464 §7). */
export function ipv6MulticastMac(addr: Uint8Array, addrOff: number, out: Uint8Array, outOff = 0): void {
  out[outOff] = 0x33;
  out[outOff + 1] = 0x33;
  out[outOff + 2] = addr[addrOff + 12];
  out[outOff + 3] = addr[addrOff + 13];
  out[outOff + 4] = addr[addrOff + 14];
  out[outOff + 5] = addr[addrOff + 15];
}

/** ff02::1, all nodes. */
export const IPV6_ALL_NODES: Readonly<Uint8Array> = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
/** ff02::2, all routers. */
export const IPV6_ALL_ROUTERS: Readonly<Uint8Array> = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
/** :: */
export const IPV6_UNSPECIFIED: Readonly<Uint8Array> = new Uint8Array(16);
