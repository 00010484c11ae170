/**
 * Ethernet II frames (IEEE 802.3 with an EtherType, RFC 894 framing).
 *
 *   0                   6                   12      14
 *   +-------------------+-------------------+-------+---------
 *   | destination MAC   | source MAC        | type  | payload
 *   +-------------------+-------------------+-------+---------
 *
 * The tap device gives us frames without preamble and FCS. 802.1Q VLAN
 * tags (0x8100) and 802.3 length fields (< 0x0600) are not parsed: they
 * show up as an unsupported ethertype and the frame is dropped by the
 * caller.
 */
import { WireError } from "./errors.ts";
import { View } from "./view.ts";

export const ETHERNET_HEADER_LEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
/** 802.1Q tag; recognised only so that callers can count it. */
export const ETHERTYPE_VLAN = 0x8100;

/** Ethernet frames are at least 60 bytes before the FCS; shorter frames get zero padding. */
export const ETHERNET_MIN_FRAME = 60;

export const MAC_BROADCAST: Readonly<Uint8Array> = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Reusable view over one Ethernet frame. */
export class EthernetView extends View {
  static readonly HEADER_LEN = ETHERNET_HEADER_LEN;

  /** Offset of the destination MAC (start of the frame). */
  declare off: number;
  /** Length of the whole frame. */
  declare len: number;

  /** Validates that a 14-byte header is present. The payload is everything after it. */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < ETHERNET_HEADER_LEN) return WireError.Truncated;
    return WireError.Ok;
  }

  get dstOff(): number {
    return this.off;
  }
  get srcOff(): number {
    return this.off + 6;
  }
  get ethertype(): number {
    return this.u16(12);
  }
  set ethertype(v: number) {
    this.w16(12, v);
  }
  get payloadOff(): number {
    return this.off + ETHERNET_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - ETHERNET_HEADER_LEN;
  }
  /** Group bit (I/G, least significant bit of the first octet): broadcast or multicast destination. */
  get dstIsMulticast(): boolean {
    return (this.u8(0) & 1) !== 0;
  }
  get dstIsBroadcast(): boolean {
    const b = this.buf;
    const o = this.off;
    return (b[o] & b[o + 1] & b[o + 2] & b[o + 3] & b[o + 4] & b[o + 5]) === 0xff;
  }
  setDst(mac: ArrayLike<number>, macOff = 0): void {
    writeMac(this.buf, this.off, mac, macOff);
  }
  setSrc(mac: ArrayLike<number>, macOff = 0): void {
    writeMac(this.buf, this.off + 6, mac, macOff);
  }
}

/** Record for building frame headers. */
export class EthernetRepr {
  dst: Uint8Array;
  src: Uint8Array;
  ethertype: number;

  constructor(dst: Uint8Array = new Uint8Array(6), src: Uint8Array = new Uint8Array(6), ethertype = 0) {
    this.dst = dst;
    this.src = src;
    this.ethertype = ethertype;
  }

  get headerLen(): number {
    return ETHERNET_HEADER_LEN;
  }

  /** Fills this record from an attached view (copies the MACs into this record's arrays). */
  parse(v: EthernetView): this {
    copyMac(this.dst, 0, v.buf, v.dstOff);
    copyMac(this.src, 0, v.buf, v.srcOff);
    this.ethertype = v.ethertype;
    return this;
  }

  /** Writes the 14-byte header at buf[off]; returns the header length. */
  emit(buf: Uint8Array, off: number): number {
    writeMac(buf, off, this.dst, 0);
    writeMac(buf, off + 6, this.src, 0);
    buf[off + 12] = this.ethertype >>> 8;
    buf[off + 13] = this.ethertype;
    return ETHERNET_HEADER_LEN;
  }
}

/** Copies 6 bytes of `mac` (from macOff) to buf[off]. */
export function writeMac(buf: Uint8Array, off: number, mac: ArrayLike<number>, macOff = 0): void {
  buf[off] = mac[macOff];
  buf[off + 1] = mac[macOff + 1];
  buf[off + 2] = mac[macOff + 2];
  buf[off + 3] = mac[macOff + 3];
  buf[off + 4] = mac[macOff + 4];
  buf[off + 5] = mac[macOff + 5];
}

/** Same as writeMac with the argument order of a memcpy (dst first). */
export function copyMac(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number): void {
  writeMac(dst, dstOff, src, srcOff);
}

export function macEqual(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return (
    a[aOff] === b[bOff] &&
    a[aOff + 1] === b[bOff + 1] &&
    a[aOff + 2] === b[bOff + 2] &&
    a[aOff + 3] === b[bOff + 3] &&
    a[aOff + 4] === b[bOff + 4] &&
    a[aOff + 5] === b[bOff + 5]
  );
}

const HEX = "0123456789abcdef";

/** "70:71:aa:4b:29:aa" (lowercase). Cold path: allocates a string. */
export function formatMac(buf: ArrayLike<number>, off = 0): string {
  let s = "";
  for (let i = 0; i < 6; i++) {
    const b = buf[off + i] & 0xff;
    if (i > 0) s += ":";
    s += HEX[b >>> 4] + HEX[b & 15];
  }
  return s;
}

/**
 * Parses "aa:bb:cc:dd:ee:ff" (also '-' separated, either case; exactly two
 * hex digits per octet). Returns a new 6-byte array, or null.
 */
export function parseMac(str: string): Uint8Array | null {
  if (str.length !== 17) return null;
  const sep = str[2];
  if (sep !== ":" && sep !== "-") return null;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    const p = i * 3;
    if (i > 0 && str[p - 1] !== sep) return null;
    const hi = hexVal(str.charCodeAt(p));
    const lo = hexVal(str.charCodeAt(p + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
