// What router advertisements (RDNSS, DNSSL) and stateless DHCPv6
// (options 23, 24) tell the guest about DNS, read from the host when they
// answer, so a changed resolv.conf shows in the next RA or Reply:
// - the DNS forwarder on (-enable-dns): fd00::3, nothing else;
// - off: the host's IPv6 resolvers from resolv.conf that the guest can
//   reach. Loopback (::1) and link-local (fe80::/10, whose zone means a
//   host interface) ones are the host's own or its link's: to the guest
//   they would be its own loopback or link, so they are left out; the
//   others only if the routing policy lets a guest UDP flow to their port
//   53 through (-enable-host, -enable-routing, -allow/-deny). With none
//   left, no RDNSS and no option 23: a guest told of a server nobody
//   answers at would wait on every lookup. IPv4 resolvers are DHCPv4's.
// - search domains: the host's resolv.conf `search` or `domain` line,
//   either way; names that are not valid DNS names are left out, and the
//   list ends before MAX_SEARCH_BYTES.
import { encodeDnsName } from "../../wire/dns.ts";
import { ipv6FromText, type IP } from "../../wire/addr.ts";
import { ipv6IsLinkLocal, ipv6IsLoopback, ipv6IsMulticast, ipv6IsUnspecified, ipv6IsV4Mapped } from "../../wire/ipv6.ts";
import { MAX_DNS_SERVERS, MAX_SEARCH_BYTES, type GuestDns6 } from "../../stack/services/guest-dns.ts";
import { DNS_V6 } from "../flows/dns-forwarder.ts";
import type { ResolvConf } from "./resolv-conf.ts";

const DNS_PORT = 53;
const FORWARDER: readonly Uint8Array[] = [ipv6FromText(DNS_V6)!];
/** A guest flood of Information-requests reads the host's state at most this often. */
export const REFRESH_MS = 1000;

export class HostDns6 {
  private cached: GuestDns6 = { servers: [], domains: [] };
  private cachedAt = -Infinity;
  /** The resolv.conf search array the encoded domains came from (the same array until the file changes). */
  private searchFrom: readonly string[] | null = null;
  private domains: readonly Uint8Array[] = [];

  constructor(
    private readonly resolvConf: ResolvConf,
    /** -enable-dns (or run mode's default). */
    private readonly forwarder: boolean,
    /** Whether the routing policy lets a guest UDP flow to this address and port through. */
    private readonly allowed: (ip: IP, port: number) => boolean,
  ) {}

  /** The lists as of `now` (ms of the stack's clock). */
  get(now: number): GuestDns6 {
    if (now - this.cachedAt < REFRESH_MS) return this.cached;
    this.cachedAt = now;
    this.cached = { servers: this.servers(now), domains: this.searchDomains(now) };
    return this.cached;
  }

  private servers(now: number): readonly Uint8Array[] {
    if (this.forwarder) return FORWARDER;
    const out: Uint8Array[] = [];
    for (const ip of this.resolvConf.servers(now)) {
      const b = ip.bytes;
      if (ip.family !== 6 || ipv6IsLoopback(b) || ipv6IsLinkLocal(b) || ipv6IsUnspecified(b) || ipv6IsMulticast(b) || ipv6IsV4Mapped(b)) continue;
      if (!this.allowed(ip, DNS_PORT)) continue;
      out.push(b);
      if (out.length === MAX_DNS_SERVERS) break;
    }
    return out;
  }

  private searchDomains(now: number): readonly Uint8Array[] {
    const search = this.resolvConf.search(now);
    if (search === this.searchFrom) return this.domains;
    const out: Uint8Array[] = [];
    let bytes = 0;
    for (const name of search) {
      let wire: Uint8Array;
      try {
        wire = encodeDnsName(name);
      } catch {
        continue;
      }
      // The root (a lone 0 byte) searches nothing.
      if (wire.length < 2) continue;
      if (bytes + wire.length > MAX_SEARCH_BYTES) break;
      bytes += wire.length;
      out.push(wire);
    }
    this.searchFrom = search;
    this.domains = out;
    return out;
  }
}
