// The engine: frames and the current time go in, frames and flow events
// come out. It answers ARP and NDP for any address, echo for its own
// addresses (for any destination unless echo.ts forwards them),
// reassembles fragments, and hands TCP and UDP to their layers. It never
// reads a clock, sets a timer or touches a socket; the edge calls
// poll(now) and arms one timer for the deadline it returns.
import { EthernetView, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from "../wire/ethernet.ts";
import { ArpView, ARP_OP_REQUEST, ARP_OP_REPLY } from "../wire/arp.ts";
import { Ipv4View, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 } from "../wire/ipv4.ts";
import { Ipv6View, Ipv6ExtResult, walkExtensions, ipv6Equal, ipv6IsMulticast, ipv6IsUnspecified } from "../wire/ipv6.ts";
import { Icmpv6Type } from "../wire/icmpv6.ts";
import { linkLocalFromMac } from "../wire/ndp.ts";
import { ALL_DHCP_SERVERS } from "../wire/dhcp6.ts";
import { WireError } from "../wire/errors.ts";
import { writeU16 } from "../wire/bytes.ts";
import { finish, sum16 } from "../wire/checksum.ts";
import { RxMeta, type DeviceCaps, type FrameSink } from "./device.ts";
import { DEFAULT_MAX_NEIGHBORS, v6Key } from "./neighbors.ts";
import { Egress } from "./egress.ts";
import { Icmp } from "./icmp.ts";
import { EchoLayer } from "./echo.ts";
import { Reassembler } from "./reassembly.ts";
import type { Stats } from "./stats.ts";
import { TcpLayer, type TcpEvents } from "./tcp/layer.ts";
import type { TcpConfig } from "./tcp/connection.ts";
import type { FlowSecret } from "./secret.ts";
import { UdpLayer, type UdpEvents } from "./udp.ts";
import { Dhcp4Server, type Dhcp4Config } from "./services/dhcp4.ts";
import { RouterAdvertiser, type RaConfig } from "./services/ra.ts";
import { Dhcp6Server, type Dhcp6Config } from "./services/dhcp6.ts";
import type { GuestNetV4 } from "../wire/guest-net.ts";

export interface StackConfig {
  /** Our MAC on the tap: 70:71:aa:4b:29:aa, as upstream. */
  mac: Uint8Array;
  /** The guest's IPv4 network: our address on it (the gateway), its broadcast, DHCP's pool. */
  netV4: GuestNetV4;
  /** Our IPv6 address: fd00::2. */
  gatewayV6: Uint8Array;
  tcp: TcpConfig;
  /** Keyed ISNs, timestamp offsets and ports; a fixed key in tests. */
  secret: FlowSecret;
  /** Idle timeout of UDP flows (ms; 125 s as upstream). */
  udpIdleMs?: number;
  /** Neighbour entries at most, both families, resolved or not (-max-neighbors; default 1024). */
  maxNeighbors?: number;
  /** The DHCPv4 server's settings (-dhcp); absent: no server. Tap only. */
  dhcp4?: Dhcp4Config;
  /** Router advertisements (-ra); absent: none. */
  ra?: RaConfig;
  /** Stateless DHCPv6 (with -ra); absent: none. */
  dhcp6?: Dhcp6Config;
}

export type StackEvents = TcpEvents & UdpEvents;

export class Stack {
  readonly egress: Egress;
  readonly tcp: TcpLayer;
  readonly udp: UdpLayer;
  readonly icmp: Icmp;
  /** Guest pings to other hosts, once the host starts forwarding them (-icmp=forward). */
  readonly echo: EchoLayer;
  readonly dhcp4: Dhcp4Server | null;
  readonly ra: RouterAdvertiser | null;
  readonly dhcp6: Dhcp6Server | null;
  /** Our IPv6 link-local address (fe80:: and the EUI-64 of our MAC): the router's address in RAs and DHCPv6. */
  readonly linkLocal = new Uint8Array(16);
  private readonly reassembler: Reassembler;
  private readonly ethernet: boolean;
  private readonly eth = new EthernetView();
  private readonly arp = new ArpView();
  private readonly ip4 = new Ipv4View();
  private readonly ip6 = new Ipv6View();
  private readonly ext = new Ipv6ExtResult();
  /** Reassembled datagrams were checked by nobody: verify their checksums. */
  private readonly reassembledMeta = new RxMeta();
  private pollNow = 0;
  /** The guest network's broadcast address (cfg.netV4.broadcast). */
  private readonly subnetBroadcastV4: number;
  /** cfg.netV4.gateway, read per frame. */
  private readonly gatewayV4: number;
  private readonly solicit: (family: 4 | 6, v4: number, v6: Uint8Array | null) => void;

  constructor(
    readonly caps: DeviceCaps,
    sink: FrameSink,
    events: StackEvents,
    private readonly stats: Stats,
    readonly cfg: StackConfig,
  ) {
    this.ethernet = caps.medium === "ethernet";
    this.egress = new Egress(caps, sink, cfg.mac, cfg.netV4.gateway, cfg.gatewayV6, stats, cfg.maxNeighbors ?? DEFAULT_MAX_NEIGHBORS);
    this.subnetBroadcastV4 = cfg.netV4.broadcast;
    this.gatewayV4 = cfg.netV4.gateway;
    this.icmp = new Icmp(this.egress, stats, cfg.netV4.gateway, cfg.gatewayV6);
    this.echo = new EchoLayer(this.egress, stats, this.icmp, cfg.secret);
    this.tcp = new TcpLayer(this.egress, stats, cfg.tcp, events, this.icmp, cfg.secret);
    this.udp = new UdpLayer(this.egress, stats, events, cfg.secret, cfg.udpIdleMs);
    this.reassembler = new Reassembler(stats);
    this.dhcp4 = this.ethernet && cfg.dhcp4 !== undefined ? new Dhcp4Server(this.egress, stats, cfg.netV4, cfg.dhcp4) : null;
    linkLocalFromMac(cfg.mac, this.linkLocal);
    this.ra = cfg.ra !== undefined ? new RouterAdvertiser(this.egress, stats, this.linkLocal, cfg.gatewayV6, cfg.ra) : null;
    this.dhcp6 = cfg.dhcp6 !== undefined ? new Dhcp6Server(this.egress, stats, this.linkLocal, cfg.dhcp6) : null;
    this.solicit = this.egress.solicit;
  }

  /**
   * Sends the ARP request "who-has target tell 10.0.2.2"
   * (docs/compatibility.md, startup step 17); upstream primes the guest's
   * address at start.
   */
  primeArp(target: number): void {
    if (!this.ethernet) return;
    this.egress.sendArp(ARP_OP_REQUEST, this.cfg.mac, 0, this.cfg.netV4.gateway, null, 0, target, null);
  }

  // =====================================================================
  // Input
  // =====================================================================

  /**
   * One frame from the device, valid only during the call. A throw while
   * handling it (a bug; one connection's own is confined by the TCP layer)
   * drops the frame and is counted: the next frame is handled as usual.
   */
  input(buf: Uint8Array, off: number, len: number, meta: RxMeta, now: number): void {
    try {
      this.inputFrame(buf, off, len, meta, now);
    } catch (e) {
      this.stats.fault("frame", e);
    }
  }

  private inputFrame(buf: Uint8Array, off: number, len: number, meta: RxMeta, now: number): void {
    if (!this.ethernet) {
      this.inputIp(buf, off, len, -1, meta, now);
      return;
    }
    const eth = this.eth;
    if (eth.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("eth-truncated");
      return;
    }
    switch (eth.ethertype) {
      case ETHERTYPE_IPV4:
        this.inputV4(buf, eth.payloadOff, eth.payloadLen, eth.srcOff, meta, now);
        return;
      case ETHERTYPE_IPV6:
        this.inputV6(buf, eth.payloadOff, eth.payloadLen, eth.srcOff, meta, now);
        return;
      case ETHERTYPE_ARP:
        this.inputArp(buf, eth.payloadOff, eth.payloadLen, eth.srcOff);
        return;
      default:
        this.stats.drop("eth-unsupported-type");
    }
  }

  private inputIp(buf: Uint8Array, off: number, len: number, srcMacOff: number, meta: RxMeta, now: number): void {
    if (len < 1) {
      this.stats.drop("ip-truncated");
      return;
    }
    const version = buf[off]! >>> 4;
    if (version === 4) this.inputV4(buf, off, len, srcMacOff, meta, now);
    else if (version === 6) this.inputV6(buf, off, len, srcMacOff, meta, now);
    else this.stats.drop("ip-bad-version");
  }

  /**
   * ARP (RFC 826): we answer requests for any IPv4 address with our MAC
   * (promiscuous, as upstream: docs/compatibility.md, What the stack
   * answers), except probes and announcements for the
   * guest's own address (RFC 5227: sender 0.0.0.0, or sender == target),
   * which must stay unanswered or the guest thinks its address is taken.
   * A sender that is not one host's address is neither learnt nor answered.
   */
  private inputArp(buf: Uint8Array, off: number, len: number, srcMacOff: number): void {
    const a = this.arp;
    if (a.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("arp-malformed");
      return;
    }
    const sender = a.senderIp;
    const target = a.targetIp;
    if (!this.unicastV4(sender)) return;
    const released = this.egress.neighbors.learnV4(sender, buf, a.senderHwOff);
    if (released !== null) this.egress.flushQueued(released);
    if (a.operation !== ARP_OP_REQUEST || sender === target) return;
    const eg = this.egress;
    eg.sendArp(ARP_OP_REPLY, eg.mac, 0, target, buf, a.senderHwOff, sender, buf.subarray(srcMacOff, srcMacOff + 6));
  }

  private inputV4(buf: Uint8Array, off: number, len: number, srcMacOff: number, meta: RxMeta, now: number): void {
    const ip = this.ip4;
    if (ip.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("ipv4-malformed");
      return;
    }
    if (!ip.verifyChecksum()) {
      this.stats.drop("ipv4-bad-checksum");
      return;
    }
    const src = ip.src;
    const dst = ip.dst;
    // DHCPv4 (RFC 2131 §4.1): a client without an address sends from
    // 0.0.0.0 to 255.255.255.255, one renewing sends to us; port 67 to
    // either is the server's, before the checks below and UDP flows.
    const dhcp = this.dhcp4;
    if (dhcp !== null && ip.protocol === IPPROTO_UDP && !ip.isFragment && (dst === 0xffffffff || dst === this.gatewayV4) && dhcp.claims(buf, ip.payloadOff, ip.payloadLen)) {
      dhcp.inputV4(src, dst, buf, ip.payloadOff, ip.payloadLen, meta, now);
      return;
    }
    // Only unicast: multicast, broadcast (limited, and the guest subnet's)
    // and "this network" are not ours to terminate.
    if (dst >>> 28 === 0xe || dst === 0xffffffff || dst >>> 24 === 0 || dst === this.subnetBroadcastV4) {
      this.stats.drop("ipv4-not-unicast");
      return;
    }
    // Nor is anything answered, learnt or opened for a source that is not
    // one host: an echo reply, an ICMP error (RFC 1122 §3.2.2) or a RST
    // (§4.2.3.10) would go to a group or to nobody, and each cost a
    // neighbour entry and a broadcast ARP request.
    if (!this.unicastV4(src)) {
      this.stats.drop("non-unicast-source");
      return;
    }
    if (srcMacOff >= 0) {
      const released = this.egress.neighbors.learnV4(src, buf, srcMacOff);
      if (released !== null) this.egress.flushQueued(released);
    }
    if (ip.isFragment) {
      const key = `${src}>${dst}/${ip.protocol}/${ip.ident}`;
      const whole = this.reassembler.add(key, ip.fragOffset, ip.moreFragments, buf, ip.payloadOff, ip.payloadLen, off, ip.headerLen, -1, 0, now);
      if (whole === null) return;
      // A fresh unfragmented header: total length, no MF/offset, checksum.
      const b = whole.buf;
      const h = whole.off;
      writeU16(b, h + 2, whole.len);
      writeU16(b, h + 6, 0);
      writeU16(b, h + 10, 0);
      writeU16(b, h + 10, finish(sum16(b, h, whole.headerLen)));
      this.reassembledMeta.clear();
      this.inputV4(b, h, whole.len, -1, this.reassembledMeta, now);
      this.reassembler.release(whole);
      return;
    }
    const l4 = ip.payloadOff;
    const l4Len = ip.payloadLen;
    switch (ip.protocol) {
      case IPPROTO_TCP:
        this.tcp.inputV4(src, dst, buf, l4, l4Len, meta, now);
        return;
      case IPPROTO_UDP:
        this.udp.inputV4(src, dst, buf, l4, l4Len, meta, now);
        return;
      case IPPROTO_ICMP:
        if (this.icmp.inputV4(src, dst, buf, l4, l4Len, now)) this.tcp.icmpError(this.icmp.tcpError, now);
        return;
      default:
        this.stats.drop("ipv4-unknown-protocol");
    }
  }

  private inputV6(buf: Uint8Array, off: number, len: number, srcMacOff: number, meta: RxMeta, now: number): void {
    const ip = this.ip6;
    if (ip.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("ipv6-malformed");
      return;
    }
    const ext = this.ext;
    if (walkExtensions(ip, ext) !== WireError.Ok) {
      this.stats.drop("ipv6-bad-extension");
      return;
    }
    const srcOff = ip.srcOff;
    const dstOff = ip.dstOff;
    const multicast = ipv6IsMulticast(buf, dstOff);
    // A multicast source is never valid (RFC 4291 §2.7); :: is, for
    // Duplicate Address Detection and MLD (ICMPv6, never fragmented), and
    // gets no answer there. Nothing else is answered or learnt for them.
    const unspecified = ipv6IsUnspecified(buf, srcOff);
    if (ipv6IsMulticast(buf, srcOff) || (unspecified && (ext.hasFragment || ext.protocol !== IPPROTO_ICMPV6))) {
      this.stats.drop("non-unicast-source");
      return;
    }
    if (srcMacOff >= 0 && !unspecified && !multicast) {
      const released = this.egress.neighbors.learnV6(buf, srcOff, buf, srcMacOff);
      if (released !== null) this.egress.flushQueued(released);
    }
    if (ext.hasFragment) {
      // A Fragment header inside a reassembled datagram: fragments of
      // fragments are not a thing any sender needs (RFC 8200 §4.5).
      if (meta === this.reassembledMeta) {
        this.stats.drop("ipv6-nested-fragment");
        return;
      }
      const key = `${v6Key(buf, srcOff)}>${v6Key(buf, dstOff)}/${ext.fragIdent}`;
      const fragLen = off + ip.len - ext.fragmentableOff;
      const whole = this.reassembler.add(
        key,
        ext.fragOffset,
        ext.moreFragments,
        buf,
        ext.fragmentableOff,
        fragLen,
        off,
        ext.fragHeaderOff - off,
        // Drop the Fragment header (RFC 8200 §4.5): its Next Header moves
        // into the header that named it.
        ext.fragPrevNextHeaderOff - off,
        buf[ext.fragHeaderOff]!,
        now,
      );
      if (whole === null) return;
      // Payload Length: the whole payload, and no Fragment header.
      const b = whole.buf;
      const h = whole.off;
      writeU16(b, h + 4, whole.headerLen - 40 + whole.payloadLen);
      this.reassembledMeta.clear();
      this.inputV6(b, h, whole.len, -1, this.reassembledMeta, now);
      this.reassembler.release(whole);
      return;
    }
    const l4 = ext.offset;
    const l4Len = off + ip.len - l4;
    // Stateless DHCPv6 (RFC 8415 §7.1): clients send from their link-local
    // address to ff02::1:2, the one multicast group besides ICMPv6 we take.
    if (multicast && ext.protocol === IPPROTO_UDP && this.dhcp6 !== null && ipv6Equal(buf, dstOff, ALL_DHCP_SERVERS, 0)) {
      this.dhcp6.input(buf, srcOff, dstOff, srcMacOff, l4, l4Len, meta, now);
      return;
    }
    if (multicast && ext.protocol !== IPPROTO_ICMPV6) {
      this.stats.drop("ipv6-multicast");
      return;
    }
    switch (ext.protocol) {
      case IPPROTO_TCP:
        this.tcp.inputV6(buf, srcOff, dstOff, l4, l4Len, meta, now);
        return;
      case IPPROTO_UDP:
        this.udp.inputV6(buf, srcOff, dstOff, l4, l4Len, meta, now);
        return;
      case IPPROTO_ICMPV6:
        // Router Solicitations (RFC 4861 §6.2.6), also from ::, to the advertiser.
        if (this.ra !== null && l4Len > 0 && buf[l4] === Icmpv6Type.RouterSolicit) {
          this.ra.input(buf, srcOff, dstOff, ip.hopLimit, l4, l4Len, now);
          return;
        }
        if (this.icmp.inputV6(buf, srcOff, dstOff, ip.hopLimit, l4, l4Len, now)) this.tcp.icmpError(this.icmp.tcpError, now);
        return;
      default:
        this.stats.drop("ipv6-unknown-protocol");
    }
  }

  /** Whether an IPv4 address names one host: not 0.0.0.0/8, multicast, 240.0.0.0/4 (with 255.255.255.255) or the guest subnet's broadcast. */
  private unicastV4(a: number): boolean {
    return a >>> 24 !== 0 && a >>> 28 < 0xe && a !== this.subnetBroadcastV4;
  }

  // =====================================================================
  // Time
  // =====================================================================

  /**
   * Flushes what input deferred (coalesced ACKs), runs every due timer,
   * and returns when it next needs to be called (Infinity: only on input).
   */
  poll(now: number): number {
    this.pollNow = now;
    this.tcp.flush(now);
    let next = this.tcp.poll(now);
    next = Math.min(next, this.udp.poll(now));
    next = Math.min(next, this.echo.poll(now));
    next = Math.min(next, this.reassembler.expire(now));
    next = Math.min(next, this.egress.neighbors.poll(now, this.solicit));
    if (this.ra !== null) next = Math.min(next, this.ra.poll(now));
    // Timers may have queued ACKs of their own.
    this.tcp.flush(now);
    return next;
  }

  /** The `now` of the last poll (for callers without a clock at hand). */
  get lastPoll(): number {
    return this.pollNow;
  }
}

