// What the engine needs from a device, and what a device tells the engine
// about itself (smoltcp's Device/DeviceCapabilities). Devices live in
// src/link/ and implement these shapes; the engine never does I/O itself.

/** Bytes the engine leaves free in front of every frame it transmits, so a
 * device can prepend a virtio_net_hdr without copying the frame. */
export const TX_HEADROOM = 12;

/** Link framing: Ethernet frames (tap, -fd; ARP and NDP apply) or raw IP
 * packets (tun: no link header, no ARP). */
export type Medium = "ethernet" | "ip";

export interface DeviceCaps {
  medium: Medium;
  /** Link MTU: the largest IP packet, without the Ethernet header. */
  mtu: number;
  /** The device takes frames whose L4 checksum holds only the pseudo-header
   * sum, with TxMeta.csumStart/csumOffset set (virtio NEEDS_CSUM). */
  txChecksumOffload: boolean;
  /** The device takes TCP frames longer than the MTU and segments them
   * (virtio GSO TCPV4/TCPV6). */
  txTcpSegmentation: boolean;
}

/**
 * Offload request for one transmitted frame. One instance is reused for
 * every frame; csumStart === 0 means "checksums are complete".
 * Offsets are relative to the start of the frame (the Ethernet header in
 * Ethernet framing).
 */
export class TxMeta {
  csumStart = 0;
  csumOffset = 0;
  /** virtio gso_type (0: none). */
  gsoType = 0;
  gsoSize = 0;
  /** Length of all headers up to the L4 payload, for GSO. */
  hdrLen = 0;
  clear(): void {
    this.csumStart = 0;
    this.csumOffset = 0;
    this.gsoType = 0;
    this.gsoSize = 0;
    this.hdrLen = 0;
  }
}

/**
 * Per-frame receive facts a device can vouch for. One instance, reused.
 */
export class RxMeta {
  /** The L4 checksum was never computed (virtio NEEDS_CSUM from a local
   * guest kernel) or was already verified: do not verify it. */
  checksumTrusted = false;
  /** virtio gso_type of a super-frame (0: an ordinary frame). */
  gsoType = 0;
  gsoSize = 0;
  clear(): void {
    this.checksumTrusted = false;
    this.gsoType = 0;
    this.gsoSize = 0;
  }
}

/** Where the engine sends frames. The frame is buf[off, off+len), with at
 * least TX_HEADROOM writable bytes before off. The sink consumes it before
 * returning (the engine reuses the buffer). */
export interface FrameSink {
  transmit(buf: Uint8Array, off: number, len: number, meta: TxMeta | null): void;
}

/** What a device delivers frames to. */
export interface FrameReceiver {
  /** One received frame, valid only during the call. */
  receive(buf: Uint8Array, off: number, len: number, meta: RxMeta): void;
  /** After a batch of frames: the place to flush and re-arm timers. */
  batchEnd(): void;
}
