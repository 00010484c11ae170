/**
 * ARP (RFC 826) for Ethernet hardware addresses and IPv4 protocol
 * addresses only, the one combination that exists on a tap device.
 *
 *   0        2        4    5    6        8
 *   +--------+--------+----+----+--------+
 *   | htype  | ptype  |hlen|plen|  oper  |
 *   +--------+--------+----+----+--------+-----------+------------------+
 *   | sender hardware address (6)        | sender protocol address (4)  |
 *   +------------------------------------+------------------------------+
 *   | target hardware address (6)        | target protocol address (4)  |
 *   +------------------------------------+------------------------------+
 *
 * 28 bytes; an Ethernet frame pads it to the 60-byte minimum, and that
 * padding is ignored (len stays as given, only 28 bytes are read).
 */
import { writeU32 } from "./bytes.ts";
import { copyMac } from "./ethernet.ts";
import { WireError } from "./errors.ts";
import { View } from "./view.ts";

export const ARP_LEN = 28;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_PTYPE_IPV4 = 0x0800;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

/** Reusable view over an Ethernet/IPv4 ARP packet. */
export class ArpView extends View {
  /**
   * Validates the fixed part: 28 bytes (Truncated), htype 1, ptype 0x0800,
   * hlen 6, plen 4 (Unsupported otherwise: RFC 826 allows other address
   * families, we have none). The operation is not checked: callers act on
   * 1 and 2 and ignore the rest (RFC 5227, RFC 5494 define others).
   */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < ARP_LEN) return WireError.Truncated;
    if (
      ((buf[off] << 8) | buf[off + 1]) !== ARP_HTYPE_ETHERNET ||
      ((buf[off + 2] << 8) | buf[off + 3]) !== ARP_PTYPE_IPV4 ||
      buf[off + 4] !== 6 ||
      buf[off + 5] !== 4
    ) {
      return WireError.Unsupported;
    }
    this.len = ARP_LEN;
    return WireError.Ok;
  }

  /** The length defaults to the 28 bytes every packet we build has. */
  override wrap(buf: Uint8Array, off: number, len = ARP_LEN): this {
    return super.wrap(buf, off, len);
  }

  get operation(): number {
    return this.u16(6);
  }
  set operation(v: number) {
    this.w16(6, v);
  }
  get senderHwOff(): number {
    return this.off + 8;
  }
  get senderIp(): number {
    return this.u32(14);
  }
  set senderIp(v: number) {
    this.w32(14, v);
  }
  get targetHwOff(): number {
    return this.off + 18;
  }
  get targetIp(): number {
    return this.u32(24);
  }
  set targetIp(v: number) {
    this.w32(24, v);
  }
}

/** Plain ARP record. */
export class ArpRepr {
  operation: number;
  senderHw: Uint8Array;
  senderIp: number;
  targetHw: Uint8Array;
  targetIp: number;

  constructor(
    operation = ARP_OP_REQUEST,
    senderHw: Uint8Array = new Uint8Array(6),
    senderIp = 0,
    targetHw: Uint8Array = new Uint8Array(6),
    targetIp = 0,
  ) {
    this.operation = operation;
    this.senderHw = senderHw;
    this.senderIp = senderIp >>> 0;
    this.targetHw = targetHw;
    this.targetIp = targetIp >>> 0;
  }

  get headerLen(): number {
    return ARP_LEN;
  }

  /** Copies fields (MACs into this record's own arrays) from an attached view. */
  parse(v: ArpView): this {
    this.operation = v.operation;
    copyMac(this.senderHw, 0, v.buf, v.senderHwOff);
    this.senderIp = v.senderIp;
    copyMac(this.targetHw, 0, v.buf, v.targetHwOff);
    this.targetIp = v.targetIp;
    return this;
  }

  /** Writes the 28-byte packet at buf[off]; returns 28. */
  emit(buf: Uint8Array, off: number): number {
    buf[off] = 0;
    buf[off + 1] = ARP_HTYPE_ETHERNET;
    buf[off + 2] = ARP_PTYPE_IPV4 >>> 8;
    buf[off + 3] = ARP_PTYPE_IPV4 & 0xff;
    buf[off + 4] = 6;
    buf[off + 5] = 4;
    buf[off + 6] = this.operation >>> 8;
    buf[off + 7] = this.operation;
    copyMac(buf, off + 8, this.senderHw, 0);
    writeU32(buf, off + 14, this.senderIp);
    copyMac(buf, off + 18, this.targetHw, 0);
    writeU32(buf, off + 24, this.targetIp);
    return ARP_LEN;
  }
}
