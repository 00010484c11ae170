// What the guest's DHCPv4 server offers about DNS (options 6, 15, 119),
// read from the host each time it answers, so a changed resolv.conf shows
// in the next offer or renewal:
// - the DNS forwarder on (-enable-dns): its address (10.0.2.3), nothing else;
// - off: the host's IPv4 resolvers from resolv.conf that the guest can
//   reach. Loopback ones (systemd-resolved's 127.0.0.53, a local cache at
//   127.0.0.1) are the host's own: to the guest they would be its own
//   loopback, so they are left out; the others only if the routing policy
//   lets a guest UDP flow to their port 53 through (-enable-host,
//   -enable-routing, -allow/-deny). With none left, no option 6: a guest
//   told of a server nobody answers at would wait on every lookup.
// - search domains: the host's resolv.conf `search` or `domain` line,
//   either way.
import { DEFAULT_LEASE_SECONDS, type Dhcp4Config, type Dhcp4HostInfo } from "../../stack/services/dhcp4.ts";
import type { ResolvConf } from "./resolv-conf.ts";
import { ipV4Number, type IP } from "../../wire/addr.ts";
import type { GuestNetV4 } from "../../wire/guest-net.ts";

const DNS_PORT = 53;
/** resolv.conf's own limit (MAXNS, resolv.conf(5)). */
const MAX_SERVERS = 3;

export class Dhcp4HostDns implements Dhcp4HostInfo {
  /** The DNS forwarder's address alone, or null: the forwarder is off. */
  private readonly forwarder: readonly number[] | null;

  constructor(
    private readonly resolvConf: ResolvConf,
    /** The DNS forwarder's address with -enable-dns (or run mode's default); null without. */
    forwarder: number | null,
    /** Whether the routing policy lets a guest UDP flow to this address and port through. */
    private readonly allowed: (ip: IP, port: number) => boolean,
  ) {
    this.forwarder = forwarder === null ? null : [forwarder];
  }

  dnsServers(now: number): readonly number[] {
    if (this.forwarder !== null) return this.forwarder;
    const out: number[] = [];
    for (const ip of this.resolvConf.servers(now)) {
      if (ip.family !== 4 || ip.bytes[0] === 127 || ip.bytes[0] === 0 || !this.allowed(ip, DNS_PORT)) continue;
      out.push(ipV4Number(ip));
      if (out.length === MAX_SERVERS) break;
    }
    return out;
  }

  searchDomains(now: number): readonly string[] {
    return this.resolvConf.search(now);
  }
}

/**
 * The DHCPv4 server's settings: DNS as above from the host's resolv.conf
 * (shared with the RA service) and the guest network's DNS address, the
 * lease time in seconds.
 */
export function dhcp4Config(
  net: GuestNetV4,
  resolvConf: ResolvConf,
  forwarder: boolean,
  allowed: (ip: IP, port: number) => boolean,
  leaseSeconds = DEFAULT_LEASE_SECONDS,
): Dhcp4Config {
  return { leaseSeconds, info: new Dhcp4HostDns(resolvConf, forwarder ? net.dns : null, allowed) };
}
