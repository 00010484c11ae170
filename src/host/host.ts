// The host side: what happens to guest flows in the real world. It answers
// the engine's questions about new flows (StackEvents) and owns every
// flow-side piece: -L and -R forwards, the dialer, the guest DNS service;
// HostControl (built first) holds routing policy, local routes and the
// metrics server. Each new guest flow goes, in order, to:
//   1. the guest DNS service, when enabled (10.0.2.3 / fd00::3 port 53;
//      it skips the routing policy, not the caps: dns-forwarder.ts);
//   2. an exact -R match (it bypasses the firewall, as upstream);
//   3. the routing policy: allowed flows are dialled out, denied TCP gets
//      RST and denied UDP is dropped, both counted.
// With -icmp=forward, guest pings to other hosts go through the routing
// policy too, and out through the host's ICMP sockets (echo-forwarder.ts).
import { endpointText, ipV4Number, parseIP, type IP } from "../wire/addr.ts";
import type { FlowTuple } from "../stack/flow-key.ts";
import type { Reactor } from "../io/reactor.ts";
import type { Resolver } from "./control/resolve.ts";
import type { Logger } from "./control/log.ts";
import type { StackClock } from "./clock.ts";
import type { Stack, StackEvents } from "../stack/stack.ts";
import type { Stats } from "../stack/stats.ts";
import { STATE_NAMES, TcpState, type TcpConnection } from "../stack/tcp/connection.ts";
import type { UdpFlow } from "../stack/udp.ts";
import { LocalRoutes } from "./control/routes.ts";
import { RoutingPolicy, verdictAllows, type PolicyOptions } from "./control/policy.ts";
import { Dialer } from "./flows/dialer.ts";
import { HostKeepalive, TcpSplice } from "./flows/tcp-splice.ts";
import { MetricsServer, type FlowSource, type MetricsAddress } from "./control/metrics.ts";
import { RemoteForwards, type SourceAddresses } from "./flows/remote-forward.ts";
import type { ForwardHandle, HostFwd } from "./control/api-socket.ts";
import { LocalForwards, type Gateways, type LocalForwardContext } from "./flows/local-forward.ts";
import { DNS_V6, DnsForwarder, DnsQueries } from "./flows/dns-forwarder.ts";
import type { GuestNetV4 } from "../wire/guest-net.ts";
import { EchoForwarder } from "./flows/echo-forwarder.ts";
import type { ForwardSpec } from "./flows/forward-spec.ts";
import { UdpNat } from "./flows/udp-nat.ts";
import { destinationEndpoint, destinationIp, guestEndpoint } from "./flows/flow-addr.ts";

/** Where the gateway's ports lead with HostParts.hostLoopback. */
const LOOPBACK_V4 = parseIP("127.0.0.1")!;
const LOOPBACK_V6 = parseIP("::1")!;

/** What the host side reads of the command line (src/cli/options.ts's Config holds it). */
export interface HostConfig extends PolicyOptions {
  localForwards: readonly ForwardSpec[];
  remoteForwards: readonly ForwardSpec[];
  /** -max-local-clients */
  maxLocalClients: number;
  /** -proxy-header-timeout (ms) */
  proxyHeaderTimeoutMs: number;
  /** -m */
  metrics: MetricsAddress | null;
  /** -source-ipv4 / -source-ipv6: IP literals or null. */
  sourceIpv4: string | null;
  sourceIpv6: string | null;
  /** -dns-ttl (ms) */
  dnsTtlMs: number;
  maxUdpFlows: number;
  maxUdpPorts: number;
  maxDnsQueries: number;
  /** -icmp */
  icmp: "forward" | "local";
}

/**
 * The host-side parts that run before the device is opened (startup steps 6
 * and 8, docs/compatibility.md): the local routes watcher, the routing
 * policy that reads them, and the metrics server. The stack needs the
 * device's capabilities and the guest DHCP/RA answers need the policy
 * (`allowsGuestUdp`), so these are built first and the flow side (Host)
 * after, in one step.
 */
export class HostControl implements FlowSource {
  private readonly routes: LocalRoutes;
  readonly policy: RoutingPolicy;
  private metrics: MetricsServer | null = null;
  /**
   * The flows /metrics reports. The metrics server listens before the
   * device, and so the stack and Host, exist (step 8 before 11): until
   * `serveFlows`, there are none.
   */
  private flows: FlowSource | null = null;

  constructor(
    private readonly cfg: PolicyOptions & { metrics: MetricsAddress | null },
    private readonly log: Logger,
    private readonly stats: Stats,
    /** The guest's IPv4 network, which the routing policy never routes to. */
    guestNet: GuestNetV4,
  ) {
    this.routes = new LocalRoutes((line) => log.err(line));
    this.policy = new RoutingPolicy(cfg, this.routes, guestNet);
  }

  /** Startup step 6 (docs/compatibility.md): read the host's routes now and every 30 s. */
  startRoutes(): void {
    this.routes.start();
  }

  /** Startup step 8 (docs/compatibility.md): the debug server, `-m`. */
  startMetrics(pid: number, fail: (err: string) => never): void {
    if (this.cfg.metrics === null) return;
    const server = new MetricsServer(this.stats, this);
    try {
      const addr = server.start(this.cfg.metrics);
      this.metrics = server;
      this.log.status(`[ ] #${pid} Running metrics on ${addr}`);
    } catch (e) {
      fail(goListenError(e, this.cfg.metrics.network, this.cfg.metrics.address));
    }
  }

  stopMetrics(pid: number): void {
    if (this.metrics === null) return;
    this.log.status(`[ ] #${pid} Stopping metrics`);
    this.metrics.stop();
    this.metrics = null;
  }

  /** /metrics reports `flows` from now on. */
  serveFlows(flows: FlowSource): void {
    this.flows = flows;
  }

  stop(): void {
    this.routes.stop();
  }

  /** Whether the routing policy lets a guest UDP flow to ip:port through (which resolvers the guest may be told of). */
  allowsGuestUdp(ip: IP, port: number): boolean {
    return verdictAllows(this.policy.decide("udp", ip, port));
  }

  get flowCount(): number {
    return this.flows?.flowCount ?? 0;
  }

  flowRows(offset: number, limit: number): unknown[] {
    return this.flows?.flowRows(offset, limit) ?? [];
  }

  flowCounts(): Array<{ proto: string; state: string; count: number }> {
    return this.flows?.flowCounts() ?? [];
  }
}

/** What Host is built from. */
export interface HostParts {
  control: HostControl;
  cfg: HostConfig;
  log: Logger;
  stats: Stats;
  clock: StackClock;
  reactor: Reactor;
  resolver: Resolver;
  gateways: Gateways;
  /** -enable-dns, or run mode's default. */
  dnsEnabled: boolean;
  /**
   * The gateway's own ports are the host's loopback (slirp4netns without
   * --disable-host-loopback): the gateway's PORT (10.0.2.2:PORT) dials 127.0.0.1:PORT and
   * fd00::2:PORT dials [::1]:PORT, before the routing policy (which denies
   * loopback to every other destination).
   */
  hostLoopback?: boolean;
  /** Builds the engine that reports its new flows to `events` (the Host being built). */
  makeStack: (events: StackEvents) => Stack;
}

export class Host implements StackEvents, FlowSource {
  readonly stack: Stack;
  private readonly dialer: Dialer;
  /** Guest DNS at the guest network's .3 (10.0.2.3) / fd00::3 (-enable-dns, on by default in run mode). */
  private readonly dns: DnsForwarder | null;
  private readonly keepalive = new HostKeepalive();
  private readonly control: HostControl;
  private readonly cfg: HostConfig;
  private readonly log: Logger;
  private readonly stats: Stats;
  private readonly clock: StackClock;
  private readonly reactor: Reactor;
  private readonly gateways: Gateways;
  private readonly remote: RemoteForwards;
  private readonly local: LocalForwards;
  /** -source-ipv4 / -source-ipv6, parsed once. */
  private readonly sources: SourceAddresses;
  /** Exiting: new flows from either side are refused (beginDrain). */
  private draining = false;
  /** HostParts.hostLoopback, with the gateways as the engine's numbers/bytes for the per-flow compare. */
  private readonly hostLoopback: boolean;
  private readonly gatewayV4: number;
  private readonly gatewayV6: Uint8Array;

  constructor(p: HostParts) {
    const { control, cfg, log, stats, clock, reactor } = p;
    this.control = control;
    this.cfg = cfg;
    this.log = log;
    this.stats = stats;
    this.clock = clock;
    this.reactor = reactor;
    this.gateways = p.gateways;
    this.hostLoopback = p.hostLoopback ?? false;
    this.gatewayV4 = ipV4Number(p.gateways.v4);
    this.gatewayV6 = p.gateways.v6.bytes;
    this.sources = {
      v4: cfg.sourceIpv4 === null ? null : parseIP(cfg.sourceIpv4),
      v6: cfg.sourceIpv6 === null ? null : parseIP(cfg.sourceIpv6),
    };
    this.remote = new RemoteForwards(cfg.remoteForwards, cfg.dnsTtlMs, p.resolver, log, stats, clock, this.sources);
    this.local = new LocalForwards(cfg.localForwards, p.resolver);
    const stack = p.makeStack(this);
    this.stack = stack;
    stack.udp.maxFlows = cfg.maxUdpFlows;
    const nat = new UdpNat(reactor, clock, stats, cfg.maxUdpPorts, stack.icmp);
    this.dialer = new Dialer(stack, clock, reactor, log, stats, this.keepalive, nat);
    this.dns = p.dnsEnabled ? new DnsForwarder(this.dialer, clock, new DnsQueries(cfg.maxDnsQueries, stats), stack.cfg.netV4.dns) : null;
    if (cfg.icmp === "forward") {
      // Pings to the DNS forwarder's address are the stack's to answer, like the gateway's.
      stack.echo.ownV4.push(stack.cfg.netV4.dns);
      stack.echo.ownV6.push(parseIP(DNS_V6)!.bytes);
      stack.echo.start(new EchoForwarder(stack.echo, reactor, clock, stats, control.policy, (line) => log.err(line)));
    }
  }

  /** Startup step 12 (docs/compatibility.md): the -L forwards (exit 247 through `fail`). */
  async startLocalForwards(fail: (line: string) => never): Promise<void> {
    await this.local.start(this.localContext(), fail);
  }

  /** A -L style forward added while running (-api-socket). */
  addLocalForward(fwd: HostFwd): ForwardHandle | string {
    return this.local.add(this.localContext(), fwd);
  }

  private localContext(): LocalForwardContext {
    return {
      stack: this.stack,
      clock: this.clock,
      reactor: this.reactor,
      log: this.log,
      stats: this.stats,
      gateways: this.gateways,
      keepalive: this.keepalive,
      maxClients: this.cfg.maxLocalClients,
      proxyHeaderTimeoutMs: this.cfg.proxyHeaderTimeoutMs,
    };
  }

  /** Startup step 13 (docs/compatibility.md): the -R forwards (exit 246 through `fail`). */
  async startRemoteForwards(fail: (line: string) => never): Promise<void> {
    await this.remote.start(fail);
  }

  stop(): void {
    this.control.stop();
    this.local.stop();
  }

  // --- new guest flows ---

  tcpConnectRequest(conn: TcpConnection): void {
    if (this.draining) {
      this.stats.drop("tcp-exiting");
      this.stack.tcp.refuse(conn, this.clock.now());
      this.clock.afterActivity();
      return;
    }
    if (this.dns?.tryTcp(conn)) return;
    if (this.remote.tryTcp(conn, this.stack, this.dialer)) return;
    if (this.toHostLoopback(conn)) {
      this.stats.bump("host-loopback");
      const ip = conn.family === 4 ? LOOPBACK_V4 : LOOPBACK_V6;
      this.dialer.tcp(conn, { ip, port: conn.destPort, source: null }, { guest: guestEndpoint(conn), label: "HostLoopback", target: endpointText(ip, conn.destPort), rpc: false });
      return;
    }
    const dst = destinationIp(conn);
    const verdict = this.control.policy.decide("tcp", dst, conn.destPort);
    if (!verdictAllows(verdict)) {
      this.stats.drop("tcp-policy-denied");
      this.stats.bump("connect-denied");
      this.stack.tcp.refuse(conn, this.clock.now());
      this.clock.afterActivity();
      return;
    }
    this.dialer.tcp(
      conn,
      { ip: dst, port: conn.destPort, source: dst.family === 4 ? this.sources.v4 : this.sources.v6 },
      { guest: guestEndpoint(conn), label: "Routing", target: destinationEndpoint(conn), rpc: false },
    );
  }

  udpNewFlow(flow: UdpFlow): boolean {
    if (this.draining) {
      this.stats.drop("udp-exiting");
      return false;
    }
    if (this.dns?.tryUdp(flow)) return true;
    if (this.remote.tryUdp(flow, this.dialer)) return true;
    if (this.toHostLoopback(flow)) {
      this.stats.bump("host-loopback");
      const ip = flow.family === 4 ? LOOPBACK_V4 : LOOPBACK_V6;
      this.dialer.udp(flow, { ip, port: flow.destPort, source: null }, { guest: guestEndpoint(flow), label: "HostLoopback", target: endpointText(ip, flow.destPort), rpc: false });
      return true;
    }
    const dst = destinationIp(flow);
    const verdict = this.control.policy.decide("udp", dst, flow.destPort);
    if (!verdictAllows(verdict)) {
      this.stats.drop("udp-policy-denied");
      return false;
    }
    this.dialer.udp(
      flow,
      { ip: dst, port: flow.destPort, source: dst.family === 4 ? this.sources.v4 : this.sources.v6 },
      { guest: guestEndpoint(flow), label: "Routing", target: destinationEndpoint(flow), rpc: false },
    );
    return true;
  }

  /** Whether a new guest flow goes to the gateway's own address with hostLoopback on. */
  private toHostLoopback(t: FlowTuple): boolean {
    if (!this.hostLoopback) return false;
    if (t.family === 4) return t.destV4 === this.gatewayV4;
    const d = t.destV6!;
    for (let i = 0; i < 16; i++) if (d[i] !== this.gatewayV6[i]) return false;
    return true;
  }

  // --- exit: drain, then cut what did not finish ---

  /** Exit, first step: no new flows from either side; -L stops listening. */
  beginDrain(): void {
    this.draining = true;
    this.local.stop();
  }

  /**
   * Connections still moving bytes: some are in our buffers, either way.
   * `guestLeaving` (the run-mode command has ended, its kernel is flushing
   * the sockets it left behind): also those whose guest has not sent its
   * FIN yet.
   */
  drainPending(guestLeaving: boolean): number {
    let n = 0;
    for (const c of this.stack.tcp.connections()) {
      if (c.state >= TcpState.TimeWait) continue;
      if (c.sendBuf.length > 0 || c.rcvBuf.length > 0 || (guestLeaving && !c.peerFinished)) n++;
    }
    return n;
  }

  /**
   * Exit, last step: every connection whose guest stream did not complete,
   * or that still holds bytes for either peer, is reset toward both peers,
   * so neither mistakes the cut for a clean end. Returns how many.
   */
  cutUnfinished(): number {
    const now = this.clock.now();
    const cut: TcpConnection[] = [];
    for (const c of this.stack.tcp.connections()) {
      if (c.state >= TcpState.TimeWait) continue;
      if (c.sendBuf.length > 0 || c.rcvBuf.length > 0 || !c.peerFinished) cut.push(c);
    }
    for (const c of cut) {
      if (c.handler instanceof TcpSplice) c.handler.cut(now);
      else c.abort(now);
    }
    this.clock.settle();
    return cut.length;
  }

  // --- FlowSource (metrics) ---

  get flowCount(): number {
    return (this.stack.tcp.connectionCount ?? 0) + (this.stack.udp.flowCount);
  }

  flowRows(offset: number, limit: number): unknown[] {
    const rows: unknown[] = [];
    const stack = this.stack;
    // Positions before `offset` are skipped without building rows; a page
    // wholly past the TCP flows skips them without walking them.
    let skip = offset;
    if (skip >= stack.tcp.connectionCount) skip -= stack.tcp.connectionCount;
    else {
      for (const c of stack.tcp.connections()) {
        if (skip > 0) {
          skip--;
          continue;
        }
        if (rows.length === limit) return rows;
        rows.push({
          proto: "tcp",
          state: c.stateName,
          guest: guestEndpoint(c),
          destination: destinationEndpoint(c),
          sendBuffered: c.sendBuf.length,
          recvBuffered: c.rcvBuf.length,
          inFlight: c.inFlight,
          cwnd: c.cc.cwnd,
          sndWnd: c.sndWnd,
          rtoMs: c.rtt.rto,
          srttMs: c.rtt.srtt,
        });
      }
    }
    for (const f of stack.udp.flows()) {
      if (skip > 0) {
        skip--;
        continue;
      }
      if (rows.length === limit) break;
      rows.push({
        proto: "udp",
        guest: guestEndpoint(f),
        destination: destinationEndpoint(f),
        idleMs: f.idleMs,
      });
    }
    return rows;
  }

  flowCounts(): Array<{ proto: string; state: string; count: number }> {
    const byState = new Map<string, number>();
    for (const c of this.stack.tcp.connections()) byState.set(c.stateName, (byState.get(c.stateName) ?? 0) + 1);
    const rows: Array<{ proto: string; state: string; count: number }> = STATE_NAMES.filter((s) => byState.has(s)).map((s) => ({
      proto: "tcp",
      state: s,
      count: byState.get(s)!,
    }));
    rows.push({ proto: "udp", state: "open", count: this.stack.udp.flowCount });
    return rows;
  }
}

/** Go's listen error text: "listen tcp 127.0.0.1:80: bind: address already in use". */
function goListenError(e: unknown, network: string, address: string): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === "EADDRINUSE") return `listen ${network} ${address}: bind: address already in use`;
  if (err.code === "EACCES") return `listen ${network} ${address}: bind: permission denied`;
  if (err.code === "EADDRNOTAVAIL") return `listen ${network} ${address}: bind: cannot assign requested address`;
  return err.message;
}
