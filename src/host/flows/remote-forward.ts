// -R: guest flows to a chosen guest-side IP:port go to a host target
// (docs/compatibility.md, Remote forwards). The guest side must match
// exactly (0.0.0.0 never matches) and skips the routing policy. The host
// target is resolved per flow through the -dns-ttl cache (DNS cache), so
// names and SRV records follow changes.
//
// Differences from upstream (its quirks): when the target
// cannot be resolved, a TCP guest gets a RST instead of a connection that
// hangs forever, and a UDP flow is closed so that its next datagram tries
// again instead of being black-holed for good.
import { formatSpecAddress, formatSpecSide, type ForwardSpec } from "./forward-spec.ts";
import { formatHostPort, formatIP, parseIP, type IP } from "../../wire/addr.ts";
import type { TcpConnection } from "../../stack/tcp/connection.ts";
import type { UdpFlow } from "../../stack/udp.ts";
import type { Stack } from "../../stack/stack.ts";
import type { Stats } from "../../stack/stats.ts";
import { CachedLabel, type Resolver } from "../control/resolve.ts";
import type { Logger } from "../control/log.ts";
import type { StackClock } from "../clock.ts";
import type { DialTarget, Dialer } from "./dialer.ts";
import { destinationKey, guestEndpoint } from "./flow-addr.ts";

export interface SourceAddresses {
  v4: IP | null;
  v6: IP | null;
}

class RemoteForward {
  /** A literal target, parsed once: dialled without a lookup. */
  readonly staticTarget: DialTarget | null;
  /** Its text for error lines. */
  readonly staticTargetText: string;

  constructor(
    readonly spec: ForwardSpec,
    /** "IP:port" of the guest-side address (the map key). */
    readonly bindKey: string,
    /** Go-style guest-side address for log lines ("GUESTDST"). */
    readonly bindEndpoint: string,
    readonly target: CachedLabel,
    sources: SourceAddresses,
  ) {
    const literal = target.label === null ? parseIP(target.value.ip) : null;
    this.staticTarget = literal === null ? null : dialTarget(literal, target.value.port, sources);
    this.staticTargetText = formatSpecSide(target.value, target.label);
  }
}

function dialTarget(ip: IP, port: number, sources: SourceAddresses): DialTarget {
  return { ip, port, source: ip.family === 4 ? sources.v4 : sources.v6 };
}

/** The map key of a -R bind address: normalised IP and port, as destinationKey() of a flow. */
function bindKey(ip: string, port: number): string {
  const parsed = parseIP(ip);
  return `${parsed === null ? ip : formatIP(parsed)}:${port}`;
}

export class RemoteForwards {
  private readonly tcp = new Map<string, RemoteForward>();
  private readonly udp = new Map<string, RemoteForward>();

  constructor(
    private readonly specs: readonly ForwardSpec[],
    private readonly ttlMs: number,
    private readonly resolver: Resolver,
    private readonly log: Logger,
    private readonly stats: Stats,
    private readonly clock: StackClock,
    private readonly sources: SourceAddresses,
  ) {}

  /**
   * Startup step 13 (docs/compatibility.md): resolve each bind address
   * (failure: the caller prints the line and exits 246), print "Accepting
   * on remote side", and register it. A later duplicate replaces an
   * earlier one.
   */
  async start(fail: (line: string) => never): Promise<void> {
    for (const spec of this.specs) {
      const bindLabel = new CachedLabel(spec.bind.label, { ip: spec.bind.ip!, port: spec.bind.port }, this.ttlMs, this.resolver);
      const bind = await bindLabel.retrieve(performance.now());
      if (bind === null) {
        fail(`[!] Failed to resolve bind address. dns lookup error of ${spec.transport} addr: ${bindLabel.lastError?.message}`);
      }
      const target = new CachedLabel(spec.host.label, { ip: spec.host.ip!, port: spec.host.port }, this.ttlMs, this.resolver);
      this.log.listen(`[+] Accepting on remote side ${formatSpecAddress(spec.transport, formatSpecSide(bind, spec.bind.label))}`);
      const fwd = new RemoteForward(spec, bindKey(bind.ip, bind.port), formatHostPort(bind.ip, bind.port), target, this.sources);
      (spec.transport === "tcp" ? this.tcp : this.udp).set(fwd.bindKey, fwd);
    }
  }

  get count(): number {
    return this.tcp.size + this.udp.size;
  }

  /** Handles the flow if its destination is a -R bind address. */
  tryTcp(conn: TcpConnection, stack: Stack, dialer: Dialer): boolean {
    const fwd = this.tcp.get(destinationKey(conn));
    if (fwd === undefined) return false;
    const literal = fwd.staticTarget;
    if (literal !== null) {
      // A literal target needs no lookup: dial now, without a promise hop.
      dialer.tcp(conn, literal, this.labels(fwd, guestEndpoint(conn), literal));
      return true;
    }
    void this.dialResolved(fwd, conn, stack, dialer);
    return true;
  }

  /** A named target: dial once it resolves (kept out of tryTcp, whose literal path then allocates no closure scope). */
  private async dialResolved(fwd: RemoteForward, conn: TcpConnection, stack: Stack, dialer: Dialer): Promise<void> {
    const target = await this.resolveTarget(fwd, guestEndpoint(conn));
    if (target === null) {
      stack.tcp.refuse(conn, this.clock.now());
      this.clock.afterActivity();
      return;
    }
    dialer.tcp(conn, target, this.labels(fwd, guestEndpoint(conn), target));
  }

  tryUdp(flow: UdpFlow, dialer: Dialer): boolean {
    const fwd = this.udp.get(destinationKey(flow));
    if (fwd === undefined) return false;
    const guest = guestEndpoint(flow);
    const target = fwd.staticTarget ?? this.resolveTarget(fwd, guest);
    dialer.udp(flow, target, (t) => this.labels(fwd, guest, t));
    return true;
  }

  private labels(fwd: RemoteForward, guest: string, target: DialTarget) {
    return {
      guest: `${guest}-${fwd.bindEndpoint}`,
      label: "remote-fwd",
      target: target === fwd.staticTarget ? fwd.staticTargetText : formatSpecSide({ ip: formatIP(target.ip), port: target.port }, fwd.target.label),
      rpc: fwd.spec.rpc,
    };
  }

  /** The host target now, or null after logging the DNS error line. */
  private async resolveTarget(fwd: RemoteForward, guest: string): Promise<DialTarget | null> {
    const got = await fwd.target.retrieve(performance.now());
    if (got === null) {
      this.stats.bump("connect-dns-failed");
      const err = fwd.target.lastError?.message ?? "unknown error";
      // upstream prints the spec after one more resolution attempt.
      const again = await fwd.target.retrieve(performance.now());
      const spec = formatSpecSide(again, fwd.target.label);
      this.log.flow("dns-error", `[!] ${fwd.spec.transport}://${guest}-${fwd.bindEndpoint}/${spec} remote-fwd dns lookup error of ${fwd.spec.transport} addr: ${err}`);
      return null;
    }
    const ip = parseIP(got.ip);
    return ip === null ? null : dialTarget(ip, got.port, this.sources);
  }
}
