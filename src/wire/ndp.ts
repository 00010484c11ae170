/**
 * Router Advertisements (RFC 4861 §4.2) and the options a router puts in
 * them: Source Link-Layer Address (§4.6.1), Prefix Information (§4.6.2),
 * MTU (§4.6.4), Recursive DNS Server and DNS Search List (RFC 8106 §5).
 * The RA is described by a plain record and written in one pass; the
 * checksum is left to fillIcmpv6Checksum() (it needs the IPv6 addresses).
 *
 *   Router Advertisement:
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Type (134)   |   Code (0)    |          Checksum             |
 *   | Cur Hop Limit |M|O|  Reserved |       Router Lifetime         |
 *   |                         Reachable Time                        |
 *   |                          Retrans Timer                        |
 *   |   Options ...
 */
import { Icmpv6Type, NdpOpt, RA_LEN, emitNdpLinkLayerOpt } from "./icmpv6.ts";
import { writeU16, writeU32 } from "./bytes.ts";
import { copyIpv6 } from "./ipv6.ts";

export const RA_FLAG_MANAGED = 0x80;
export const RA_FLAG_OTHER = 0x40;
/** Prefix Information flags (RFC 4861 §4.6.2): on-link, autonomous address configuration. */
export const PREFIX_FLAG_ONLINK = 0x80;
export const PREFIX_FLAG_AUTONOMOUS = 0x40;

export const PREFIX_OPT_LEN = 32;
export const MTU_OPT_LEN = 8;
export const LINK_LAYER_OPT_LEN = 8;
/** An NDP option's length is one byte counting 8-byte units (RFC 4861 §4.6). */
export const NDP_OPT_MAX_LEN = 255 * 8;

/** One Prefix Information option. */
export interface PrefixInfo {
  /** 16 bytes; bits beyond `length` are written as given (the sender must zero them). */
  prefix: Uint8Array;
  length: number;
  flags: number;
  /** Seconds; 0xffffffff is infinity. */
  validLifetime: number;
  preferredLifetime: number;
}

/** Everything a Router Advertisement says. */
export class RouterAdvertRepr {
  curHopLimit = 0;
  /** RA_FLAG_MANAGED | RA_FLAG_OTHER. */
  flags = 0;
  /** Seconds as a default router; 0: not one. */
  routerLifetime = 0;
  /** Milliseconds; 0: unspecified. */
  reachableTime = 0;
  retransTimer = 0;
  /** Our MAC for the Source Link-Layer Address option; null on links without addresses (tun). */
  sourceMac: Uint8Array | null = null;
  /** The link MTU for an MTU option; 0: none. */
  mtu = 0;
  prefixes: PrefixInfo[] = [];
  /** RDNSS (RFC 8106 §5.1): omitted when empty. */
  dnsServers: readonly Uint8Array[] = [];
  dnsServersLifetime = 0;
  /** DNSSL (RFC 8106 §5.2): names in DNS wire form (RFC 1035 §3.1, no compression); omitted when empty. */
  searchDomains: readonly Uint8Array[] = [];
  searchLifetime = 0;

  /** Bytes of the RDNSS option: 8 + 16 per server (0 when there are none). */
  get rdnssLen(): number {
    return this.dnsServers.length === 0 ? 0 : 8 + 16 * this.dnsServers.length;
  }

  /** Bytes of the DNSSL option: 8 + the names, padded with zeros to a multiple of 8 (0 when there are none). */
  get dnsslLen(): number {
    if (this.searchDomains.length === 0) return 0;
    let n = 8;
    for (const d of this.searchDomains) n += d.length;
    return (n + 7) & ~7;
  }

  /** The whole message's length. */
  get length(): number {
    return (
      RA_LEN +
      (this.sourceMac !== null ? LINK_LAYER_OPT_LEN : 0) +
      (this.mtu !== 0 ? MTU_OPT_LEN : 0) +
      PREFIX_OPT_LEN * this.prefixes.length +
      this.rdnssLen +
      this.dnsslLen
    );
  }

  /**
   * Writes the RA (checksum 0) at out[off]; returns its length, or 0 if it
   * does not fit in `out` or an option would exceed NDP's 2040 bytes.
   */
  emit(out: Uint8Array, off: number): number {
    const n = this.length;
    if (off < 0 || off + n > out.length || this.rdnssLen > NDP_OPT_MAX_LEN || this.dnsslLen > NDP_OPT_MAX_LEN) return 0;
    out[off] = Icmpv6Type.RouterAdvert;
    out[off + 1] = 0;
    writeU16(out, off + 2, 0);
    out[off + 4] = this.curHopLimit;
    out[off + 5] = this.flags & (RA_FLAG_MANAGED | RA_FLAG_OTHER);
    writeU16(out, off + 6, this.routerLifetime);
    writeU32(out, off + 8, this.reachableTime);
    writeU32(out, off + 12, this.retransTimer);
    let at = off + RA_LEN;
    if (this.sourceMac !== null) at += emitNdpLinkLayerOpt(out, at, NdpOpt.SourceLinkAddr, this.sourceMac);
    if (this.mtu !== 0) {
      out[at] = NdpOpt.Mtu;
      out[at + 1] = 1;
      writeU16(out, at + 2, 0);
      writeU32(out, at + 4, this.mtu);
      at += MTU_OPT_LEN;
    }
    for (const p of this.prefixes) {
      out[at] = NdpOpt.PrefixInfo;
      out[at + 1] = 4;
      out[at + 2] = p.length;
      out[at + 3] = p.flags & (PREFIX_FLAG_ONLINK | PREFIX_FLAG_AUTONOMOUS);
      writeU32(out, at + 4, p.validLifetime);
      writeU32(out, at + 8, p.preferredLifetime);
      writeU32(out, at + 12, 0);
      copyIpv6(out, at + 16, p.prefix, 0);
      at += PREFIX_OPT_LEN;
    }
    const rdnss = this.rdnssLen;
    if (rdnss !== 0) {
      out[at] = NdpOpt.RecursiveDns;
      out[at + 1] = rdnss >>> 3;
      writeU16(out, at + 2, 0);
      writeU32(out, at + 4, this.dnsServersLifetime);
      let a = at + 8;
      for (const s of this.dnsServers) {
        copyIpv6(out, a, s, 0);
        a += 16;
      }
      at += rdnss;
    }
    const dnssl = this.dnsslLen;
    if (dnssl !== 0) {
      out[at] = NdpOpt.DnsSearchList;
      out[at + 1] = dnssl >>> 3;
      writeU16(out, at + 2, 0);
      writeU32(out, at + 4, this.searchLifetime);
      let a = at + 8;
      for (const d of this.searchDomains) {
        out.set(d, a);
        a += d.length;
      }
      // RFC 8106 §5.2: the padding after the last name is zeros.
      out.fill(0, a, at + dnssl);
      at += dnssl;
    }
    return at - off;
  }
}

/**
 * The link-local address of an interface with this MAC (RFC 4291 §2.5.1,
 * appendix A; RFC 2464 §4-5): fe80::/64 and the modified EUI-64 (ff:fe in
 * the middle, the universal/local bit flipped).
 */
export function linkLocalFromMac(mac: ArrayLike<number>, out: Uint8Array, outOff = 0): void {
  out[outOff] = 0xfe;
  out[outOff + 1] = 0x80;
  for (let i = 2; i < 8; i++) out[outOff + i] = 0;
  out[outOff + 8] = mac[0]! ^ 0x02;
  out[outOff + 9] = mac[1]!;
  out[outOff + 10] = mac[2]!;
  out[outOff + 11] = 0xff;
  out[outOff + 12] = 0xfe;
  out[outOff + 13] = mac[3]!;
  out[outOff + 14] = mac[4]!;
  out[outOff + 15] = mac[5]!;
}
