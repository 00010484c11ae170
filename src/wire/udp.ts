/**
 * UDP (RFC 768).
 *
 *    0      7 8     15 16    23 24    31
 *   +--------+--------+--------+--------+
 *   |   Source Port   |   Dest Port     |
 *   +--------+--------+--------+--------+
 *   |     Length      |    Checksum     |
 *   +--------+--------+--------+--------+
 *   |          data ...
 *
 * Length covers header and data. The checksum covers the pseudo header,
 * the header and the data. Over IPv4 a transmitted 0 means "no checksum"
 * and a computed 0 is sent as 0xffff (RFC 768); over IPv6 the checksum is
 * mandatory and 0 is invalid (RFC 8200 §8.1).
 */
import { WireError } from "./errors.ts";
import { IPPROTO_UDP } from "./ipv4.ts";
import { TransportView } from "./transport.ts";

export const UDP_HEADER_LEN = 8;

/** Reusable view over one UDP datagram. */
export class UdpView extends TransportView {
  static readonly HEADER_LEN = UDP_HEADER_LEN;

  /** After a successful attach: the UDP Length field. */
  declare len: number;

  /**
   * `len` is the IP payload length. Checks 8 bytes present (Truncated) and
   * 8 <= Length <= len (BadLength). A Length shorter than the IP payload is
   * allowed and the extra bytes are ignored (RFC 768 defines the datagram
   * by Length; Linux trims likewise); `len` becomes Length.
   */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < UDP_HEADER_LEN) return WireError.Truncated;
    const l = (buf[off + 4] << 8) | buf[off + 5];
    if (l < UDP_HEADER_LEN || l > len) return WireError.BadLength;
    this.len = l;
    return WireError.Ok;
  }

  /** The Length field as stored. */
  get length(): number {
    return this.u16(4);
  }
  set length(v: number) {
    this.w16(4, v);
  }
  get checksum(): number {
    return this.u16(6);
  }
  set checksum(v: number) {
    this.w16(6, v);
  }
  get payloadOff(): number {
    return this.off + UDP_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - UDP_HEADER_LEN;
  }

  /** IPv4: true if the checksum is absent (0) or verifies. */
  verifyChecksumV4(src: number, dst: number): boolean {
    if (this.checksum === 0) return true;
    return this.checksumV4(src, dst, IPPROTO_UDP) === 0;
  }

  /** IPv4: computes the checksum over `len` bytes; a result of 0 is stored as 0xffff. */
  fillChecksumV4(src: number, dst: number): void {
    this.checksum = 0;
    const c = this.checksumV4(src, dst, IPPROTO_UDP);
    this.checksum = c === 0 ? 0xffff : c;
  }

  /** IPv6: a zero checksum is invalid (RFC 8200 §8.1); otherwise it must verify. */
  verifyChecksumV6(addrBuf: Uint8Array, srcOff: number, dstOff: number): boolean {
    if (this.checksum === 0) return false;
    return this.checksumV6(addrBuf, srcOff, dstOff, IPPROTO_UDP) === 0;
  }

  /** IPv6: as fillChecksumV4 with the IPv6 pseudo header; never stores 0. */
  fillChecksumV6(addrBuf: Uint8Array, srcOff: number, dstOff: number): void {
    this.checksum = 0;
    const c = this.checksumV6(addrBuf, srcOff, dstOff, IPPROTO_UDP);
    this.checksum = c === 0 ? 0xffff : c;
  }
}

export interface UdpInit {
  srcPort?: number;
  dstPort?: number;
  payloadLen?: number;
}

/** Plain UDP header record. emit() writes checksum 0; fill it through a UdpView afterwards. */
export class UdpRepr {
  srcPort = 0;
  dstPort = 0;
  payloadLen = 0;

  constructor(init?: UdpInit) {
    if (init !== undefined) Object.assign(this, init);
  }

  get headerLen(): number {
    return UDP_HEADER_LEN;
  }

  parse(v: UdpView): this {
    this.srcPort = v.srcPort;
    this.dstPort = v.dstPort;
    this.payloadLen = v.payloadLen;
    return this;
  }

  /** Writes the 8-byte header with Length = 8 + payloadLen; returns 8. */
  emit(buf: Uint8Array, off: number): number {
    const l = UDP_HEADER_LEN + this.payloadLen;
    buf[off] = this.srcPort >>> 8;
    buf[off + 1] = this.srcPort;
    buf[off + 2] = this.dstPort >>> 8;
    buf[off + 3] = this.dstPort;
    buf[off + 4] = l >>> 8;
    buf[off + 5] = l;
    buf[off + 6] = 0;
    buf[off + 7] = 0;
    return UDP_HEADER_LEN;
  }
}
