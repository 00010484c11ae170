// The way out toward the guest: one reused transmit buffer in which every
// outgoing frame is built in place, link and IP headers, fragmentation of
// IP packets larger than the MTU, L4 checksums (computed, or left to the
// device when it offloads them), and the neighbour lookup that fills in
// the destination MAC.
//
// Layout of the transmit buffer, so an upper layer can write its header
// and payload exactly once:
//
//   [TX_HEADROOM][Ethernet 14, tap only][IPv4 20 | IPv6 40][L4 header+payload]
//   0            frameOff               l3Off              l4OffV4 / l4OffV6
//
// Usage: write the L4 segment at l4OffV4/l4OffV6, call checksumV4/V6 on
// it, then sendV4/sendV6. Nothing may be built concurrently: a frame is
// finished and handed to the device before the next one starts.
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from "../wire/ethernet.ts";
import { IPPROTO_FRAGMENT, IPPROTO_ICMPV6, IPPROTO_UDP, IPV4_HEADER_LEN } from "../wire/ipv4.ts";
import { IPV6_HEADER_LEN, ipv6MulticastMac, solicitedNodeMulticast } from "../wire/ipv6.ts";
import { finish, fold, pseudoHeaderV4, pseudoHeaderV6, sum16 } from "../wire/checksum.ts";
import { allocChecksumBuffer } from "../wire/checksum-wasm.ts";
import { writeU16, writeU32 } from "../wire/bytes.ts";
import { emitNeighborSolicit, fillIcmpv6Checksum } from "../wire/icmpv6.ts";
import { TX_HEADROOM, TxMeta, type DeviceCaps, type FrameSink } from "./device.ts";
import { Neighbors, type QueuedFrame } from "./neighbors.ts";
import type { Stats } from "./stats.ts";

const ETH_LEN = 14;
export const DEFAULT_TTL = 64;

export class Egress {
  readonly buf: Uint8Array;
  readonly frameOff = TX_HEADROOM;
  readonly l3Off: number;
  readonly l4OffV4: number;
  readonly l4OffV6: number;
  /** Offload request for the frame being built; cleared after each send. */
  readonly meta = new TxMeta();
  readonly neighbors: Neighbors;
  private readonly ethernet: boolean;
  /** Second buffer for fragments (and ARP/NDP control frames built while a frame is pending). */
  private readonly scratch: Uint8Array;
  private ident = 1;
  private fragIdent = 1;

  constructor(
    readonly caps: DeviceCaps,
    private readonly sink: FrameSink,
    /** Our MAC (tap mode). */
    readonly mac: Uint8Array,
    /** Source addresses for our own solicitations. */
    private readonly gatewayV4: number,
    private readonly gatewayV6: Uint8Array,
    stats: Stats,
    /** Neighbour entries at most (-max-neighbors). */
    maxNeighbors: number,
  ) {
    this.ethernet = caps.medium === "ethernet";
    this.l3Off = TX_HEADROOM + (this.ethernet ? ETH_LEN : 0);
    this.l4OffV4 = this.l3Off + IPV4_HEADER_LEN;
    this.l4OffV6 = this.l3Off + IPV6_HEADER_LEN;
    // An IP packet is at most 65535 bytes (+ IPv6's fixed header); GSO frames too.
    // In the checksum kernel's memory, so full checksums of what we build
    // run in WASM (checksum-wasm.ts).
    this.buf = allocChecksumBuffer(this.l3Off + IPV6_HEADER_LEN + 65535 + 64);
    this.scratch = allocChecksumBuffer(this.l3Off + Math.max(caps.mtu, 1280) + 64);
    this.neighbors = new Neighbors(stats, maxNeighbors);
  }

  /** Largest L4 length (header + payload) that goes out unfragmented. */
  maxL4V4(): number {
    return this.caps.mtu - IPV4_HEADER_LEN;
  }

  maxL4V6(): number {
    return this.caps.mtu - IPV6_HEADER_LEN;
  }

  // ---------------------------------------------------------------------
  // L4 checksums
  // ---------------------------------------------------------------------

  /**
   * Fills the L4 checksum of the segment at buf[l4Off, l4Off+l4Len) whose
   * checksum field is at l4Off+csumRel: in full, or as the pseudo-header
   * sum for the device to finish (virtio NEEDS_CSUM) when it offloads and
   * the packet will not be fragmented.
   */
  checksumV4(src: number, dst: number, proto: number, l4Off: number, l4Len: number, csumRel: number): void {
    this.checksum(pseudoHeaderV4(src, dst, proto, l4Len), this.maxL4V4(), proto, l4Off, l4Len, csumRel);
  }

  checksumV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, proto: number, l4Off: number, l4Len: number, csumRel: number): void {
    const ph = pseudoHeaderV6Split(src, srcOff, dst, dstOff, proto, l4Len);
    this.checksum(ph, this.maxL4V6(), proto, l4Off, l4Len, csumRel);
  }

  /** Both families, given the pseudo-header sum and the largest L4 length that goes out unfragmented. */
  private checksum(ph: number, maxL4: number, proto: number, l4Off: number, l4Len: number, csumRel: number): void {
    const b = this.buf;
    if (this.caps.txChecksumOffload && (l4Len <= maxL4 || this.meta.gsoType !== 0)) {
      writeU16(b, l4Off + csumRel, fold(ph));
      this.meta.csumStart = l4Off - this.frameOff;
      this.meta.csumOffset = csumRel;
      return;
    }
    writeU16(b, l4Off + csumRel, 0);
    let c = finish(sum16(b, l4Off, l4Len, ph));
    // 0 means "no checksum" in UDP over IPv4 (RFC 768) and is not allowed
    // over IPv6 (RFC 8200 §8.1): either way it is sent as 0xffff.
    if (c === 0 && proto === IPPROTO_UDP) c = 0xffff;
    writeU16(b, l4Off + csumRel, c);
  }

  // ---------------------------------------------------------------------
  // IPv4
  // ---------------------------------------------------------------------

  /** Sends the L4 packet at l4OffV4 (l4Len bytes) from src to dst (the guest). */
  sendV4(src: number, dst: number, proto: number, l4Len: number, now: number): void {
    const total = IPV4_HEADER_LEN + l4Len;
    const fragment = total > this.caps.mtu && this.meta.gsoType === 0;
    this.headerV4(src, dst, proto, total, fragment);
    if (fragment) this.fragmentV4(l4Len, dst, now);
    else this.emit(this.buf, total, ETHERTYPE_IPV4, 4, dst, null, 0, now);
    this.meta.clear();
  }

  /**
   * Sends the L4 packet at l4OffV4 (l4Len bytes, within the MTU) from src
   * to dst at the link address mac[macOff..+6], with no neighbour lookup:
   * for DHCP replies to a client that does not hold its address yet, or to
   * the broadcast address (RFC 2131 §4.1). Tap only.
   */
  sendV4Link(src: number, dst: number, mac: Uint8Array, macOff: number, proto: number, l4Len: number): void {
    const b = this.buf;
    const total = IPV4_HEADER_LEN + l4Len;
    this.headerV4(src, dst, proto, total, false);
    const eth = this.frameOff;
    for (let i = 0; i < 6; i++) b[eth + i] = mac[macOff + i]!;
    b.set(this.mac, eth + 6);
    writeU16(b, eth + 12, ETHERTYPE_IPV4);
    this.sink.transmit(b, eth, ETH_LEN + total, this.meta.csumStart !== 0 ? this.meta : null);
    this.meta.clear();
  }

  /** The IPv4 header at l3Off of a packet of `total` bytes (DF unless it is to be fragmented). */
  private headerV4(src: number, dst: number, proto: number, total: number, fragment: boolean): void {
    const b = this.buf;
    const ip = this.l3Off;
    b[ip] = 0x45;
    b[ip + 1] = 0;
    writeU16(b, ip + 2, total > 0xffff ? 0 : total);
    writeU16(b, ip + 4, this.ident);
    this.ident = (this.ident + 1) & 0xffff;
    // DF on everything we can send whole: the guest link is the only hop.
    writeU16(b, ip + 6, fragment ? 0 : 0x4000);
    b[ip + 8] = DEFAULT_TTL;
    b[ip + 9] = proto;
    writeU16(b, ip + 10, 0);
    writeU32(b, ip + 12, src);
    writeU32(b, ip + 16, dst);
    writeU16(b, ip + 10, finish(sum16(b, ip, IPV4_HEADER_LEN)));
  }

  /**
   * RFC 791 fragmentation: every fragment but the last carries a multiple
   * of 8 payload bytes; the header is copied with offset and MF set.
   */
  private fragmentV4(l4Len: number, dst: number, now: number): void {
    const src = this.buf;
    const out = this.scratch;
    const ip = this.l3Off;
    const per = (this.caps.mtu - IPV4_HEADER_LEN) & ~7;
    for (let off = 0; off < l4Len; off += per) {
      const n = Math.min(per, l4Len - off);
      const more = off + n < l4Len;
      out.set(src.subarray(ip, ip + IPV4_HEADER_LEN), ip);
      out.set(src.subarray(this.l4OffV4 + off, this.l4OffV4 + off + n), ip + IPV4_HEADER_LEN);
      writeU16(out, ip + 2, IPV4_HEADER_LEN + n);
      writeU16(out, ip + 6, (more ? 0x2000 : 0) | (off >>> 3));
      writeU16(out, ip + 10, 0);
      writeU16(out, ip + 10, finish(sum16(out, ip, IPV4_HEADER_LEN)));
      this.emit(out, IPV4_HEADER_LEN + n, ETHERTYPE_IPV4, 4, dst, null, 0, now);
    }
  }

  // ---------------------------------------------------------------------
  // IPv6
  // ---------------------------------------------------------------------

  sendV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, proto: number, l4Len: number, now: number, hopLimit = DEFAULT_TTL): void {
    const b = this.buf;
    const ip = this.l3Off;
    writeU32(b, ip, 0x60000000);
    writeU16(b, ip + 4, l4Len > 0xffff ? 0 : l4Len);
    b[ip + 6] = proto;
    b[ip + 7] = hopLimit;
    b.set(src.subarray(srcOff, srcOff + 16), ip + 8);
    b.set(dst.subarray(dstOff, dstOff + 16), ip + 24);
    if (IPV6_HEADER_LEN + l4Len > this.caps.mtu && this.meta.gsoType === 0) {
      this.fragmentV6(proto, l4Len, now);
    } else {
      this.emit(b, IPV6_HEADER_LEN + l4Len, ETHERTYPE_IPV6, 6, 0, b, ip + 24, now);
    }
    this.meta.clear();
  }

  /** RFC 8200 §4.5: the source fragments, with a Fragment header in each piece. */
  private fragmentV6(proto: number, l4Len: number, now: number): void {
    const src = this.buf;
    const out = this.scratch;
    const ip = this.l3Off;
    const per = (this.caps.mtu - IPV6_HEADER_LEN - 8) & ~7;
    const id = this.fragIdent;
    this.fragIdent = (this.fragIdent + 1) >>> 0 || 1;
    for (let off = 0; off < l4Len; off += per) {
      const n = Math.min(per, l4Len - off);
      const more = off + n < l4Len;
      out.set(src.subarray(ip, ip + IPV6_HEADER_LEN), ip);
      writeU16(out, ip + 4, 8 + n);
      out[ip + 6] = IPPROTO_FRAGMENT;
      const fh = ip + IPV6_HEADER_LEN;
      out[fh] = proto;
      out[fh + 1] = 0;
      writeU16(out, fh + 2, off | (more ? 1 : 0));
      writeU32(out, fh + 4, id);
      out.set(src.subarray(this.l4OffV6 + off, this.l4OffV6 + off + n), fh + 8);
      this.emit(out, IPV6_HEADER_LEN + 8 + n, ETHERTYPE_IPV6, 6, 0, out, ip + 24, now);
    }
  }

  // ---------------------------------------------------------------------
  // Link layer
  // ---------------------------------------------------------------------

  /**
   * Puts the Ethernet header in front of the IP packet at buf[l3Off] and
   * transmits; waits for the neighbour when the guest's MAC is unknown.
   */
  private emit(buf: Uint8Array, ipLen: number, ethertype: number, family: 4 | 6, dstV4: number, dstV6: Uint8Array | null, dstV6Off: number, now: number): void {
    if (!this.ethernet) {
      this.sink.transmit(buf, this.l3Off, ipLen, this.meta.csumStart !== 0 || this.meta.gsoType !== 0 ? this.meta : null);
      return;
    }
    const eth = this.frameOff;
    buf.set(this.mac, eth + 6);
    writeU16(buf, eth + 12, ethertype);
    let mac: Uint8Array | null;
    if (family === 6 && dstV6![dstV6Off] === 0xff) {
      ipv6MulticastMac(dstV6!, dstV6Off, buf, eth);
      mac = null;
    } else {
      mac = family === 4 ? this.neighbors.lookupV4(dstV4) : this.neighbors.lookupV6(dstV6!, dstV6Off);
      if (mac === null) {
        this.defer(buf, ETH_LEN + ipLen, family, dstV4, dstV6, dstV6Off, now);
        return;
      }
      buf.set(mac, eth);
    }
    const meta = this.meta.csumStart !== 0 || this.meta.gsoType !== 0 ? this.meta : null;
    this.sink.transmit(buf, eth, ETH_LEN + ipLen, meta);
  }

  private defer(buf: Uint8Array, frameLen: number, family: 4 | 6, dstV4: number, dstV6: Uint8Array | null, dstV6Off: number, now: number): void {
    const m = this.meta;
    const q: QueuedFrame = {
      // Keep the headroom so the device can still prepend its header.
      frame: buf.slice(0, this.frameOff + frameLen),
      macOff: this.frameOff,
      csumStart: m.csumStart,
      csumOffset: m.csumOffset,
      gsoType: m.gsoType,
      gsoSize: m.gsoSize,
      hdrLen: m.hdrLen,
    };
    if (this.neighbors.enqueue(family, dstV4, dstV6, dstV6Off, q, now)) this.solicit(family, dstV4, family === 6 ? dstV6!.slice(dstV6Off, dstV6Off + 16) : null);
  }

  /** Transmits frames released by a neighbour becoming known. */
  flushQueued(frames: QueuedFrame[]): void {
    const m = new TxMeta();
    for (const f of frames) {
      m.csumStart = f.csumStart;
      m.csumOffset = f.csumOffset;
      m.gsoType = f.gsoType;
      m.gsoSize = f.gsoSize;
      m.hdrLen = f.hdrLen;
      this.sink.transmit(f.frame, this.frameOff, f.frame.length - this.frameOff, m.csumStart !== 0 || m.gsoType !== 0 ? m : null);
    }
  }

  /** Asks the guest for the MAC of an address: ARP request or Neighbor Solicitation. */
  readonly solicit = (family: 4 | 6, v4: number, v6: Uint8Array | null): void => {
    if (!this.ethernet) return;
    if (family === 4) this.sendArp(1, this.mac, 0, this.gatewayV4, null, 0, v4, null);
    else this.sendNeighborSolicit(v6!);
  };

  /**
   * An ARP packet (RFC 826) from the scratch buffer. `op` 1 is a request
   * (broadcast unless a target MAC is given), 2 a reply.
   */
  sendArp(
    op: number,
    senderMac: Uint8Array,
    senderMacOff: number,
    senderIp: number,
    targetMac: Uint8Array | null,
    targetMacOff: number,
    targetIp: number,
    ethDst: Uint8Array | null,
  ): void {
    const b = this.scratch;
    const eth = this.frameOff;
    if (ethDst !== null) b.set(ethDst.subarray(0, 6), eth);
    else b.fill(0xff, eth, eth + 6);
    b.set(this.mac, eth + 6);
    writeU16(b, eth + 12, ETHERTYPE_ARP);
    const a = eth + ETH_LEN;
    writeU16(b, a, 1); // Ethernet
    writeU16(b, a + 2, ETHERTYPE_IPV4);
    b[a + 4] = 6;
    b[a + 5] = 4;
    writeU16(b, a + 6, op);
    b.set(senderMac.subarray(senderMacOff, senderMacOff + 6), a + 8);
    writeU32(b, a + 14, senderIp);
    if (targetMac !== null) b.set(targetMac.subarray(targetMacOff, targetMacOff + 6), a + 18);
    else b.fill(0, a + 18, a + 24);
    writeU32(b, a + 24, targetIp);
    this.sink.transmit(b, eth, ETH_LEN + 28, null);
  }

  /** A Neighbor Solicitation (RFC 4861 §7.2.2) to the target's solicited-node group. */
  private sendNeighborSolicit(target: Uint8Array): void {
    const b = this.scratch;
    const eth = this.frameOff;
    const ip = this.l3Off;
    const icmp = ip + IPV6_HEADER_LEN;
    const len = emitNeighborSolicit(b, icmp, target, 0, this.mac);
    writeU32(b, ip, 0x60000000);
    writeU16(b, ip + 4, len);
    b[ip + 6] = IPPROTO_ICMPV6;
    b[ip + 7] = 255; // NDP requires hop limit 255 (RFC 4861 §7.1.1)
    b.set(this.gatewayV6, ip + 8);
    solicitedNodeMulticast(target, 0, b, ip + 24);
    fillIcmpv6Checksum(b, icmp, len, b, ip + 8, ip + 24);
    ipv6MulticastMac(b, ip + 24, b, eth);
    b.set(this.mac, eth + 6);
    writeU16(b, eth + 12, ETHERTYPE_IPV6);
    this.sink.transmit(b, eth, ETH_LEN + IPV6_HEADER_LEN + len, null);
  }
}

/** IPv6 pseudo-header sum for addresses living in two different buffers. */
function pseudoHeaderV6Split(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, proto: number, len: number): number {
  if (src === dst) return pseudoHeaderV6(src, srcOff, dstOff, proto, len);
  let acc = sum16(src, srcOff, 16) + sum16(dst, dstOff, 16);
  acc += (len >>> 16) + (len & 0xffff) + proto;
  return acc;
}
