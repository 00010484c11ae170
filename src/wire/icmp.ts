/**
 * What ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages share: type, code
 * and checksum, then 32 type-specific bits, which echo messages split into
 * identifier and sequence number. The checksums are computed differently
 * (ICMPv6 covers a pseudo header), so each protocol's view adds its own.
 */
import { WireError } from "./errors.ts";
import { View } from "./view.ts";

export const ICMP_HEADER_LEN = 8;

export abstract class IcmpView extends View {
  /** The whole message (the IP payload; for IPv6 the upper-layer length). */
  declare len: number;

  /**
   * Every message has at least the 8-byte header (Truncated otherwise):
   * ICMPv4 defines none shorter, and every defined ICMPv6 message has the
   * 4-byte header plus at least 4 body bytes.
   */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < ICMP_HEADER_LEN) return WireError.Truncated;
    return WireError.Ok;
  }

  get type(): number {
    return this.u8(0);
  }
  set type(v: number) {
    this.w8(0, v);
  }
  get code(): number {
    return this.u8(1);
  }
  set code(v: number) {
    this.w8(1, v);
  }
  get checksum(): number {
    return this.u16(2);
  }
  set checksum(v: number) {
    this.w16(2, v);
  }
  /** Echo identifier (bytes 4-5; RFC 792, RFC 4443 §4.1). */
  get ident(): number {
    return this.u16(4);
  }
  set ident(v: number) {
    this.w16(4, v);
  }
  /** Echo sequence number (bytes 6-7). */
  get seq(): number {
    return this.u16(6);
  }
  set seq(v: number) {
    this.w16(6, v);
  }
  /** Echo data, or for errors the quoted invoking datagram. */
  get payloadOff(): number {
    return this.off + ICMP_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - ICMP_HEADER_LEN;
  }
}
