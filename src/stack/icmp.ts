// ICMP toward the guest: echo replies for any destination (the contract's
// behaviour: pings never leave the process), Neighbor Discovery answers
// (RFC 4861), and destination-unreachable errors for connections the host
// could not reach. From the guest: errors about our TCP segments, parsed
// for the TCP layer (RFC 1122 §4.2.3.9, RFC 1191, RFC 8201, RFC 5927).
import { Icmpv4View, Icmpv4Type, Icmpv4Unreach, emitIcmpv4EchoReply, emitIcmpv4DestUnreachable } from "../wire/icmpv4.ts";
import {
  Icmpv6View,
  Icmpv6Type,
  Icmpv6Unreach,
  NeighborSolicitView,
  NeighborAdvertView,
  NdpOpt,
  NDP_OPT_MALFORMED,
  NA_FLAG_OVERRIDE,
  NA_FLAG_ROUTER,
  NA_FLAG_SOLICITED,
  emitIcmpv6EchoReply,
  emitIcmpv6DestUnreachable,
  emitNeighborAdvert,
  findNdpLinkLayerAddr,
} from "../wire/icmpv6.ts";
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP } from "../wire/ipv4.ts";
import { ipv6Equal, ipv6IsUnspecified, ipv6IsMulticast } from "../wire/ipv6.ts";
import { readU16, readU32, writeU16, writeU32 } from "../wire/bytes.ts";
import { finish, sum16 } from "../wire/checksum.ts";
import { WireError } from "../wire/errors.ts";
import type { Egress } from "./egress.ts";
import type { Stats } from "./stats.ts";
import type { TcpConnection } from "./tcp/connection.ts";

/** What an ICMP error says happened to one of our TCP segments. */
export const IcmpErrorKind = {
  /** Transient (no route, time exceeded...): RFC 1122 §4.2.3.9 says never abort for it. */
  Soft: 0,
  /** The guest will not take the connection (port unreachable, prohibited). */
  Hard: 1,
  /** Too big for the path: `mtu` is the largest IP packet that fits. */
  TooBig: 2,
} as const;
export type IcmpErrorKind = (typeof IcmpErrorKind)[keyof typeof IcmpErrorKind];

/**
 * An ICMP error from the guest about a TCP segment we sent, as quoted in
 * it: "local" is the quoted source (our end), "remote" the guest. Valid
 * until the next frame (IPv6 addresses point into the frame).
 */
export class IcmpTcpError {
  kind: IcmpErrorKind = IcmpErrorKind.Soft;
  mtu = 0;
  family: 4 | 6 = 4;
  localV4 = 0;
  remoteV4 = 0;
  /** The frame holding the quoted IPv6 addresses, at localOff and remoteOff. */
  buf: Uint8Array = new Uint8Array(0);
  localOff = 0;
  remoteOff = 0;
  localPort = 0;
  remotePort = 0;
  /** The quoted segment's sequence number. */
  seq = 0;
}

/** ICMPv4 unreachable codes that end a connection attempt: as Linux (RFC 1122 §4.2.3.9, RFC 1812 §5.2.7.1). */
function hardV4(code: number): boolean {
  return code === 2 || code === 3 || (code >= 6 && code <= 10) || (code >= 13 && code <= 15);
}

/** ICMPv6 unreachable codes that end a connection attempt: prohibited, port, policy, reject route (RFC 4443 §3.1). */
function hardV6(code: number): boolean {
  return code === 1 || code === 4 || code === 5 || code === 6;
}

export class Icmp {
  /** Filled by inputV4/inputV6 when they return true. */
  readonly tcpError = new IcmpTcpError();
  private readonly v4 = new Icmpv4View();
  private readonly v6 = new Icmpv6View();
  private readonly ns = new NeighborSolicitView();
  private readonly na = new NeighborAdvertView();
  /** A synthesized copy of a guest SYN's headers, for quoting in an error. */
  private readonly quote = new Uint8Array(60);

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    private readonly gatewayV4: number,
    private readonly gatewayV6: Uint8Array,
  ) {}

  /**
   * Answers echo requests. Returns true for an error about one of our TCP
   * segments, described in `tcpError` for the TCP layer.
   */
  inputV4(src: number, dst: number, buf: Uint8Array, off: number, len: number, now: number): boolean {
    const v = this.v4;
    if (v.attach(buf, off, len) !== WireError.Ok || !v.verifyChecksum()) {
      this.stats.drop("icmp-malformed");
      return false;
    }
    switch (v.type) {
      case Icmpv4Type.EchoRequest: {
        const eg = this.egress;
        const n = emitIcmpv4EchoReply(eg.buf, eg.l4OffV4, v);
        if (n !== 0) eg.sendV4(dst, src, IPPROTO_ICMP, n, now);
        return false;
      }
      case Icmpv4Type.DestUnreachable:
      case Icmpv4Type.TimeExceeded:
      case Icmpv4Type.ParameterProblem:
        if (this.quotedTcpV4(v)) return true;
        break;
    }
    // Other messages, and errors about anything but our TCP segments, end here (counted).
    this.stats.drop("icmp-ignored");
    return false;
  }

  /** Reads the TCP segment an ICMPv4 error quotes (RFC 792: IP header and 8 bytes at least). */
  private quotedTcpV4(v: Icmpv4View): boolean {
    const b = v.buf;
    const at = v.payloadOff;
    const n = v.payloadLen;
    if (n < 20 || b[at]! >>> 4 !== 4) return false;
    const ihl = (b[at]! & 15) << 2;
    // Only a first fragment holds the TCP header (ours are never fragmented).
    if (ihl < 20 || n < ihl + 8 || b[at + 9] !== IPPROTO_TCP || (readU16(b, at + 6) & 0x1fff) !== 0) return false;
    const e = this.tcpError;
    e.family = 4;
    e.localV4 = readU32(b, at + 12);
    e.remoteV4 = readU32(b, at + 16);
    e.localPort = readU16(b, at + ihl);
    e.remotePort = readU16(b, at + ihl + 2);
    e.seq = readU32(b, at + ihl + 4);
    e.mtu = 0;
    if (v.type !== Icmpv4Type.DestUnreachable) e.kind = IcmpErrorKind.Soft;
    else if (v.code === Icmpv4Unreach.FragNeeded) {
      e.kind = IcmpErrorKind.TooBig;
      e.mtu = v.nextHopMtu;
    } else e.kind = hardV4(v.code) ? IcmpErrorKind.Hard : IcmpErrorKind.Soft;
    return true;
  }

  /**
   * ICMPv6: echo, and NDP, which must arrive with hop limit 255 (RFC 4861
   * §7.1). Returns true for an error about one of our TCP segments,
   * described in `tcpError`. From the unspecified address only a Neighbor
   * Solicitation (Duplicate Address Detection, RFC 4862 §5.4.2) is looked
   * at: nothing can be answered to ::.
   */
  inputV6(buf: Uint8Array, srcOff: number, dstOff: number, hopLimit: number, off: number, len: number, now: number): boolean {
    const v = this.v6;
    if (v.attach(buf, off, len) !== WireError.Ok || !v.verifyChecksum(buf, srcOff, dstOff)) {
      this.stats.drop("icmp6-malformed");
      return false;
    }
    if (v.type !== Icmpv6Type.NeighborSolicit && ipv6IsUnspecified(buf, srcOff)) {
      this.stats.drop("non-unicast-source");
      return false;
    }
    switch (v.type) {
      case Icmpv6Type.EchoRequest: {
        if (ipv6IsMulticast(buf, dstOff)) return false; // no answers for multicast pings
        const eg = this.egress;
        const n = emitIcmpv6EchoReply(eg.buf, eg.l4OffV6, v);
        if (n === 0) return false;
        eg.checksumV6(buf, dstOff, buf, srcOff, IPPROTO_ICMPV6, eg.l4OffV6, n, 2);
        eg.sendV6(buf, dstOff, buf, srcOff, IPPROTO_ICMPV6, n, now);
        return false;
      }
      case Icmpv6Type.NeighborSolicit:
        if (hopLimit === 255) this.neighborSolicit(buf, srcOff, now);
        else this.stats.drop("ndp-bad-hop-limit");
        return false;
      case Icmpv6Type.NeighborAdvert:
        if (hopLimit === 255) this.neighborAdvert(buf);
        else this.stats.drop("ndp-bad-hop-limit");
        return false;
      case Icmpv6Type.DestUnreachable:
      case Icmpv6Type.PacketTooBig:
      case Icmpv6Type.TimeExceeded:
      case Icmpv6Type.ParamProblem:
        if (this.quotedTcpV6(v)) return true;
        break;
    }
    this.stats.drop("icmp6-ignored");
    return false;
  }

  /**
   * Reads the TCP segment an ICMPv6 error quotes. Our segments carry no
   * extension headers, so the TCP header follows the fixed header.
   */
  private quotedTcpV6(v: Icmpv6View): boolean {
    const b = v.buf;
    const at = v.payloadOff;
    if (v.payloadLen < 48 || b[at]! >>> 4 !== 6 || b[at + 6] !== IPPROTO_TCP) return false;
    const e = this.tcpError;
    e.family = 6;
    e.buf = b;
    e.localOff = at + 8;
    e.remoteOff = at + 24;
    e.localPort = readU16(b, at + 40);
    e.remotePort = readU16(b, at + 42);
    e.seq = readU32(b, at + 44);
    e.mtu = 0;
    if (v.type === Icmpv6Type.PacketTooBig) {
      e.kind = IcmpErrorKind.TooBig;
      e.mtu = v.mtu;
    } else if (v.type === Icmpv6Type.DestUnreachable && hardV6(v.code)) e.kind = IcmpErrorKind.Hard;
    else e.kind = IcmpErrorKind.Soft;
    return true;
  }

  /**
   * Answers a Neighbor Solicitation for any target (we are every address
   * the guest talks to), except Duplicate Address Detection: an NS from ::
   * asks whether the guest's own new address is taken, and claiming it
   * would break the guest's IPv6.
   */
  private neighborSolicit(buf: Uint8Array, srcOff: number, now: number): void {
    const ns = this.ns;
    if (ns.attach(this.v6) !== WireError.Ok) {
      this.stats.drop("ndp-malformed");
      return;
    }
    if (ipv6IsUnspecified(buf, srcOff) || ipv6IsMulticast(buf, ns.targetOff)) return;
    const lla = findNdpLinkLayerAddr(buf, ns.optionsOff, ns.optionsLen, NdpOpt.SourceLinkAddr);
    if (lla === NDP_OPT_MALFORMED) {
      this.stats.drop("ndp-malformed");
      return;
    }
    const eg = this.egress;
    if (lla >= 0) {
      const released = eg.neighbors.learnV6(buf, srcOff, buf, lla);
      if (released !== null) eg.flushQueued(released);
    }
    // The guest asking for its own address is not ours to answer.
    if (ipv6Equal(buf, ns.targetOff, buf, srcOff)) return;
    const at = eg.l4OffV6;
    const n = emitNeighborAdvert(eg.buf, at, buf, ns.targetOff, eg.mac, NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE | NA_FLAG_ROUTER);
    // Source is the target address; sent with hop limit 255 (RFC 4861 §7.2.4).
    eg.checksumV6(buf, ns.targetOff, buf, srcOff, IPPROTO_ICMPV6, at, n, 2);
    eg.sendV6(buf, ns.targetOff, buf, srcOff, IPPROTO_ICMPV6, n, now, 255);
  }

  private neighborAdvert(buf: Uint8Array): void {
    const na = this.na;
    if (na.attach(this.v6) !== WireError.Ok) {
      this.stats.drop("ndp-malformed");
      return;
    }
    const lla = findNdpLinkLayerAddr(buf, na.optionsOff, na.optionsLen, NdpOpt.TargetLinkAddr);
    if (lla < 0) return;
    const eg = this.egress;
    const released = eg.neighbors.learnV6(buf, na.targetOff, buf, lla);
    if (released !== null) eg.flushQueued(released);
  }

  /**
   * Destination unreachable for a pending guest SYN whose host connect
   * failed: host unreachable (v4 code 1, v6 code 3), from the gateway,
   * quoting the SYN's headers as the guest sent them. The SYN came from
   * one host to one host (Stack drops the rest before TCP sees them), so
   * this never answers a broadcast or multicast datagram (RFC 1122 §3.2.2).
   */
  tcpUnreachable(conn: TcpConnection, now: number): void {
    const q = this.quote;
    const eg = this.egress;
    if (conn.family === 4) {
      q[0] = 0x45;
      q[1] = 0;
      writeU16(q, 2, 40);
      writeU32(q, 4, 0);
      q[8] = 64;
      q[9] = IPPROTO_TCP;
      writeU16(q, 10, 0);
      writeU32(q, 12, conn.remoteV4);
      writeU32(q, 16, conn.localV4);
      writeU16(q, 10, finish(sum16(q, 0, 20)));
      this.tcpQuote(q, 20, conn);
      const n = emitIcmpv4DestUnreachable(eg.buf, eg.l4OffV4, Icmpv4Unreach.Host, q, 0, 28);
      eg.sendV4(this.gatewayV4, conn.remoteV4, IPPROTO_ICMP, n, now);
    } else {
      writeU32(q, 0, 0x60000000);
      writeU16(q, 4, 20);
      q[6] = IPPROTO_TCP;
      q[7] = 64;
      q.set(conn.remoteV6!, 8);
      q.set(conn.localV6!, 24);
      this.tcpQuote(q, 40, conn);
      const at = eg.l4OffV6;
      const n = emitIcmpv6DestUnreachable(eg.buf, at, Icmpv6Unreach.AddressUnreachable, q, 0, 48);
      eg.checksumV6(this.gatewayV6, 0, conn.remoteV6!, 0, IPPROTO_ICMPV6, at, n, 2);
      eg.sendV6(this.gatewayV6, 0, conn.remoteV6!, 0, IPPROTO_ICMPV6, n, now);
    }
  }

  /** The first 8 bytes of the guest's SYN: ports and sequence number. */
  private tcpQuote(q: Uint8Array, at: number, conn: TcpConnection): void {
    writeU16(q, at, conn.remotePort);
    writeU16(q, at + 2, conn.localPort);
    writeU32(q, at + 4, conn.irs);
  }
}

