// DNS for the guest: the guest network's .3 (10.0.2.3) and fd00::3, port 53, over UDP and TCP,
// relayed to the host's resolvers from /etc/resolv.conf. The relay is a
// splice like any -R forward, so message boundaries (UDP), truncation and
// the guest's retry over TCP all pass through unchanged; a systemd-resolved
// stub at 127.0.0.53 works because the host side runs in the host
// namespace. The nameservers (resolv-conf.ts) are tried in turn per flow.
//
// Policy: the guest picks neither the address nor the port its queries go
// to (only the host's resolv.conf nameservers, port 53), so these flows skip
// the routing policy: the nameservers are usually on loopback, which
// -enable-host would otherwise refuse. They do count toward every cap: the
// UDP flow and host-port caps like any flow, and -max-dns-queries bounds
// the queries in flight, i.e. UDP flows that have sent a query and not yet
// had a reply; at the cap the oldest such flow is ended (limit
// "dns-queries"), since its answer is the least likely to come.
import { endpointText, parseIP } from "../../wire/addr.ts";
import { ipv6Equal, ipv6IsV4Mapped } from "../../wire/ipv6.ts";
import { readU32 } from "../../wire/bytes.ts";
import type { TcpConnection } from "../../stack/tcp/connection.ts";
import type { UdpFlow } from "../../stack/udp.ts";
import type { Stats } from "../../stack/stats.ts";
import type { Dialer, DialTarget } from "./dialer.ts";
import { guestEndpoint } from "./flow-addr.ts";
import { ResolvConf } from "../control/resolv-conf.ts";
import type { StackClock } from "../clock.ts";
import type { UdpQueryWatch, UdpSplice } from "./udp-splice.ts";

export const DNS_V6 = "fd00::3";
const DNS_V6_BYTES = parseIP(DNS_V6)!.bytes;
const DNS_PORT = 53;
const DNS_IDLE_MS = 10_000;

/** UDP flows waiting for an answer, oldest first, at most `max`. */
export class DnsQueries implements UdpQueryWatch {
  private readonly waiting = new Set<UdpSplice>();

  constructor(
    private readonly max: number,
    private readonly stats: Stats,
  ) {}

  get inFlight(): number {
    return this.waiting.size;
  }

  sent(s: UdpSplice): void {
    if (this.waiting.has(s)) return;
    // A cap of 0 acts as 1, like the other UDP caps.
    if (this.waiting.size >= this.max && this.waiting.size > 0) {
      const oldest = this.waiting.values().next().value!;
      this.waiting.delete(oldest);
      this.stats.limit("dns-queries");
      oldest.evict("dns query limit");
    }
    this.waiting.add(s);
  }

  answered(s: UdpSplice): void {
    this.waiting.delete(s);
  }
}

export class DnsForwarder {
  private readonly resolvConf: ResolvConf;
  private next = 0;

  constructor(
    private readonly dialer: Dialer,
    private readonly clock: StackClock,
    private readonly queries: DnsQueries,
    /** Our IPv4 address (the guest network's dns). */
    private readonly dnsV4: number,
    resolvConfPath = "/etc/resolv.conf",
  ) {
    this.resolvConf = new ResolvConf(resolvConfPath);
  }

  /** The address a guest flow targets is ours: dnsV4:53 (also IPv4-mapped) or [fd00::3]:53. */
  private isOurs(t: TcpConnection | UdpFlow): boolean {
    if (t.destPort !== DNS_PORT) return false;
    if (t.family === 4) return t.destV4 === this.dnsV4;
    const a = t.destV6!;
    return ipv6Equal(a, 0, DNS_V6_BYTES, 0) || (ipv6IsV4Mapped(a, 0) && readU32(a, 12) === this.dnsV4);
  }

  /** The nameserver for the next flow: the host's resolvers in turn. */
  private upstream(): DialTarget {
    const list = this.resolvConf.servers(this.clock.now());
    const ip = list[this.next++ % list.length]!;
    return { ip, port: DNS_PORT, source: null };
  }

  tryTcp(conn: TcpConnection): boolean {
    if (!this.isOurs(conn)) return false;
    const target = this.upstream();
    const dst = endpointText(target.ip, target.port);
    this.dialer.tcp(conn, target, { guest: guestEndpoint(conn), label: "dns-fwd", target: dst, rpc: false });
    return true;
  }

  tryUdp(flow: UdpFlow): boolean {
    if (!this.isOurs(flow)) return false;
    const target = this.upstream();
    const dst = endpointText(target.ip, target.port);
    // Resolvers send A and AAAA from one socket and may retry on it, so the
    // flow is not closed after a reply; it just lives shorter than others,
    // as each lookup usually uses a fresh port.
    this.dialer.udp(flow, target, { guest: guestEndpoint(flow), label: "dns-fwd", target: dst, rpc: false }, this.queries);
    flow.setIdle(DNS_IDLE_MS, this.clock.now());
    return true;
  }
}
