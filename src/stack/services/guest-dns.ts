// What the guest is told about DNS when it configures itself over IPv6:
// router advertisements (RDNSS and DNSSL, RFC 8106) and stateless DHCPv6
// (options 23 and 24, RFC 3646) carry the same lists. The host side
// computes them (the DNS forwarder, or the host's resolvers the guest can
// reach, and the host's search domains); the services read them at the
// moment they answer, so a changed resolv.conf shows in the next answer.

export interface GuestDns6 {
  /** IPv6 resolvers, 16 bytes each, at most MAX_DNS_SERVERS. */
  readonly servers: readonly Uint8Array[];
  /** Search domains in DNS wire form (RFC 1035 §3.1, uncompressed), at most MAX_SEARCH_BYTES in all. */
  readonly domains: readonly Uint8Array[];
}

/** resolv.conf's own limit (MAXNS, resolv.conf(5)). */
export const MAX_DNS_SERVERS = 3;
/**
 * The search names' wire bytes at most: with three servers the whole RA
 * then stays below 1280 bytes, so it is never fragmented (RFC 6980 has
 * receivers drop fragmented Neighbor Discovery messages).
 */
export const MAX_SEARCH_BYTES = 1024;
