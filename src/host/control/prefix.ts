// Sets of IP prefixes (CIDRs) matched against addresses as bytes: the
// static deny list, the host's local routes.
import { parseCIDR, prefixContains, type IP, type IPPrefix } from "../../wire/addr.ts";

export class PrefixSet {
  constructor(private prefixes: readonly IPPrefix[]) {}

  static parse(cidrs: readonly string[]): PrefixSet {
    return new PrefixSet(
      cidrs.map((c) => {
        const p = parseCIDR(c);
        if (p === null) throw new Error(`bad CIDR ${c}`);
        return p;
      }),
    );
  }

  replace(prefixes: readonly IPPrefix[]): void {
    this.prefixes = prefixes;
  }

  get size(): number {
    return this.prefixes.length;
  }

  contains(ip: IP): boolean {
    for (const p of this.prefixes) if (prefixContains(p, ip)) return true;
    return false;
  }
}

/**
 * The static deny list (docs/compatibility.md), but for the guest's own
 * network (10.0.2.0/24 by default), which the policy and the -L source
 * choice add: never routed (unless -allow says so), and never used as a
 * spoofed source toward the guest.
 * IPv4-mapped addresses are normalised to IPv4 before matching, so
 * ::ffff:0:0/96 only catches odd spellings.
 */
export const STATIC_DENY = PrefixSet.parse([
  "0.0.0.0/8",
  "127.0.0.0/8",
  "255.255.255.255/32",
  "::/128",
  "::1/128",
  "::/96",
  "::ffff:0:0:0/96",
  "64:ff9b::/96",
]);

/**
 * Denied after the static list, unless -allow says so (a deliberate
 * difference from Go slirpnetstack): IPv4 and IPv6 link-local ranges,
 * where clouds put their instance metadata service (169.254.169.254), and
 * AWS's IPv6 metadata address. A guest has no business on the host's link.
 */
export const LINK_LOCAL_DENY = PrefixSet.parse(["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"]);
