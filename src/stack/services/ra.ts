// Router advertisements (RFC 4861 §6.2), so a guest whose interface has
// no static address configures itself: the stack is the link's router,
// from its link-local address (the EUI-64 of its MAC), advertising the
// guest prefix (the gateway's /64) for SLAAC (RFC 4862), the link MTU,
// "other configuration" by stateless DHCPv6 (services/dhcp6.ts), and the
// DNS servers and search list (RFC 8106).
//
// When RAs go out:
//   - periodically to all-nodes (§6.2.4): the first at the first poll,
//     the next two MAX_INITIAL_RTR_ADVERT_INTERVAL apart, then at a random
//     interval between MinRtrAdvInterval and MaxRtrAdvInterval;
//   - in answer to a Router Solicitation (§6.2.6): one from a unicast
//     source with its link-layer address gets a unicast RA at once (a
//     single guest on the link has no other routers to desynchronise
//     from, so the random delay is 0), at most one per source per
//     MIN_DELAY_BETWEEN_RAS, with at most MAX_SOLICITORS sources
//     remembered; one from :: (a host without an address yet) or without
//     the option brings the next multicast RA forward, but never closer
//     than MIN_DELAY_BETWEEN_RAS to the last one.
import { NdpOpt, NDP_OPT_MALFORMED, RouterSolicitView, Icmpv6View, findNdpLinkLayerAddr } from "../../wire/icmpv6.ts";
import { PREFIX_FLAG_AUTONOMOUS, PREFIX_FLAG_ONLINK, RA_FLAG_OTHER, RouterAdvertRepr } from "../../wire/ndp.ts";
import { IPPROTO_ICMPV6 } from "../../wire/ipv4.ts";
import { IPV6_ALL_NODES, copyIpv6, ipv6Equal, ipv6IsUnspecified } from "../../wire/ipv6.ts";
import { WireError } from "../../wire/errors.ts";
import type { Egress } from "../egress.ts";
import type { Stats } from "../stats.ts";
import type { GuestDns6 } from "./guest-dns.ts";

/** RFC 4861 §6.2.1 MaxRtrAdvInterval (its default), and MinRtrAdvInterval's default of 0.33 of it. */
export const MAX_RTR_ADV_INTERVAL_MS = 600_000;
export const MIN_RTR_ADV_INTERVAL_MS = 198_000;
/** RFC 4861 §10 router constants. */
export const MAX_INITIAL_RTR_ADVERT_INTERVAL_MS = 16_000;
export const MAX_INITIAL_RTR_ADVERTISEMENTS = 3;
export const MIN_DELAY_BETWEEN_RAS_MS = 3_000;
/** AdvDefaultLifetime's default, 3 * MaxRtrAdvInterval (§6.2.1). */
export const ROUTER_LIFETIME_S = 1800;
/** AdvValidLifetime and AdvPreferredLifetime defaults (§6.2.1): 30 and 7 days. */
export const PREFIX_VALID_LIFETIME_S = 2_592_000;
export const PREFIX_PREFERRED_LIFETIME_S = 604_800;
/** RDNSS and DNSSL lifetimes: at least 3 * MaxRtrAdvInterval (RFC 8106 §5.1, §5.2). */
export const DNS_LIFETIME_S = 1800;
/** AdvCurHopLimit: the Internet default TTL (§6.2.1). */
export const CUR_HOP_LIMIT = 64;
/** Unicast-answered solicitors remembered for the per-source rate limit (limit "ra-solicitors"). */
export const MAX_SOLICITORS = 16;

export interface RaConfig {
  /** The DNS servers and search list to advertise, read when each RA is built. */
  dns: (now: number) => GuestDns6;
  /** Uniform in [0, 1): the random part of the periodic interval (§6.2.4). */
  random: () => number;
}

export class RouterAdvertiser {
  private readonly repr = new RouterAdvertRepr();
  private readonly icmp = new Icmpv6View();
  private readonly rs = new RouterSolicitView();
  /** When the next multicast RA goes out; -Infinity: at the first poll. */
  private nextAt = -Infinity;
  private lastMulticastAt = -Infinity;
  private multicastSent = 0;
  /** The solicitors answered by unicast lately: 16 bytes each, and when. */
  private readonly solicitors = new Uint8Array(16 * MAX_SOLICITORS);
  private readonly solicitedAt = new Float64Array(MAX_SOLICITORS).fill(-Infinity);

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    /** Our link-local address, the source of every RA (§6.1.2). */
    private readonly linkLocal: Uint8Array,
    /** The gateway's address; its /64 is the advertised prefix. */
    gatewayV6: Uint8Array,
    private readonly cfg: RaConfig,
  ) {
    const r = this.repr;
    r.curHopLimit = CUR_HOP_LIMIT;
    r.flags = RA_FLAG_OTHER;
    r.routerLifetime = ROUTER_LIFETIME_S;
    r.sourceMac = egress.caps.medium === "ethernet" ? egress.mac : null;
    r.mtu = egress.caps.mtu;
    const prefix = new Uint8Array(16);
    prefix.set(gatewayV6.subarray(0, 8));
    r.prefixes = [
      {
        prefix,
        length: 64,
        flags: PREFIX_FLAG_ONLINK | PREFIX_FLAG_AUTONOMOUS,
        validLifetime: PREFIX_VALID_LIFETIME_S,
        preferredLifetime: PREFIX_PREFERRED_LIFETIME_S,
      },
    ];
    r.dnsServersLifetime = DNS_LIFETIME_S;
    r.searchLifetime = DNS_LIFETIME_S;
  }

  /**
   * A Router Solicitation (ICMPv6 type 133) at buf[off, off+len). Checks
   * §6.1.1: hop limit 255, checksum, code 0, 8 bytes at least, valid
   * options, and no Source Link-Layer Address option from ::.
   */
  input(buf: Uint8Array, srcOff: number, dstOff: number, hopLimit: number, off: number, len: number, now: number): void {
    const v = this.icmp;
    if (v.attach(buf, off, len) !== WireError.Ok || !v.verifyChecksum(buf, srcOff, dstOff)) {
      this.stats.drop("icmp6-malformed");
      return;
    }
    if (hopLimit !== 255) {
      this.stats.drop("ndp-bad-hop-limit");
      return;
    }
    const rs = this.rs;
    if (rs.attach(v) !== WireError.Ok) {
      this.stats.drop("ndp-malformed");
      return;
    }
    const lla = findNdpLinkLayerAddr(buf, rs.optionsOff, rs.optionsLen, NdpOpt.SourceLinkAddr);
    const unspecified = ipv6IsUnspecified(buf, srcOff);
    if (lla === NDP_OPT_MALFORMED || (unspecified && lla >= 0)) {
      this.stats.drop("ndp-malformed");
      return;
    }
    // Without its link-layer address (from ::, or left out) the solicitor
    // is answered by multicast: a unicast RA would first need a Neighbor
    // Solicitation, which a host without a route back cannot answer.
    if (lla < 0 && this.egress.caps.medium === "ethernet") {
      const at = Math.max(now, this.lastMulticastAt + MIN_DELAY_BETWEEN_RAS_MS);
      if (at < this.nextAt) this.nextAt = at;
      return;
    }
    const eg = this.egress;
    if (lla >= 0) {
      const released = eg.neighbors.learnV6(buf, srcOff, buf, lla);
      if (released !== null) eg.flushQueued(released);
    }
    if (!this.admitSolicitor(buf, srcOff, now)) return;
    this.send(buf, srcOff, now);
  }

  /**
   * Whether a unicast RA may go to this solicitor now: not if it had one
   * within MIN_DELAY_BETWEEN_RAS, nor if MAX_SOLICITORS others all had
   * one that recently (so a guest forging sources gets at most
   * MAX_SOLICITORS RAs per MIN_DELAY_BETWEEN_RAS).
   */
  private admitSolicitor(buf: Uint8Array, srcOff: number, now: number): boolean {
    const addrs = this.solicitors;
    const at = this.solicitedAt;
    let free = -1;
    for (let i = 0; i < MAX_SOLICITORS; i++) {
      if (ipv6Equal(addrs, i * 16, buf, srcOff)) {
        if (now - at[i]! < MIN_DELAY_BETWEEN_RAS_MS) {
          this.stats.drop("ra-solicit-rate");
          return false;
        }
        at[i] = now;
        return true;
      }
      if (free < 0 && now - at[i]! >= MIN_DELAY_BETWEEN_RAS_MS) free = i;
    }
    if (free < 0) {
      this.stats.limit("ra-solicitors");
      return false;
    }
    copyIpv6(addrs, free * 16, buf, srcOff);
    at[free] = now;
    return true;
  }

  /** Sends the periodic (or brought forward) multicast RA when due; returns when the next one is. */
  poll(now: number): number {
    if (now < this.nextAt) return this.nextAt;
    this.send(IPV6_ALL_NODES as Uint8Array, 0, now);
    this.lastMulticastAt = now;
    this.multicastSent++;
    const random = MIN_RTR_ADV_INTERVAL_MS + this.cfg.random() * (MAX_RTR_ADV_INTERVAL_MS - MIN_RTR_ADV_INTERVAL_MS);
    this.nextAt = now + (this.multicastSent < MAX_INITIAL_RTR_ADVERTISEMENTS ? Math.min(random, MAX_INITIAL_RTR_ADVERT_INTERVAL_MS) : random);
    return this.nextAt;
  }

  /** One RA from our link-local address to dst, hop limit 255 (§6.1.2). */
  private send(dst: Uint8Array, dstOff: number, now: number): void {
    const r = this.repr;
    const dns = this.cfg.dns(now);
    r.dnsServers = dns.servers;
    r.searchDomains = dns.domains;
    const eg = this.egress;
    const at = eg.l4OffV6;
    const n = r.emit(eg.buf, at);
    if (n === 0) {
      this.stats.drop("ra-too-big");
      return;
    }
    eg.checksumV6(this.linkLocal, 0, dst, dstOff, IPPROTO_ICMPV6, at, n, 2);
    eg.sendV6(this.linkLocal, 0, dst, dstOff, IPPROTO_ICMPV6, n, now, 255);
    this.stats.bump("ra-sent");
  }
}
