/**
 * virtio_net_hdr, the offload header that prefixes every frame on a tap
 * opened with IFF_VNET_HDR (Linux include/uapi/linux/virtio_net.h; virtio
 * 1.x spec §5.1.6). We use the 12-byte form (with num_buffers, the size
 * set by TUNSETVNETHDRSZ); the legacy header is the first 10 bytes.
 *
 *   0      1          2        4         6           8            10            12
 *   +------+----------+--------+---------+-----------+------------+-------------+
 *   |flags | gso_type | hdr_len| gso_size| csum_start| csum_offset| num_buffers |
 *   +------+----------+--------+---------+-----------+------------+-------------+
 *
 * Multi-byte fields are little-endian: virtio 1.x is LE by definition, and
 * for a legacy header the kernel uses the host's order, which is LE on
 * every platform Bun runs on. (This is the one non-network-order format in
 * src/wire/.)
 *
 * Direction guest -> us: NEEDS_CSUM means the checksum field at
 * csum_start + csum_offset holds only the pseudo-header sum and the rest
 * must be summed from csum_start to the end; gso_type != NONE means the
 * frame is a large segment to be cut into gso_size pieces. These values
 * come from the guest kernel and are validated like any other input.
 */
import { EMPTY, WireError, inBounds } from "./errors.ts";
import { finish, sum16 } from "./checksum.ts";

export const VNET_HDR_LEN = 12;
export const VNET_HDR_LEN_LEGACY = 10;

export const VnetFlags = {
  NEEDS_CSUM: 1,
  DATA_VALID: 2,
  RSC_INFO: 4,
} as const;

export const VnetGso = {
  NONE: 0,
  TCPV4: 1,
  UDP: 3,
  TCPV6: 4,
  UDP_L4: 5,
  /** Flag OR-ed into gso_type: the TCP segments carry ECN (CWR must be set on the first only). */
  ECN: 0x80,
} as const;

/** Reusable view over a virtio_net_hdr (named after the Linux struct). */
export class VirtioNetHdr {
  buf: Uint8Array = EMPTY;
  off = 0;
  /** Header size in use: 12 (default) or 10 (legacy, no num_buffers). */
  readonly size: number;

  constructor(size: number = VNET_HDR_LEN) {
    this.size = size === VNET_HDR_LEN_LEGACY ? VNET_HDR_LEN_LEGACY : VNET_HDR_LEN;
  }

  /**
   * Checks that `size` bytes are present at buf[off]; `len` is the bytes
   * available there (header + frame), by default the rest of the buffer.
   */
  attach(buf: Uint8Array, off: number, len: number = buf.length - off): WireError {
    if (!inBounds(buf, off, len)) return WireError.BadBounds;
    this.buf = buf;
    this.off = off;
    if (len < this.size) return WireError.Truncated;
    return WireError.Ok;
  }

  wrap(buf: Uint8Array, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  /** Zeroes the header: no offloads, the frame is complete and checksummed. */
  clear(): void {
    this.buf.fill(0, this.off, this.off + this.size);
  }

  get flags(): number {
    return this.buf[this.off];
  }
  set flags(v: number) {
    this.buf[this.off] = v;
  }
  get gsoType(): number {
    return this.buf[this.off + 1];
  }
  set gsoType(v: number) {
    this.buf[this.off + 1] = v;
  }
  /** Length of the headers (Ethernet + IP + L4) of a GSO frame; a hint only. */
  get hdrLen(): number {
    return this.u16(2);
  }
  set hdrLen(v: number) {
    this.w16(2, v);
  }
  /** Payload bytes per segment for GSO. */
  get gsoSize(): number {
    return this.u16(4);
  }
  set gsoSize(v: number) {
    this.w16(4, v);
  }
  /** Offset in the frame where checksumming starts (the L4 header). */
  get csumStart(): number {
    return this.u16(6);
  }
  set csumStart(v: number) {
    this.w16(6, v);
  }
  /** Offset of the checksum field relative to csumStart (16 for TCP, 6 for UDP). */
  get csumOffset(): number {
    return this.u16(8);
  }
  set csumOffset(v: number) {
    this.w16(8, v);
  }
  /** Mergeable rx buffers count; 0 for the legacy header. */
  get numBuffers(): number {
    return this.size === VNET_HDR_LEN ? this.u16(10) : 0;
  }
  set numBuffers(v: number) {
    if (this.size === VNET_HDR_LEN) this.w16(10, v);
  }

  /**
   * Validates the header against the frame that follows it (`frameLen`
   * bytes): NEEDS_CSUM must point at a checksum field inside the frame
   * (BadLength), the GSO type must be one we know (Unsupported), and a GSO
   * frame needs a non-zero gso_size (Malformed).
   */
  validate(frameLen: number): WireError {
    if (this.flags & VnetFlags.NEEDS_CSUM) {
      if (this.csumStart + this.csumOffset + 2 > frameLen) return WireError.BadLength;
    }
    const g = this.gsoType & ~VnetGso.ECN;
    if (g !== VnetGso.NONE) {
      if (g !== VnetGso.TCPV4 && g !== VnetGso.TCPV6 && g !== VnetGso.UDP && g !== VnetGso.UDP_L4) {
        return WireError.Unsupported;
      }
      if (this.gsoSize === 0) return WireError.Malformed;
    }
    return WireError.Ok;
  }

  private u16(o: number): number {
    return this.buf[this.off + o] | (this.buf[this.off + o + 1] << 8);
  }
  private w16(o: number, v: number): void {
    this.buf[this.off + o] = v;
    this.buf[this.off + o + 1] = v >>> 8;
  }
}

/**
 * Completes a NEEDS_CSUM ("CHECKSUM_PARTIAL") frame in place: sums
 * frame[csumStart, frameLen) (which includes the pseudo-header sum the
 * sender left in the checksum field) and stores the complement at
 * csumStart + csumOffset. A result of 0 is stored as 0xffff, like Linux's
 * skb_checksum_help(), which keeps UDP from reading it as "no checksum".
 * Bounds are checked (BadLength) so this is safe on unvalidated headers.
 */
export function completePartialChecksum(
  buf: Uint8Array,
  frameOff: number,
  frameLen: number,
  csumStart: number,
  csumOffset: number,
): WireError {
  if (!inBounds(buf, frameOff, frameLen)) return WireError.BadBounds;
  if (csumStart < 0 || csumOffset < 0 || csumStart + csumOffset + 2 > frameLen) return WireError.BadLength;
  const at = frameOff + csumStart + csumOffset;
  let c = finish(sum16(buf, frameOff + csumStart, frameLen - csumStart));
  if (c === 0) c = 0xffff;
  buf[at] = c >>> 8;
  buf[at + 1] = c;
  return WireError.Ok;
}
