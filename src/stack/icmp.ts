// ICMP toward the guest: echo replies for the stack's own addresses, and
// for every destination unless the echo layer forwards them (echo.ts),
// Neighbor Discovery answers (RFC 4861), and errors about guest datagrams
// that the host side's network refused (a TCP connect that failed, a UDP
// datagram or an echo request the host got an ICMP error for), quoting
// headers rebuilt from the flow. Every error we originate passes one token
// bucket (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)). From the guest: errors
// about our TCP segments, parsed for the TCP layer (RFC 1122 §4.2.3.9,
// RFC 1191, RFC 8201, RFC 5927).
import { Icmpv4View, Icmpv4Type, Icmpv4Unreach, emitIcmpv4EchoReply, emitIcmpv4Error } from "../wire/icmpv4.ts";
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
  emitIcmpv6Error,
  emitNeighborAdvert,
  findNdpLinkLayerAddr,
} from "../wire/icmpv6.ts";
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from "../wire/ipv4.ts";
import { ipv6Equal, ipv6IsUnspecified, ipv6IsMulticast } from "../wire/ipv6.ts";
import { readU16, readU32, writeU16, writeU32 } from "../wire/bytes.ts";
import { finish, sum16 } from "../wire/checksum.ts";
import { WireError } from "../wire/errors.ts";
import type { Egress } from "./egress.ts";
import type { EchoLayer } from "./echo.ts";
import type { FlowTuple } from "./flow-key.ts";
import type { Stats } from "./stats.ts";
import type { TcpConnection } from "./tcp/connection.ts";

/**
 * What the host side's network said about a guest datagram, in words of
 * both families: each becomes the matching ICMP (RFC 792, RFC 1812
 * §5.2.7.1) or ICMPv6 (RFC 4443 §3) error toward the guest.
 */
export const GuestError = {
  /** No route: v4 net unreachable (3/0), v6 no route (1/0). */
  NetUnreachable: 0,
  /** v4 host unreachable (3/1), v6 address unreachable (1/3). */
  HostUnreachable: 1,
  /** v4 port unreachable (3/3), v6 port unreachable (1/4); sent from the destination itself. */
  PortUnreachable: 2,
  /** v4 administratively prohibited (3/13), v6 administratively prohibited (1/1). */
  Prohibited: 3,
  /** v4 fragmentation needed (3/4), v6 packet too big (2/0), with the path's MTU. */
  TooBig: 4,
} as const;
export type GuestError = (typeof GuestError)[keyof typeof GuestError];

/**
 * The errors we originate, all kinds together: a bucket of ERROR_BURST
 * tokens refilled at ERROR_PER_MS, Linux's defaults (net.ipv4.icmp_msgs_burst
 * 50, icmp_msgs_per_sec 1000). A guest that makes the host fail a flood of
 * datagrams gets a bounded flood of errors back.
 */
const ERROR_BURST = 50;
const ERROR_PER_MS = 1;
/** Smallest MTUs a Too Big may carry: RFC 791 (68), RFC 8200 §5 (1280). */
const MIN_MTU_V4 = 68;
const MIN_MTU_V6 = 1280;

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
 * it: "dest" is the quoted source (our end), "guest" the guest. Valid
 * until the next frame (IPv6 addresses point into the frame).
 */
export class IcmpTcpError {
  kind: IcmpErrorKind = IcmpErrorKind.Soft;
  mtu = 0;
  family: 4 | 6 = 4;
  destV4 = 0;
  guestV4 = 0;
  /** The frame holding the quoted IPv6 addresses, at destOff and guestOff. */
  buf: Uint8Array = new Uint8Array(0);
  destOff = 0;
  guestOff = 0;
  destPort = 0;
  guestPort = 0;
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
  /** Headers of a guest datagram rebuilt from its flow, quoted in an error (IPv6 header and 8 bytes at most). */
  readonly quote = new Uint8Array(48);
  /** Tokens left in the error bucket, as of tokensAt. */
  private tokens = ERROR_BURST;
  private tokensAt = -Infinity;
  /** Guest echo requests to other hosts go here first (-icmp=forward); null: all are answered here. */
  echo: EchoLayer | null = null;

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    readonly gatewayV4: number,
    readonly gatewayV6: Uint8Array,
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
        if (this.echo !== null && this.echo.inputV4(src, dst, v, now)) return false;
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
    e.destV4 = readU32(b, at + 12);
    e.guestV4 = readU32(b, at + 16);
    e.destPort = readU16(b, at + ihl);
    e.guestPort = readU16(b, at + ihl + 2);
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
        if (this.echo !== null && this.echo.inputV6(buf, srcOff, dstOff, v, now)) return false;
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
    e.destOff = at + 8;
    e.guestOff = at + 24;
    e.destPort = readU16(b, at + 40);
    e.guestPort = readU16(b, at + 42);
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
   * failed: host unreachable, from the gateway, quoting the SYN's headers
   * as the guest sent them. The SYN came from one host to one host (Stack
   * drops the rest before TCP sees them), so this never answers a
   * broadcast or multicast datagram (RFC 1122 §3.2.2).
   */
  tcpUnreachable(conn: TcpConnection, now: number): void {
    const q = this.quote;
    const at = this.quoteIp(conn, IPPROTO_TCP, 20);
    writeU16(q, at, conn.guestPort);
    writeU16(q, at + 2, conn.destPort);
    writeU32(q, at + 4, conn.irs);
    this.sendError(conn, GuestError.HostUnreachable, 0, at + 8, now);
  }

  /**
   * The host side's network refused a datagram of a guest UDP flow (the
   * last one the guest sent had `payloadLen` bytes): the matching error,
   * quoting the datagram's IP and UDP headers rebuilt from the flow. The
   * UDP checksum is quoted as zero: the guest's may have been left to
   * checksum offload, and receivers match errors on addresses and ports
   * (RFC 1122 §4.1.3.3). `payloadMtu`: for TooBig, the largest payload
   * that fits the path.
   */
  udpError(flow: FlowTuple, payloadLen: number, what: GuestError, payloadMtu: number, now: number): void {
    const q = this.quote;
    const at = this.quoteIp(flow, IPPROTO_UDP, 8 + payloadLen);
    writeU16(q, at, flow.guestPort);
    writeU16(q, at + 2, flow.destPort);
    writeU16(q, at + 4, (8 + payloadLen) & 0xffff);
    writeU16(q, at + 6, 0);
    this.sendError(flow, what, payloadMtu, at + 8, now);
  }

  /**
   * Writes the IP header of a guest datagram of `flow` (guest to
   * destination, `l4Len` bytes of protocol `proto`) at the start of
   * `quote`; returns where its payload starts.
   */
  quoteIp(flow: FlowTuple, proto: number, l4Len: number): number {
    const q = this.quote;
    if (flow.family === 4) {
      q[0] = 0x45;
      q[1] = 0;
      writeU16(q, 2, (20 + l4Len) & 0xffff);
      writeU32(q, 4, 0);
      q[8] = 64;
      q[9] = proto;
      writeU16(q, 10, 0);
      writeU32(q, 12, flow.guestV4);
      writeU32(q, 16, flow.destV4);
      writeU16(q, 10, finish(sum16(q, 0, 20)));
      return 20;
    }
    writeU32(q, 0, 0x60000000);
    writeU16(q, 4, l4Len & 0xffff);
    q[6] = proto;
    q[7] = 64;
    q.set(flow.guestV6!, 8);
    q.set(flow.destV6!, 24);
    return 40;
  }

  /**
   * Sends `what` to the guest of `flow` quoting quote[0, quoteLen): from
   * the destination for a port unreachable (the peer itself said so),
   * from the gateway otherwise. Passes the token bucket first.
   */
  sendError(flow: FlowTuple, what: GuestError, payloadMtu: number, quoteLen: number, now: number): void {
    if (!this.takeToken(now)) return;
    const eg = this.egress;
    const q = this.quote;
    const fromPeer = what === GuestError.PortUnreachable;
    if (flow.family === 4) {
      let type: number = Icmpv4Type.DestUnreachable;
      let code: number = Icmpv4Unreach.AdminProhibited;
      let rest = 0;
      if (what === GuestError.NetUnreachable) code = Icmpv4Unreach.Net;
      else if (what === GuestError.HostUnreachable) code = Icmpv4Unreach.Host;
      else if (what === GuestError.PortUnreachable) code = Icmpv4Unreach.Port;
      else if (what === GuestError.TooBig) {
        code = Icmpv4Unreach.FragNeeded;
        rest = Math.max(MIN_MTU_V4, Math.min(0xffff, payloadMtu + 28));
      }
      const n = emitIcmpv4Error(eg.buf, eg.l4OffV4, type, code, rest, q, 0, quoteLen);
      eg.sendV4(fromPeer ? flow.destV4 : this.gatewayV4, flow.guestV4, IPPROTO_ICMP, n, now);
      return;
    }
    let type: number = Icmpv6Type.DestUnreachable;
    let code: number = Icmpv6Unreach.AdminProhibited;
    let param = 0;
    if (what === GuestError.NetUnreachable) code = Icmpv6Unreach.NoRoute;
    else if (what === GuestError.HostUnreachable) code = Icmpv6Unreach.AddressUnreachable;
    else if (what === GuestError.PortUnreachable) code = Icmpv6Unreach.PortUnreachable;
    else if (what === GuestError.TooBig) {
      type = Icmpv6Type.PacketTooBig;
      code = 0;
      param = Math.max(MIN_MTU_V6, payloadMtu + 48);
    }
    const at = eg.l4OffV6;
    const from = fromPeer ? flow.destV6! : this.gatewayV6;
    const n = emitIcmpv6Error(eg.buf, at, type, code, param, q, 0, quoteLen);
    eg.checksumV6(from, 0, flow.guestV6!, 0, IPPROTO_ICMPV6, at, n, 2);
    eg.sendV6(from, 0, flow.guestV6!, 0, IPPROTO_ICMPV6, n, now);
  }

  /** One token from the error bucket, or false (counted: "icmp-error-rate-limited"). */
  private takeToken(now: number): boolean {
    const t = Math.min(ERROR_BURST, this.tokens + (now - this.tokensAt) * ERROR_PER_MS);
    this.tokensAt = now;
    if (t < 1) {
      this.tokens = t;
      this.stats.drop("icmp-error-rate-limited");
      return false;
    }
    this.tokens = t - 1;
    return true;
  }
}
