// Dialing the host side for guest-started flows: routed flows and -R
// forwards. The guest's SYN is answered only once the host connect() has an
// outcome (connected: SYN-ACK; refused: RST, so the guest sees
// ECONNREFUSED at once; unreachable: ICMP unreachable), unlike upstream,
// which accepted first and closed later (contract §7.5, a noted bug).
import type { Stack } from "../stack/stack.ts";
import type { Stats } from "../stack/stats.ts";
import type { TcpConnection } from "../stack/tcp/connection.ts";
import type { UdpFlow } from "../stack/udp.ts";
import { formatHostPort } from "../cli/goaddr.ts";
import type { Logger } from "./log.ts";
import type { StackRuntime } from "./runtime.ts";
import { HostKeepalive, TcpSplice, hostSocketHandlers, type SpliceOwner } from "./tcp-splice.ts";
import { UdpSplice, type UdpSpliceOwner } from "./udp-splice.ts";

export interface DialTarget {
  ip: string;
  port: number;
  /** Source address to bind, or null. */
  source: string | null;
}

/** How a flow is named in its log lines (contract §13.3). */
export interface FlowLabels {
  /** "GUEST" for routed flows, "GUEST-GUESTDST" for -R. */
  guest: string;
  /** "Routing" or "remote-fwd". */
  label: string;
  /** What an error line names as the target: DEST or HOSTSPEC. */
  target: string;
  /** -R udprpc: close after the first reply. */
  rpc: boolean;
}

const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network is unreachable",
  EADDRNOTAVAIL: "cannot assign requested address",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
};

export class Dialer implements SpliceOwner, UdpSpliceOwner {
  private readonly labels = new WeakMap<object, FlowLabels>();
  /** Live splices, for the debug flow table. */
  readonly tcpSplices = new Set<TcpSplice>();
  readonly udpSplices = new Set<UdpSplice>();

  constructor(
    private readonly stack: Stack,
    private readonly rt: StackRuntime,
    private readonly log: Logger,
    private readonly stats: Stats,
    private readonly keepalive: HostKeepalive,
  ) {}

  labelsOf(splice: TcpSplice | UdpSplice): FlowLabels | undefined {
    return this.labels.get(splice);
  }

  tcp(conn: TcpConnection, target: DialTarget, labels: FlowLabels): void {
    const splice = new TcpSplice(this.rt, true, this, this.keepalive, !this.log.quiet);
    splice.bindGuest(conn);
    this.labels.set(splice, labels);
    this.tcpSplices.add(splice);
    splice.onHostOpen = (sp) => {
      if (sp.guestClosed) return;
      this.stats.bump("connect-ok");
      this.log.flow(`[+] tcp://${labels.guest}/${hostPair(sp)} ${labels.label} conn new`);
      conn.accept(this.rt.now());
      this.rt.afterActivity();
    };
    splice.onConnectError = (sp, err) => {
      const code = err.code ?? "";
      const text = ERRNO_TEXT[code] ?? err.message;
      sp.errors.stopR2L(`dial tcp ${formatHostPort(target.ip, target.port)}: connect: ${text}`, null);
      this.log.flow(`[!] tcp://${labels.guest}/${labels.target} ${labels.label} conn error: ${sp.errors.format()}`);
      const now = this.rt.now();
      if (code === "ECONNREFUSED") {
        this.stats.bump("connect-refused");
        this.stack.tcp.refuse(conn, now);
      } else {
        this.stats.bump(code === "ETIMEDOUT" ? "connect-timeout" : "connect-unreachable");
        this.stack.tcp.unreachable(conn, now);
      }
      this.tcpSplices.delete(sp);
      this.rt.afterActivity();
    };
    const opts = {
      hostname: target.ip,
      port: target.port,
      allowHalfOpen: true,
      data: splice,
      socket: hostSocketHandlers,
      // Honoured by Bun although missing from its types (bun-notes §8).
      ...(target.source !== null ? { localAddress: target.source } : {}),
    };
    Bun.connect<TcpSplice>(opts as Bun.TCPSocketConnectOptions<TcpSplice>).catch(() => {});
  }

  spliceDone(splice: TcpSplice): void {
    this.tcpSplices.delete(splice);
    const labels = this.labels.get(splice);
    if (labels === undefined || splice.sock === null) return; // never connected: the error line said it
    this.log.flow(`[-] tcp://${labels.guest}/${hostPair(splice)} ${labels.label} conn done: ${splice.errors.format()}`);
  }

  /**
   * Accepts a guest UDP flow and creates its connected host socket. The
   * target may still be resolving (-R names): datagrams wait in the
   * splice's queue; a null target closes the flow.
   */
  udp(flow: UdpFlow, target: DialTarget | Promise<DialTarget | null>, labels: FlowLabels | ((t: DialTarget) => FlowLabels)): void {
    const splice = new UdpSplice(flow, this.rt, this.stats, this);
    this.udpSplices.add(splice);
    void Promise.resolve(target).then(async (t) => {
      if (t === null) {
        flow.close();
        return;
      }
      const l = typeof labels === "function" ? labels(t) : labels;
      splice.closeAfterReply = l.rpc;
      this.labels.set(splice, l);
      const err = await splice.connect(t);
      if (err === "closed") return;
      if (err !== null) {
        splice.errors.stopR2L(`dial udp ${formatHostPort(t.ip, t.port)}: ${err}`, null);
        this.log.flow(`[!] udp://${l.guest}/${l.target} ${l.label} conn error: ${splice.errors.format()}`);
        this.stats.bump("connect-unreachable");
        this.labels.delete(splice);
        flow.close();
        return;
      }
      this.stats.bump("connect-ok");
      this.log.flow(`[+] udp://${l.guest}/${splice.hostLocal}-${splice.hostRemote} ${l.label} conn new`);
    });
  }

  udpSpliceDone(splice: UdpSplice): void {
    this.udpSplices.delete(splice);
    const labels = this.labels.get(splice);
    if (labels === undefined || splice.hostLocal === "") return;
    this.log.flow(`[-] udp://${labels.guest}/${splice.hostLocal}-${splice.hostRemote} ${labels.label} conn done: ${splice.errors.format()}`);
  }
}

function hostPair(s: TcpSplice): string {
  return `${s.hostLocal}-${s.hostRemote}`;
}
