/**
 * ICMP for IPv4 (RFC 792), the parts a user-mode stack needs: echo,
 * destination unreachable, time exceeded.
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Identifier / unused          | Sequence / next-hop MTU       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  echo data, or the invoking IP header + leading payload bytes  |
 *
 * The checksum covers the whole ICMP message and has no pseudo header.
 */
import { finish, sum16 } from "./checksum.ts";
import { copyBytes, writeU32 } from "./bytes.ts";
import { ICMP_HEADER_LEN, IcmpView } from "./icmp.ts";
import { IPV4_HEADER_LEN } from "./ipv4.ts";

export const ICMPV4_HEADER_LEN = ICMP_HEADER_LEN;

export const Icmpv4Type = {
  EchoReply: 0,
  DestUnreachable: 3,
  Redirect: 5,
  EchoRequest: 8,
  TimeExceeded: 11,
  ParameterProblem: 12,
} as const;

/** Destination Unreachable codes (RFC 792; 13 from RFC 1812 §5.2.7.1). */
export const Icmpv4Unreach = {
  Net: 0,
  Host: 1,
  Protocol: 2,
  Port: 3,
  /** "Fragmentation needed and DF set"; the next-hop MTU goes in bytes 6-7 (RFC 1191 §4). */
  FragNeeded: 4,
  AdminProhibited: 13,
} as const;

/** Time Exceeded codes. */
export const Icmpv4TimeExceeded = {
  Ttl: 0,
  Reassembly: 1,
} as const;

/**
 * RFC 1812 §4.3.2.3: an ICMP error datagram (IP header included) SHOULD
 * quote as much of the original as fits without exceeding 576 bytes.
 */
export const ICMPV4_ERROR_MAX_DATAGRAM = 576;

/** Reusable view over one ICMPv4 message. */
export class Icmpv4View extends IcmpView {
  /** Bytes 4-7 as one uint32 ("rest of header"). */
  get restOfHeader(): number {
    return this.u32(4);
  }
  set restOfHeader(v: number) {
    this.w32(4, v);
  }
  /** Next-hop MTU of a "fragmentation needed" message (RFC 1191 §4), same bytes as seq. */
  get nextHopMtu(): number {
    return this.seq;
  }
  /** Error messages quote a datagram; RFC 1122 §3.2.2 forbids answering them with another error. */
  get isError(): boolean {
    return icmpv4IsError(this.type);
  }

  verifyChecksum(): boolean {
    return finish(sum16(this.buf, this.off, this.len)) === 0;
  }

  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = finish(sum16(this.buf, this.off, this.len));
  }
}

/** Types that report errors (vs. queries such as echo). */
export function icmpv4IsError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * Writes an echo reply to `out[outOff]` answering an attached echo request:
 * same identifier, sequence number and data (RFC 792 "Echo or Echo Reply
 * Message"), checksum filled. `out` may be the request's own buffer at the
 * same offset (in-place turnaround). Returns the message length, or 0 if
 * `out` is too small.
 */
export function emitIcmpv4EchoReply(out: Uint8Array, outOff: number, req: Icmpv4View): number {
  const n = req.len;
  if (outOff < 0 || outOff + n > out.length) return 0;
  if (out !== req.buf || outOff !== req.off) copyBytes(out, outOff, req.buf, req.off, n);
  out[outOff] = Icmpv4Type.EchoReply;
  out[outOff + 1] = 0;
  out[outOff + 2] = 0;
  out[outOff + 3] = 0;
  const c = finish(sum16(out, outOff, n));
  out[outOff + 2] = c >>> 8;
  out[outOff + 3] = c;
  return n;
}

/**
 * How many bytes of an invoking datagram an ICMPv4 error quotes.
 *  - RFC 792: the internet header plus the first 64 bits of data;
 *  - RFC 1812 §4.3.2.3: as much as fits in a 576-byte error datagram.
 * `maxDatagram` selects between them: pass ICMPV4_ERROR_MAX_DATAGRAM (the
 * default) for RFC 1812 behaviour (what Linux does), or 0 for the RFC 792
 * minimum. `ipHeaderLen` is the invoking datagram's IHL*4.
 */
export function icmpv4QuoteLen(invLen: number, ipHeaderLen: number, maxDatagram = ICMPV4_ERROR_MAX_DATAGRAM): number {
  const limit = maxDatagram > 0 ? maxDatagram - IPV4_HEADER_LEN - ICMPV4_HEADER_LEN : ipHeaderLen + 8;
  return invLen < limit ? invLen : limit;
}

/**
 * Writes an ICMPv4 error message (type, code, 4 "rest of header" bytes,
 * quoted invoking datagram) at out[outOff] and fills its checksum.
 *
 * `inv`/`invOff`/`invLen` is the invoking IP datagram as bounded by its
 * Total Length (pass an attached Ipv4View's buf/off/len); quoteLen is
 * computed with icmpv4QuoteLen() and clamped to the room left in `out`.
 * The caller decides *whether* to send (RFC 1122 §3.2.2: never about an
 * ICMP error, a broadcast/multicast, a non-first fragment, ...). Returns the
 * ICMP message length, 0 if `out` cannot hold even the 8-byte header.
 */
export function emitIcmpv4Error(
  out: Uint8Array,
  outOff: number,
  type: number,
  code: number,
  restOfHeader: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
  maxDatagram = ICMPV4_ERROR_MAX_DATAGRAM,
): number {
  if (outOff < 0 || outOff + ICMPV4_HEADER_LEN > out.length) return 0;
  const ihl = invLen > 0 ? (inv[invOff] & 15) << 2 : 0;
  let q = icmpv4QuoteLen(invLen, ihl, maxDatagram);
  const room = out.length - outOff - ICMPV4_HEADER_LEN;
  if (q > room) q = room;
  if (q < 0) q = 0;
  // Quote first: the invoking datagram may sit in the same buffer, right
  // where the header is about to be written (turning a frame around in place).
  copyBytes(out, outOff + ICMPV4_HEADER_LEN, inv, invOff, q);
  out[outOff] = type;
  out[outOff + 1] = code;
  out[outOff + 2] = 0;
  out[outOff + 3] = 0;
  writeU32(out, outOff + 4, restOfHeader);
  const n = ICMPV4_HEADER_LEN + q;
  const c = finish(sum16(out, outOff, n));
  out[outOff + 2] = c >>> 8;
  out[outOff + 3] = c;
  return n;
}

/**
 * Destination Unreachable (type 3). For code FragNeeded pass the next-hop
 * MTU (RFC 1191 §4: low 16 bits of the rest-of-header word); otherwise it
 * must be 0.
 */
export function emitIcmpv4DestUnreachable(
  out: Uint8Array,
  outOff: number,
  code: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
  nextHopMtu = 0,
  maxDatagram = ICMPV4_ERROR_MAX_DATAGRAM,
): number {
  return emitIcmpv4Error(
    out,
    outOff,
    Icmpv4Type.DestUnreachable,
    code,
    nextHopMtu & 0xffff,
    inv,
    invOff,
    invLen,
    maxDatagram,
  );
}

/** Time Exceeded (type 11), code Ttl (0) or Reassembly (1). */
export function emitIcmpv4TimeExceeded(
  out: Uint8Array,
  outOff: number,
  code: number,
  inv: Uint8Array,
  invOff: number,
  invLen: number,
  maxDatagram = ICMPV4_ERROR_MAX_DATAGRAM,
): number {
  return emitIcmpv4Error(out, outOff, Icmpv4Type.TimeExceeded, code, 0, inv, invOff, invLen, maxDatagram);
}
