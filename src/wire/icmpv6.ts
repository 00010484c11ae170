/**
 * ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861).
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 type-specific 32 bits                         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 message body ...                              |
 *
 * Unlike ICMPv4 the checksum includes the IPv6 pseudo header (RFC 4443
 * §2.3), so checksum helpers take the buffer and offsets of the source and
 * destination addresses (normally those of the enclosing Ipv6View).
 * Builders in this file therefore do *not* fill the checksum: write the
 * IPv6 header, build the message, then call fillChecksum().
 */
import { finish, pseudoHeaderV6, sum16 } from "./checksum.ts";
import { copyBytes, writeU32 } from "./bytes.ts";
import { writeMac } from "./ethernet.ts";
import { EMPTY, WireError, inBounds } from "./errors.ts";
import { ICMP_HEADER_LEN, IcmpView } from "./icmp.ts";
import { IPPROTO_ICMPV6 } from "./ipv4.ts";
import { IPV6_HEADER_LEN, IPV6_MIN_MTU, copyIpv6 } from "./ipv6.ts";
import { View } from "./view.ts";

export const ICMPV6_HEADER_LEN = ICMP_HEADER_LEN;

export const Icmpv6Type = {
  DestUnreachable: 1,
  PacketTooBig: 2,
  TimeExceeded: 3,
  ParamProblem: 4,
  EchoRequest: 128,
  EchoReply: 129,
  RouterSolicit: 133,
  RouterAdvert: 134,
  NeighborSolicit: 135,
  NeighborAdvert: 136,
  Redirect: 137,
} as const;

/** Destination Unreachable codes (RFC 4443 §3.1). */
export const Icmpv6Unreach = {
  NoRoute: 0,
  AdminProhibited: 1,
  BeyondScope: 2,
  AddressUnreachable: 3,
  PortUnreachable: 4,
} as const;

/** Time Exceeded codes (RFC 4443 §3.3). */
export const Icmpv6TimeExceeded = {
  HopLimit: 0,
  Reassembly: 1,
} as const;

/** Parameter Problem codes (RFC 4443 §3.4). */
export const Icmpv6ParamProblem = {
  Header: 0,
  NextHeader: 1,
  Option: 2,
} as const;

/** RFC 4443 §2.1: error messages have the high-order bit of the type clear. */
export function icmpv6IsError(type: number): boolean {
  return type < 128;
}

/** Checksum accumulator over msg[off, off+len) plus the pseudo header. */
function icmpv6Sum(
  buf: Uint8Array,
  off: number,
  len: number,
  addrBuf: Uint8Array,
  srcOff: number,
  dstOff: number,
): number {
  return sum16(buf, off, len, pseudoHeaderV6(addrBuf, srcOff, dstOff, IPPROTO_ICMPV6, len));
}

/** Fills the checksum of the message buf[off, off+len); addresses are 16 bytes at addrBuf[srcOff] / addrBuf[dstOff]. */
export function fillIcmpv6Checksum(
  buf: Uint8Array,
  off: number,
  len: number,
  addrBuf: Uint8Array,
  srcOff: number,
  dstOff: number,
): void {
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  const c = finish(icmpv6Sum(buf, off, len, addrBuf, srcOff, dstOff));
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c;
}

/** Reusable view over one ICMPv6 message. */
export class Icmpv6View extends IcmpView {
  /** Bytes 4-7: MTU of Packet Too Big, pointer of Parameter Problem, unused otherwise. */
  get param32(): number {
    return this.u32(4);
  }
  set param32(v: number) {
    this.w32(4, v);
  }
  /** Packet Too Big MTU (RFC 4443 §3.2). */
  get mtu(): number {
    return this.param32;
  }
  get isError(): boolean {
    return icmpv6IsError(this.type);
  }

  verifyChecksum(addrBuf: Uint8Array, srcOff: number, dstOff: number): boolean {
    return finish(icmpv6Sum(this.buf, this.off, this.len, addrBuf, srcOff, dstOff)) === 0;
  }

  fillChecksum(addrBuf: Uint8Array, srcOff: number, dstOff: number): void {
    fillIcmpv6Checksum(this.buf, this.off, this.len, addrBuf, srcOff, dstOff);
  }
}

// ---------------------------------------------------------------------------
// Neighbor Discovery messages (RFC 4861 §4). The checks below are the
// message-local ones of §6.1 / §7.1; the caller must also check the IP Hop
// Limit is 255 (proof the packet was not forwarded) and the checksum.

export const NS_LEN = 24;
export const NA_LEN = 24;
export const RS_LEN = 8;
export const RA_LEN = 16;

export const NA_FLAG_ROUTER = 0x80;
export const NA_FLAG_SOLICITED = 0x40;
export const NA_FLAG_OVERRIDE = 0x20;

/** An ND message read through the Icmpv6View it arrived in (same window). */
abstract class NdView extends View {
  /** The ICMPv6 type this view accepts. */
  protected abstract readonly ndType: number;
  /** Length of the fixed part, which the options follow. */
  protected abstract readonly fixedLen: number;

  /** Malformed unless the type is ndType and the code 0; Truncated below fixedLen bytes. */
  attach(icmp: Icmpv6View): WireError {
    this.wrap(icmp.buf, icmp.off, icmp.len);
    if (this.u8(0) !== this.ndType) return WireError.Malformed;
    if (this.len < this.fixedLen) return WireError.Truncated;
    // §7.1.1 / §7.1.2 / §6.1.1 / §6.1.2: "ICMP Code is 0".
    if (this.u8(1) !== 0) return WireError.Malformed;
    return WireError.Ok;
  }
  get optionsOff(): number {
    return this.off + this.fixedLen;
  }
  get optionsLen(): number {
    return this.len - this.fixedLen;
  }
}

/** NS and NA: 4 reserved or flag bytes, then the 16-byte target address. */
abstract class NdTargetView extends NdView {
  /** As NdView, and the target must not be multicast (RFC 4861 §7.1.1, §7.1.2). */
  override attach(icmp: Icmpv6View): WireError {
    const e = super.attach(icmp);
    if (e !== WireError.Ok) return e;
    if (this.u8(8) === 0xff) return WireError.Malformed;
    return WireError.Ok;
  }
  get targetOff(): number {
    return this.off + 8;
  }
}

/** Neighbor Solicitation (135): reserved(4) target(16) options; >= 24 bytes (RFC 4861 §7.1.1). */
export class NeighborSolicitView extends NdTargetView {
  protected readonly ndType = Icmpv6Type.NeighborSolicit;
  protected readonly fixedLen = NS_LEN;
}

/** Neighbor Advertisement (136): R|S|O|reserved(4) target(16) options; >= 24 bytes (RFC 4861 §7.1.2). */
export class NeighborAdvertView extends NdTargetView {
  protected readonly ndType = Icmpv6Type.NeighborAdvert;
  protected readonly fixedLen = NA_LEN;

  get flags(): number {
    return this.u8(4) & 0xe0;
  }
  set flags(v: number) {
    this.w8(4, v & 0xe0);
  }
  get router(): boolean {
    return (this.u8(4) & NA_FLAG_ROUTER) !== 0;
  }
  get solicited(): boolean {
    return (this.u8(4) & NA_FLAG_SOLICITED) !== 0;
  }
  get override(): boolean {
    return (this.u8(4) & NA_FLAG_OVERRIDE) !== 0;
  }
}

/** Router Solicitation (133): reserved(4) options. */
export class RouterSolicitView extends NdView {
  protected readonly ndType = Icmpv6Type.RouterSolicit;
  protected readonly fixedLen = RS_LEN;
}

/** Router Advertisement (134): hop limit, M|O flags, lifetime, reachable, retrans timers, options. */
export class RouterAdvertView extends NdView {
  protected readonly ndType = Icmpv6Type.RouterAdvert;
  protected readonly fixedLen = RA_LEN;

  get curHopLimit(): number {
    return this.u8(4);
  }
  /** M flag: addresses via DHCPv6. */
  get managed(): boolean {
    return (this.u8(5) & 0x80) !== 0;
  }
  /** O flag: other configuration via DHCPv6. */
  get otherConfig(): boolean {
    return (this.u8(5) & 0x40) !== 0;
  }
  /** Seconds; 0 means "not a default router". */
  get routerLifetime(): number {
    return this.u16(6);
  }
  /** Milliseconds. */
  get reachableTime(): number {
    return this.u32(8);
  }
  /** Milliseconds. */
  get retransTimer(): number {
    return this.u32(12);
  }
}

// ---------------------------------------------------------------------------
// NDP options (RFC 4861 §4.6): type(1) length(1, in units of 8 bytes) data.

export const NdpOpt = {
  SourceLinkAddr: 1,
  TargetLinkAddr: 2,
  PrefixInfo: 3,
  RedirectedHeader: 4,
  Mtu: 5,
  /** RFC 8106 */
  RecursiveDns: 25,
  /** RFC 8106 */
  DnsSearchList: 31,
} as const;

/**
 * Reusable iterator over an NDP option list:
 *
 *   it.reset(buf, ns.optionsOff, ns.optionsLen);
 *   while (it.next()) { switch (it.type) { ... it.dataOff ... } }
 *   if (it.error) drop();
 *
 * RFC 4861 §4.6: a length of 0 is invalid and the whole packet MUST be
 * silently discarded, so the walk stops with `error = Malformed`; an option
 * running past the end (or 1-7 stray trailing bytes) stops it with
 * `error = Truncated`. Each step advances by at least 8 bytes, so the walk
 * is bounded by len / 8.
 */
export class NdpOptionIter {
  buf: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  /** Current option's type. */
  type = 0;
  /** Offset of the current option (its type byte). */
  optOff = 0;
  /** Current option's length in bytes (Length field * 8). */
  optLen = 0;
  /** Ok while iterating and after a clean end; otherwise why the walk stopped. */
  error: WireError = WireError.Ok;

  reset(buf: Uint8Array, off: number, len: number): this {
    this.buf = buf;
    this.pos = off;
    this.end = off + len;
    this.type = 0;
    this.optOff = off;
    this.optLen = 0;
    this.error = inBounds(buf, off, len) ? WireError.Ok : WireError.BadBounds;
    if (this.error !== WireError.Ok) this.pos = this.end;
    return this;
  }

  /** Advances to the next option; false at the end of the list or on error (see `error`). */
  next(): boolean {
    const rem = this.end - this.pos;
    if (rem <= 0) return false;
    if (rem < 8) {
      this.error = WireError.Truncated;
      this.pos = this.end;
      return false;
    }
    const l = this.buf[this.pos + 1] << 3;
    if (l === 0) {
      this.error = WireError.Malformed;
      this.pos = this.end;
      return false;
    }
    if (l > rem) {
      this.error = WireError.Truncated;
      this.pos = this.end;
      return false;
    }
    this.type = this.buf[this.pos];
    this.optOff = this.pos;
    this.optLen = l;
    this.pos += l;
    return true;
  }

  /** Offset of the option's data (after type and length). */
  get dataOff(): number {
    return this.optOff + 2;
  }
}

/** findNdpLinkLayerAddr(): no usable option of that type. */
export const NDP_OPT_ABSENT = -1;
/** findNdpLinkLayerAddr(): the option list is malformed; the packet must be dropped. */
export const NDP_OPT_MALFORMED = -2;

const scratchIter = new NdpOptionIter();

/**
 * Walks a whole NDP option list and returns the offset of the 6-byte MAC in
 * the first Source (1) or Target (2) Link-Layer Address option, or
 * NDP_OPT_ABSENT, or NDP_OPT_MALFORMED if any option is invalid (even one
 * after the match: §4.6 makes the whole packet invalid). For Ethernet the
 * option is exactly 8 bytes (Length 1, §4.6.1, RFC 2464 §8); options of
 * another size are for other link types and ignored, as Linux does.
 */
export function findNdpLinkLayerAddr(buf: Uint8Array, off: number, len: number, optType: number): number {
  const it = scratchIter.reset(buf, off, len);
  let found = NDP_OPT_ABSENT;
  while (it.next()) {
    if (found < 0 && it.type === optType && it.optLen === 8) found = it.optOff + 2;
  }
  const bad = it.error !== WireError.Ok;
  it.buf = EMPTY; // do not keep a frame alive through the module-level scratch
  return bad ? NDP_OPT_MALFORMED : found;
}

/** Writes an 8-byte Source/Target Link-Layer Address option for an Ethernet MAC; returns 8. */
export function emitNdpLinkLayerOpt(out: Uint8Array, off: number, optType: number, mac: ArrayLike<number>, macOff = 0): number {
  out[off] = optType;
  out[off + 1] = 1;
  writeMac(out, off + 2, mac, macOff);
  return 8;
}

// ---------------------------------------------------------------------------
// Builders. All return the message length (0 if `out` is too small) and
// leave the checksum to fillChecksum()/fillIcmpv6Checksum().

/**
 * Neighbor Advertisement answering an NS for `target` (RFC 4861 §7.2.4):
 * `flags` is a mix of NA_FLAG_* (solicited + override for a unicast answer
 * about our own address; add router when we are the router), and a Target
 * Link-Layer Address option carries `mac`. 32 bytes.
 */
export function emitNeighborAdvert(
  out: Uint8Array,
  off: number,
  target: Uint8Array,
  targetOff: number,
  mac: ArrayLike<number>,
  flags = NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE,
): number {
  const n = NA_LEN + 8;
  if (off < 0 || off + n > out.length) return 0;
  out[off] = Icmpv6Type.NeighborAdvert;
  out[off + 1] = 0;
  out[off + 2] = 0;
  out[off + 3] = 0;
  out[off + 4] = flags & 0xe0;
  out[off + 5] = 0;
  out[off + 6] = 0;
  out[off + 7] = 0;
  copyIpv6(out, off + 8, target, targetOff);
  emitNdpLinkLayerOpt(out, off + NA_LEN, NdpOpt.TargetLinkAddr, mac);
  return n;
}

/**
 * Neighbor Solicitation for `target` with a Source Link-Layer Address
 * option (omit `mac` for DAD, whose source is :: and must not carry one,
 * §7.2.2). 24 or 32 bytes.
 */
export function emitNeighborSolicit(
  out: Uint8Array,
  off: number,
  target: Uint8Array,
  targetOff: number,
  mac: ArrayLike<number> | null,
): number {
  const n = NS_LEN + (mac !== null ? 8 : 0);
  if (off < 0 || off + n > out.length) return 0;
  out[off] = Icmpv6Type.NeighborSolicit;
  for (let i = 1; i < 8; i++) out[off + i] = 0;
  copyIpv6(out, off + 8, target, targetOff);
  if (mac !== null) emitNdpLinkLayerOpt(out, off + NS_LEN, NdpOpt.SourceLinkAddr, mac);
  return n;
}

/**
 * Echo Reply for an attached Echo Request (RFC 4443 §4.2): same identifier,
 * sequence number and data. `out` may alias the request (in place).
 */
export function emitIcmpv6EchoReply(out: Uint8Array, off: number, req: Icmpv6View): number {
  const n = req.len;
  if (off < 0 || off + n > out.length) return 0;
  if (out !== req.buf || off !== req.off) copyBytes(out, off, req.buf, req.off, n);
  out[off] = Icmpv6Type.EchoReply;
  out[off + 1] = 0;
  out[off + 2] = 0;
  out[off + 3] = 0;
  return n;
}

/**
 * An ICMPv6 error: type, code, 32-bit parameter (MTU, pointer or 0), then
 * as much of the invoking packet as fits without the error exceeding the
 * minimum IPv6 MTU (RFC 4443 §2.4(c)): quote <= 1280 - 40 - 8 = 1232
 * bytes, also clamped to the room in `out`. `inv` should be bounded by the
 * invoking packet's own length (an attached Ipv6View's buf/off/len). The
 * caller applies the §2.4(e) rules on when not to send one.
 */
export function emitIcmpv6Error(
  out: Uint8Array,
  off: number,
  type: number,
  code: number,
  param32: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
  maxDatagram = IPV6_MIN_MTU,
): number {
  if (off < 0 || off + ICMPV6_HEADER_LEN > out.length) return 0;
  let q = maxDatagram - IPV6_HEADER_LEN - ICMPV6_HEADER_LEN;
  if (invLen < q) q = invLen;
  const room = out.length - off - ICMPV6_HEADER_LEN;
  if (q > room) q = room;
  if (q < 0) q = 0;
  // Quote first: the invoking packet may overlap the header's bytes in the same buffer.
  copyBytes(out, off + ICMPV6_HEADER_LEN, inv, invOff, q);
  out[off] = type;
  out[off + 1] = code;
  out[off + 2] = 0;
  out[off + 3] = 0;
  writeU32(out, off + 4, param32);
  return ICMPV6_HEADER_LEN + q;
}

/** Destination Unreachable (type 1), codes in Icmpv6Unreach. */
export function emitIcmpv6DestUnreachable(
  out: Uint8Array,
  off: number,
  code: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
): number {
  return emitIcmpv6Error(out, off, Icmpv6Type.DestUnreachable, code, 0, inv, invOff, invLen);
}

/** Packet Too Big (type 2, code 0) carrying the next-hop MTU (RFC 4443 §3.2). */
export function emitIcmpv6PacketTooBig(
  out: Uint8Array,
  off: number,
  mtu: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
): number {
  return emitIcmpv6Error(out, off, Icmpv6Type.PacketTooBig, 0, mtu, inv, invOff, invLen);
}

/** Time Exceeded (type 3), code HopLimit (0) or Reassembly (1). */
export function emitIcmpv6TimeExceeded(
  out: Uint8Array,
  off: number,
  code: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
): number {
  return emitIcmpv6Error(out, off, Icmpv6Type.TimeExceeded, code, 0, inv, invOff, invLen);
}

/** Parameter Problem (type 4) with the byte offset of the problem within the invoking packet. */
export function emitIcmpv6ParamProblem(
  out: Uint8Array,
  off: number,
  code: number,
  pointer: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
): number {
  return emitIcmpv6Error(out, off, Icmpv6Type.ParamProblem, code, pointer, inv, invOff, invLen);
}
