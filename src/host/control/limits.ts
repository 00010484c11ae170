// The caps on everything a guest or a local client can grow, by name: the
// flag that sets each one, and the one line printed when it bites. The
// owner of a table calls stats.limit(name) on every hit; the count is in
// /metrics (slirpnetstack_limit_hits_total{limit="NAME"}), and
// LimitReporter prints a line for a limit at most once a minute, with
// how many hits the quiet time hid.
import type { Stats } from "../../stack/stats.ts";
import { QuietPeriods } from "./quiet-periods.ts";

export interface LimitInfo {
  /** The flag that changes it, without the dash; null for a fixed cap. */
  flag: string | null;
  /** What hitting it means, for the log line. */
  what: string;
}

/** Every limit, by the name its owner passes to stats.limit(). */
export const LIMITS: Readonly<Record<string, LimitInfo>> = {
  "local-fwd-clients": { flag: "max-local-clients", what: "too many clients of one -L TCP listener; the new client was reset" },
  "local-fwd-proxy-header": { flag: "proxy-header-timeout", what: "a -L tcppp client sent no PROXY header in time; it was reset" },
  "local-fwd-ports": {
    flag: null,
    what: "every local port toward a -L target is taken (28232 per guest address and port, shared by all clients the guest sees as one address, e.g. every loopback client); the new client was reset",
  },
  "tcp-connections": {
    flag: "max-tcp-connections",
    what: "too many TCP connections; a new guest SYN was dropped (the guest retries) or a -L connection refused",
  },
  "tcp-syn-received": { flag: "max-syn-received", what: "too many guest TCP handshakes answered and not completed; a new SYN was dropped, or a repeated one took the oldest's place" },
  "tcp-syn-pending": { flag: "max-syn-received", what: "too many guest TCP handshakes waiting for the host's connect; a new SYN was dropped, or a repeated one took the oldest's place" },
  "tcp-buffer-bytes": {
    flag: "max-buffer-bytes",
    what: "TCP buffers reached their budget; receive windows were shrunk, host reads paused or out-of-order data dropped",
  },
  "udp-flows": { flag: "max-udp-flows", what: "too many guest UDP flows; the least recently active one was ended" },
  "udp-ports": { flag: "max-udp-ports", what: "too many host UDP ports held for the guest; the least recently used one was freed, with its flows" },
  "dns-queries": { flag: "max-dns-queries", what: "too many DNS queries in flight; the oldest was dropped" },
  "icmp-echo-flows": {
    flag: null,
    what: "1024 guest ping sessions (guest address, identifier, destination) hold an ICMP socket each; the least recently active one was ended",
  },
  neighbors: { flag: "max-neighbors", what: "too many guest addresses in the neighbour table; the least recently used one was forgotten" },
  "neighbors-unresolved": {
    flag: null,
    what: "64 guest addresses (at most half of -max-neighbors) already wait for an ARP or NDP answer; a frame to one more was dropped",
  },
  "neighbor-queue": { flag: null, what: "8 frames wait for one guest address' MAC, or 64 in all; one more was dropped" },
  "dhcp-leases": {
    flag: null,
    what: "all 16 DHCP addresses (the guest address and the 15 after it: 10.0.2.100-10.0.2.115 by default) are leased and unexpired; a DISCOVER from one more client was ignored",
  },
  "neighbor-solicit-rate": { flag: null, what: "32 ARP requests or Neighbor Solicitations a second sent already; one was put off" },
  "ra-solicitors": {
    flag: null,
    what: "16 guest addresses had a unicast router advertisement in the last 3 s; a Router Solicitation from one more was not answered",
  },
};

export class LimitReporter {
  private readonly quiet: QuietPeriods;

  constructor(
    private readonly print: (line: string) => void,
    now?: () => number,
  ) {
    this.quiet = new QuietPeriods(now);
  }

  /** Routes stats.limit() hits to this reporter. */
  attach(stats: Stats): void {
    stats.onLimit = (name) => this.hit(name);
  }

  hit(name: string): void {
    const pass = this.quiet.pass(name);
    if (pass === null) return;
    const info = LIMITS[name];
    const what = info ? `${info.what}${info.flag !== null ? ` (raise it with -${info.flag})` : ""}` : "";
    const since = pass.hidden > 0 ? `; ${pass.hidden} more hits since the last report` : "";
    this.print(`[!] Limit ${name} reached${what ? `: ${what}` : ""}${since}`);
  }
}
