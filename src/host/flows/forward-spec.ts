// A parsed -L / -R forward (src/cli/forward.ts reads the text; docs/compatibility.md,
// Forward specs) and its printed forms in log lines.

export type ForwardScheme = "tcp" | "udp" | "udprpc" | "tcppp" | "udpspp";

/** One end of a forward: a static IP, or a label to resolve, and a port. */
export interface HostSide {
  /**
   * A normalised IP literal (dotted IPv4, RFC 5952 IPv6). For a label this
   * is the placeholder the defaults wrote; null before
   * applyForwardDefaults when the IP was omitted.
   */
  ip: string | null;
  /** A DNS name, or QUERY@srv-SERVER; null for a literal or an omitted IP. */
  label: string | null;
  port: number;
}

export interface ForwardSpec {
  scheme: ForwardScheme;
  transport: "tcp" | "udp";
  /** udprpc: close the flow after the first reply. */
  rpc: boolean;
  /** tcppp (PROXY v1) or udpspp (SPP): only meaningful for -L. */
  proxyProtocol: boolean;
  /** -L: the host listener. -R: the guest-side address netstack takes over. */
  bind: HostSide;
  /** -L: the guest target. -R: the host-side target. */
  host: HostSide;
}

/**
 * The printed form of a spec side (docs/compatibility.md, Printed form of
 * a spec): "IP:PORT" without brackets even for IPv6, or "LABEL-failed"
 * when the label's current resolution failed (`current` null).
 */
export function formatSpecSide(current: { ip: string | null; port: number } | null, label: string | null): string {
  if (current === null) return `${label ?? ""}-failed`;
  return `${current.ip ?? "<nil>"}:${current.port}`;
}

/** "NET://BIND" as printed by `Accepting on remote side` / `Failed to listen on`. */
export function formatSpecAddress(transport: "tcp" | "udp", side: string): string {
  return `${transport}://${side}`;
}
