// Dialing the host side for guest-started flows: routed flows and -R
// forwards. The guest's SYN is answered only once the host connect() has an
// outcome (connected: SYN-ACK; refused: RST, so the guest sees
// ECONNREFUSED at once; unreachable: ICMP unreachable), unlike upstream,
// which accepted first and closed later (a bug there;
// docs/compatibility.md, Blocked and allowed flows).
import { ECONNREFUSED, ETIMEDOUT } from "../../../ffi/libc.ts";
import type { Stack } from "../../stack/stack.ts";
import type { Stats } from "../../stack/stats.ts";
import type { TcpConnection } from "../../stack/tcp/connection.ts";
import type { UdpFlow } from "../../stack/udp.ts";
import { DialError } from "../../io/dial-error.ts";
import { endpointText, type IP } from "../../wire/addr.ts";
import type { Reactor } from "../../io/reactor.ts";
import { TcpSocket } from "../../io/tcp-socket.ts";
import type { Logger } from "../control/log.ts";
import type { StackClock } from "../clock.ts";
import { HostKeepalive, TcpSplice, type SpliceOwner } from "./tcp-splice.ts";
import { UdpSplice, type UdpQueryWatch, type UdpSpliceOwner } from "./udp-splice.ts";
import type { UdpNat } from "./udp-nat.ts";

export interface DialTarget {
  ip: IP;
  port: number;
  /** Source address to bind (-source-ipv4 / -source-ipv6), or null. */
  source: IP | null;
}

/** How a flow is named in its log lines (docs/compatibility.md, Stdout lines). */
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


export class Dialer implements SpliceOwner, UdpSpliceOwner {
  constructor(
    private readonly stack: Stack,
    private readonly clock: StackClock,
    private readonly reactor: Reactor,
    private readonly log: Logger,
    private readonly stats: Stats,
    private readonly keepalive: HostKeepalive,
    private readonly nat: UdpNat,
  ) {}

  tcp(conn: TcpConnection, target: DialTarget, labels: FlowLabels): void {
    // The guest may have reset while an -R target name resolved.
    if (conn.closed) return;
    const splice = new TcpSplice(this.clock, true, this, this.keepalive, !this.log.quiet);
    splice.bindGuest(conn);
    splice.target = target;
    splice.labels = labels;
    if (splice.wantAddresses) splice.dialRemote = endpointText(target.ip, target.port);
    const r = TcpSocket.dial(this.reactor, target.ip.bytes, target.port, target.source?.bytes ?? null, splice);
    // Failed at once (no route, a source address we do not have): the same outcome, now.
    if (r instanceof DialError) this.dialFailed(splice, r);
    else splice.dialStarted(r);
  }

  hostOpened(splice: TcpSplice): void {
    const labels = splice.labels!;
    this.stats.bump("connect-ok");
    this.log.flow("conn-new", `[+] tcp://${labels.guest}/${hostPair(splice)} ${labels.label} conn new`);
    splice.conn.accept(this.clock.now());
    this.clock.afterActivity();
  }

  dialFailed(splice: TcpSplice, why: DialError): void {
    const target = splice.target!;
    const labels = splice.labels!;
    const err = why.errno;
    splice.errors.stopR2L(`dial tcp ${endpointText(target.ip, target.port)}: ${why.text}`, null);
    this.log.flow("dial-error", `[!] tcp://${labels.guest}/${labels.target} ${labels.label} conn error: ${splice.errors.format()}`);
    const now = this.clock.now();
    if (err === ECONNREFUSED) {
      this.stats.bump("connect-refused");
      this.stack.tcp.refuse(splice.conn, now);
    } else {
      this.stats.bump(err === ETIMEDOUT ? "connect-timeout" : "connect-unreachable");
      this.stack.tcp.unreachable(splice.conn, now);
    }
    this.clock.afterActivity();
  }

  spliceDone(splice: TcpSplice): void {
    const labels = splice.labels;
    if (labels === null || splice.sock === null) return; // never connected: the error line said it
    this.log.flow("conn-done", `[-] tcp://${labels.guest}/${hostPair(splice)} ${labels.label} conn done: ${splice.errors.format()}`);
  }

  /**
   * Accepts a guest UDP flow and maps it to its guest endpoint's host
   * socket (udp-nat.ts). The target may still be resolving (-R names):
   * datagrams wait in the splice's queue; a null target closes the flow.
   * `queries` counts the DNS forwarder's queries in flight.
   */
  udp(
    flow: UdpFlow,
    target: DialTarget | Promise<DialTarget | null>,
    labels: FlowLabels | ((t: DialTarget) => FlowLabels),
    queries: UdpQueryWatch | null = null,
  ): void {
    const splice = new UdpSplice(flow, this.nat, this.stats, this, !this.log.quiet, queries);
    if (!(target instanceof Promise)) {
      this.connectUdp(splice, target, typeof labels === "function" ? labels(target) : labels);
      return;
    }
    void target.then((t) => {
      if (t === null) flow.close();
      else this.connectUdp(splice, t, typeof labels === "function" ? labels(t) : labels);
      this.clock.afterActivity();
    });
  }

  private connectUdp(splice: UdpSplice, t: DialTarget, l: FlowLabels): void {
    if (!splice.flow.open) return;
    splice.closeAfterReply = l.rpc;
    splice.labels = l;
    const err = splice.connect(t);
    if (err !== null) {
      splice.errors.stopR2L(`dial udp ${endpointText(t.ip, t.port)}: ${err.text}`, null);
      this.log.flow("dial-error", `[!] udp://${l.guest}/${l.target} ${l.label} conn error: ${splice.errors.format()}`);
      this.stats.bump("connect-unreachable");
      splice.labels = null;
      splice.flow.close();
      return;
    }
    this.stats.bump("connect-ok");
    this.log.flow("conn-new", `[+] udp://${l.guest}/${splice.hostLocal}-${splice.hostRemote} ${l.label} conn new`);
  }

  udpSpliceDone(splice: UdpSplice): void {
    const labels = splice.labels;
    if (labels === null || !splice.connected) return; // never connected: the error line said it
    this.log.flow("conn-done", `[-] udp://${labels.guest}/${splice.hostLocal}-${splice.hostRemote} ${labels.label} conn done: ${splice.errors.format()}`);
  }
}

function hostPair(s: TcpSplice): string {
  return `${s.hostLocal}-${s.hostRemote}`;
}
