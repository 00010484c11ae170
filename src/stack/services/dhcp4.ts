// The DHCPv4 server (RFC 2131, options RFC 2132) on the guest link, as
// the gateway (10.0.2.2 by default): a client gets an address of a small
// pool, the guest network's netmask and broadcast address, the gateway as
// router, DNS servers
// and search domains from the host side (Dhcp4HostInfo), the link's MTU,
// and a lease.
//
// Addresses: POOL_SIZE leases from the guest address (10.0.2.100 by
// default: the one -L forwards and the README's static setup use), so
// 10.0.2.100 to 10.0.2.115. A client keeps the address it had; a new
// client gets the guest address when that is not
// leased to someone else, else the first never-used address, else the one
// that expired longest ago. Clients are told apart by chaddr (Ethernet).
//
// Nothing is recorded for a DISCOVER: an offer is a proposal, committed by
// the client's REQUEST (RFC 2131 §4.3.1 lets a server reserve offered
// addresses; we do not, so DISCOVERs from any number of MACs cost no
// state, and two clients offered one address at once sort it out by the
// second one's NAK). The table is the pool, so it is bounded by
// construction: when every address is leased and unexpired, a DISCOVER
// from one more client is ignored and counted (limit "dhcp-leases").
//
// The server is authoritative for the link: a REQUEST for a pool address
// that is free is granted even without a record of the client (a client
// rebooting with a lease from before our start, RFC 2131 §4.3.2
// INIT-REBOOT and RENEWING), one for an address outside the pool or leased
// to another client gets a NAK. Relayed messages (giaddr set) cannot occur
// on a point-to-point tap and are dropped.
import { UdpView, UDP_HEADER_LEN } from "../../wire/udp.ts";
import { IPPROTO_UDP, IPV4_HEADER_LEN } from "../../wire/ipv4.ts";
import { WireError } from "../../wire/errors.ts";
import { writeU16 } from "../../wire/bytes.ts";
import {
  BOOTREQUEST,
  DHCP4_CLIENT_PORT,
  DHCP4_DEFAULT_MAX_LEN,
  DHCP4_FLAG_BROADCAST,
  DHCP4_SERVER_PORT,
  Dhcp4Options,
  Dhcp4View,
  Dhcp4Writer,
  DhcpMsg,
  DhcpOpt,
  encodeDomainSearch,
  parseDhcp4Options,
} from "../../wire/dhcp4.ts";
import type { RxMeta } from "../device.ts";
import type { Egress } from "../egress.ts";
import type { Stats } from "../stats.ts";
import type { GuestNetV4 } from "../../wire/guest-net.ts";

/** Leases at most: the guest address and the 15 after it. */
export const POOL_SIZE = 16;
/** How long an address a client declined (RFC 2131 §4.3.3: in use by someone else) is not offered. */
export const DECLINE_HOLD_MS = 10 * 60_000;
/** Default lease time, seconds (libslirp's too). */
export const DEFAULT_LEASE_SECONDS = 86_400;

const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const NAK_TEXT = new TextEncoder().encode("address not available");

/** What the host side knows and may change at any time (the host's resolv.conf). */
export interface Dhcp4HostInfo {
  /** IPv4 DNS servers to offer, in order (option 6); empty: none. */
  dnsServers(now: number): readonly number[];
  /** Search domains (option 119; the first is also option 15); empty: none. */
  searchDomains(now: number): readonly string[];
}

export interface Dhcp4Config {
  /** Lease time offered, seconds. */
  leaseSeconds: number;
  info: Dhcp4HostInfo;
}

/** One pool address. Leased while now < expires; a client's MAC is remembered after it expires. */
class Lease {
  /** The client's chaddr as a 48-bit number; -1: nobody's. */
  mac = -1;
  /** ms; 0: never leased. A declined address has no MAC and expires when it may be offered again. */
  expires = 0;
}

export class Dhcp4Server {
  private readonly leases: Lease[] = [];
  private readonly udp = new UdpView();
  private readonly msg = new Dhcp4View();
  private readonly opts = new Dhcp4Options();
  private readonly out = new Dhcp4Writer();
  private readonly serverIp: number;
  private readonly firstAddress: number;
  private readonly netmask: number;
  private readonly broadcast: number;
  private readonly routers: number[];
  /** Options 15 and 119 of the last search list seen, re-encoded when the host's list changes. */
  private searchOf: readonly string[] | null = null;
  private domainName: Uint8Array = new Uint8Array(0);
  private domainSearch: Uint8Array = new Uint8Array(0);

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    /** The guest network: its gateway is our address (server identifier and router), its guest address the pool's first. */
    net: GuestNetV4,
    private readonly cfg: Dhcp4Config,
  ) {
    for (let i = 0; i < POOL_SIZE; i++) this.leases.push(new Lease());
    this.serverIp = net.gateway;
    this.firstAddress = net.guest;
    this.netmask = net.netmask;
    this.broadcast = net.broadcast;
    this.routers = [net.gateway];
  }

  /** Whether the UDP datagram at buf[off, off+len) is for the server (port 67). */
  claims(buf: Uint8Array, off: number, len: number): boolean {
    return len >= 4 && ((buf[off + 2]! << 8) | buf[off + 3]!) === DHCP4_SERVER_PORT;
  }

  /** A client message: src is 0.0.0.0 or the client's address, dst the limited broadcast or us. */
  inputV4(src: number, dst: number, buf: Uint8Array, off: number, len: number, meta: RxMeta, now: number): void {
    const u = this.udp;
    if (u.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("dhcp-malformed");
      return;
    }
    if (!meta.checksumTrusted && !u.verifyChecksumV4(src, dst)) {
      this.stats.drop("dhcp-bad-checksum");
      return;
    }
    const m = this.msg;
    if (m.attach(buf, u.payloadOff, u.payloadLen) !== WireError.Ok || m.op !== BOOTREQUEST || parseDhcp4Options(m, this.opts) !== WireError.Ok) {
      this.stats.drop("dhcp-malformed");
      return;
    }
    if (m.htype !== 1 || m.hlen !== 6) {
      this.stats.drop("dhcp-not-ethernet");
      return;
    }
    if (m.giaddr !== 0) {
      this.stats.drop("dhcp-relayed");
      return;
    }
    const c = m.chaddrOff;
    const mac = (buf[c]! * 0x10000 + ((buf[c + 1]! << 8) | buf[c + 2]!)) * 0x1000000 + ((buf[c + 3]! << 16) | (buf[c + 4]! << 8) | buf[c + 5]!);
    const o = this.opts;
    // A message naming another server is for that server (RFC 2131 §4.3.2).
    if (o.serverId !== 0 && o.serverId !== this.serverIp) {
      this.stats.drop("dhcp-other-server");
      return;
    }
    switch (o.messageType) {
      case DhcpMsg.DISCOVER:
        this.discover(mac, now);
        return;
      case DhcpMsg.REQUEST:
        this.request(mac, now);
        return;
      case DhcpMsg.DECLINE:
        this.decline(mac, now);
        return;
      case DhcpMsg.RELEASE:
        this.release(mac, now);
        return;
      case DhcpMsg.INFORM:
        this.inform(now);
        return;
      default:
        this.stats.drop("dhcp-unknown-type");
    }
  }

  /** RFC 2131 §4.3.1: an offer, recorded nowhere. */
  private discover(mac: number, now: number): void {
    const i = this.choose(mac, this.opts.requestedIp, now);
    if (i < 0) {
      this.stats.limit("dhcp-leases");
      return;
    }
    this.stats.bump("dhcp-offer");
    this.reply(DhcpMsg.OFFER, this.firstAddress + i, true, now);
  }

  /**
   * RFC 2131 §4.3.2: SELECTING (server identifier and requested address),
   * INIT-REBOOT (requested address only), RENEWING (unicast) and REBINDING
   * (broadcast), both with ciaddr only.
   */
  private request(mac: number, now: number): void {
    const o = this.opts;
    const ciaddr = this.msg.ciaddr;
    let want: number;
    if (o.requestedIp !== 0) want = o.requestedIp;
    else if (o.serverId === 0 && ciaddr !== 0) want = ciaddr;
    else {
      this.stats.drop("dhcp-malformed");
      return;
    }
    const i = this.indexOf(want);
    if (i < 0 || !this.available(i, mac, now)) {
      this.stats.bump("dhcp-nak");
      this.nak();
      return;
    }
    for (const l of this.leases) {
      if (l.mac === mac) {
        l.mac = -1;
        l.expires = 0;
      }
    }
    const l = this.leases[i]!;
    l.mac = mac;
    l.expires = now + this.cfg.leaseSeconds * 1000;
    this.stats.bump("dhcp-ack");
    this.reply(DhcpMsg.ACK, want, true, now);
  }

  /** RFC 2131 §4.3.3: the address is in use by another host; it is not offered for a while. */
  private decline(mac: number, now: number): void {
    const i = this.indexOf(this.opts.requestedIp);
    if (i < 0 || this.leases[i]!.mac !== mac) return;
    const l = this.leases[i]!;
    l.mac = -1;
    l.expires = now + DECLINE_HOLD_MS;
    this.stats.bump("dhcp-decline");
  }

  /** RFC 2131 §4.3.4: the lease ends now; the address stays the client's next choice. */
  private release(mac: number, now: number): void {
    const i = this.indexOf(this.msg.ciaddr);
    if (i < 0 || this.leases[i]!.mac !== mac) return;
    this.leases[i]!.expires = now;
    this.stats.bump("dhcp-release");
  }

  /** RFC 2131 §4.3.5: configuration for a client with its own address, no lease. */
  private inform(now: number): void {
    if (this.msg.ciaddr === 0) {
      this.stats.drop("dhcp-malformed");
      return;
    }
    this.stats.bump("dhcp-inform");
    this.reply(DhcpMsg.ACK, 0, false, now);
  }

  /** The pool index of `ip`, or -1. */
  private indexOf(ip: number): number {
    const i = ip - this.firstAddress;
    return i >= 0 && i < POOL_SIZE ? i : -1;
  }

  /** Whether pool address i may be leased to `mac`: it is its own, or nobody's now. */
  private available(i: number, mac: number, now: number): boolean {
    const l = this.leases[i]!;
    return l.mac === mac || l.expires <= now;
  }

  /** The address to offer `mac` (see the top of the file), or -1 when every address is leased. */
  private choose(mac: number, requested: number, now: number): number {
    const ls = this.leases;
    for (let i = 0; i < POOL_SIZE; i++) if (ls[i]!.mac === mac) return i;
    const r = this.indexOf(requested);
    if (r >= 0 && ls[r]!.expires <= now) return r;
    if (ls[0]!.expires <= now) return 0;
    let oldest = -1;
    for (let i = 1; i < POOL_SIZE; i++) {
      const l = ls[i]!;
      if (l.expires === 0) return i;
      if (l.expires <= now && (oldest < 0 || l.expires < ls[oldest]!.expires)) oldest = i;
    }
    return oldest;
  }

  /**
   * OFFER or ACK with the configuration; `yiaddr` 0 and no lease times for
   * an INFORM's ACK. Sent per RFC 2131 §4.1: to ciaddr when the client has
   * one, else broadcast if it asked, else to yiaddr at its MAC.
   */
  private reply(type: number, yiaddr: number, lease: boolean, now: number): void {
    const m = this.msg;
    const eg = this.egress;
    const at = eg.l4OffV4 + UDP_HEADER_LEN;
    const w = this.out;
    const ciaddr = type === DhcpMsg.ACK ? m.ciaddr : 0;
    w.begin(eg.buf, at, this.maxLen(), m, ciaddr, yiaddr, 0);
    w.u8(DhcpOpt.MESSAGE_TYPE, type);
    w.u32(DhcpOpt.SERVER_ID, this.serverIp);
    if (lease) {
      const s = this.cfg.leaseSeconds;
      w.u32(DhcpOpt.LEASE_TIME, s);
      // RFC 2131 §4.4.5's defaults, sent so no client has to compute them.
      w.u32(DhcpOpt.RENEWAL_TIME, Math.floor(s / 2));
      w.u32(DhcpOpt.REBINDING_TIME, Math.floor((s * 7) / 8));
    }
    w.u32(DhcpOpt.SUBNET_MASK, this.netmask);
    w.addresses(DhcpOpt.ROUTER, this.routers);
    w.u32(DhcpOpt.BROADCAST, this.broadcast);
    w.addresses(DhcpOpt.DNS, this.cfg.info.dnsServers(now));
    w.u16(DhcpOpt.MTU, Math.min(0xffff, this.egress.caps.mtu));
    this.encodeSearch(now);
    if (this.domainName.length > 0) w.bytes(DhcpOpt.DOMAIN_NAME, this.domainName);
    if (this.domainSearch.length > 0) w.bytes(DhcpOpt.DOMAIN_SEARCH, this.domainSearch);
    const dst = ciaddr !== 0 ? ciaddr : (m.flags & DHCP4_FLAG_BROADCAST) !== 0 ? 0xffffffff : yiaddr;
    this.send(w.end(), dst, dst === 0xffffffff ? BROADCAST_MAC : m.buf, dst === 0xffffffff ? 0 : m.chaddrOff);
  }

  /** RFC 2131 §4.3.2: a NAK, always broadcast (§4.1). */
  private nak(): void {
    const eg = this.egress;
    const w = this.out;
    w.begin(eg.buf, eg.l4OffV4 + UDP_HEADER_LEN, DHCP4_DEFAULT_MAX_LEN, this.msg, 0, 0, 0);
    w.u8(DhcpOpt.MESSAGE_TYPE, DhcpMsg.NAK);
    w.u32(DhcpOpt.SERVER_ID, this.serverIp);
    w.bytes(DhcpOpt.MESSAGE, NAK_TEXT);
    this.send(w.end(), 0xffffffff, BROADCAST_MAC, 0);
  }

  /** The UDP header in front of the message at l4OffV4 + 8, then out at the given MAC. */
  private send(len: number, dst: number, mac: Uint8Array, macOff: number): void {
    const eg = this.egress;
    const at = eg.l4OffV4;
    const l4Len = UDP_HEADER_LEN + len;
    const b = eg.buf;
    writeU16(b, at, DHCP4_SERVER_PORT);
    writeU16(b, at + 2, DHCP4_CLIENT_PORT);
    writeU16(b, at + 4, l4Len);
    writeU16(b, at + 6, 0);
    eg.checksumV4(this.serverIp, dst, IPPROTO_UDP, at, l4Len, 6);
    eg.sendV4Link(this.serverIp, dst, mac, macOff, IPPROTO_UDP, l4Len);
  }

  /** The largest message the client takes (option 57, at least 576-byte datagrams) that fits the link. */
  private maxLen(): number {
    const asked = this.opts.maxMessageSize - IPV4_HEADER_LEN - UDP_HEADER_LEN;
    return Math.min(Math.max(asked, DHCP4_DEFAULT_MAX_LEN), this.egress.caps.mtu - IPV4_HEADER_LEN - UDP_HEADER_LEN);
  }

  /** Options 15 and 119 for the host's search list, re-encoded only when the list object changes. */
  private encodeSearch(now: number): void {
    const list = this.cfg.info.searchDomains(now);
    if (list === this.searchOf) return;
    this.searchOf = list;
    this.domainSearch = encodeDomainSearch(list);
    const first = list.find((d) => encodeDomainSearch([d]).length > 0);
    this.domainName = first === undefined ? new Uint8Array(0) : new TextEncoder().encode(first.replace(/\.$/, ""));
  }
}
