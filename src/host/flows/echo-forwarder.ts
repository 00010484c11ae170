// -icmp=forward: guest pings to other hosts go out through the host's
// unprivileged ICMP echo sockets (icmp(7)), one per echo flow (the engine's
// src/stack/echo.ts), so the guest sees the replies the host gets, after
// the real round trip, or nothing, or the ICMP error the host got.
//
// The routing policy applies as to TCP and UDP (network "icmp" for
// -allow/-deny rules, no port): a denied destination is answered with an
// administratively prohibited error from the gateway, as a denied TCP
// connect gets a RST.
//
// Where the kernel refuses ICMP sockets (the process's groups are not in
// net.ipv4.ping_group_range), the stack goes back to answering every ping
// itself, and says so once.
import { EAGAIN } from "../../../ffi/libc.ts";
import { SockAddr } from "../../../ffi/net.ts";
import { DATAGRAMS_PER_TURN, datagramBuffer, UdpSocket, type UdpSocketOwner } from "../../io/udp-socket.ts";
import { DialError } from "../../io/dial-error.ts";
import type { Reactor } from "../../io/reactor.ts";
import { EchoDecision, type EchoEvents, type EchoFlow, type EchoHandler, type EchoLayer } from "../../stack/echo.ts";
import type { Stats } from "../../stack/stats.ts";
import type { RoutingPolicy } from "../control/policy.ts";
import { verdictAllows } from "../control/policy.ts";
import type { StackClock } from "../clock.ts";
import { destinationIp } from "./flow-addr.ts";
import { guestErrorOf, guestErrorOfErrno, payloadMtuOf } from "./guest-errors.ts";

const EPERM = 1;
const EACCES = 13;
/** ICMP echo reply types (RFC 792, RFC 4443 §4.2). */
const ECHO_REPLY_V4 = 0;
const ECHO_REPLY_V6 = 129;

/** Where a reply came from, or which destination an error was about. */
const from = new SockAddr();

/** One echo flow's host socket. */
class EchoPeer implements EchoHandler, UdpSocketOwner {
  sock: UdpSocket | null = null;
  readonly to = new SockAddr();

  constructor(
    readonly flow: EchoFlow,
    private readonly fwd: EchoForwarder,
    readonly family: 4 | 6,
  ) {}

  onEchoRequest(flow: EchoFlow, buf: Uint8Array, off: number, len: number): void {
    // The kernel puts its own identifier in and fills the checksum.
    const n = this.sock!.sendTo(buf, off, len, this.to);
    if (n >= 0) return;
    this.fwd.stats.drop("icmp-echo-send-failed");
    // No route, a local firewall: the guest hears it as from a router,
    // quoting its request as it sent it.
    const what = guestErrorOfErrno(-n);
    if (what !== -1) flow.error(what, 0, buf, off, this.fwd.clock.now());
  }

  udpReadable(sock: UdpSocket): void {
    const clock = this.fwd.clock;
    const now = clock.now();
    if (sock.errorQueued) this.readErrors(now);
    const replyType = this.family === 4 ? ECHO_REPLY_V4 : ECHO_REPLY_V6;
    let budget = DATAGRAMS_PER_TURN;
    while (sock.readable && this.flow.open) {
      if (budget-- === 0) {
        sock.readLater();
        break;
      }
      const n = sock.recvFrom(datagramBuffer, 0, datagramBuffer.length, from);
      if (n === -EAGAIN) break;
      if (n < 0) {
        this.readErrors(now);
        continue;
      }
      if (n < 8 || datagramBuffer[0] !== replyType) {
        this.fwd.stats.drop("icmp-echo-reply-bad");
        continue;
      }
      this.flow.reply(datagramBuffer, 0, n, now);
    }
    clock.afterActivity();
  }

  /** ICMP errors about our requests (destination unreachable, too big): to the guest, quoting its request. */
  private readErrors(now: number): void {
    const sock = this.sock!;
    while (this.flow.open) {
      const e = sock.readError(from);
      if (e === null) return;
      const what = guestErrorOf(e);
      if (what !== -1 && e.dataLen >= 8) this.flow.error(what, payloadMtuOf(e, this.family), e.data, 0, now);
    }
  }

  onClosed(_flow: EchoFlow): void {
    this.sock?.close();
    this.sock = null;
  }
}

export class EchoForwarder implements EchoEvents {
  constructor(
    private readonly echo: EchoLayer,
    private readonly reactor: Reactor,
    readonly clock: StackClock,
    readonly stats: Stats,
    private readonly policy: RoutingPolicy,
    /** Told once when ICMP sockets are not permitted. */
    private readonly warn: (line: string) => void,
  ) {}

  echoNewFlow(flow: EchoFlow): EchoDecision {
    const dst = destinationIp(flow);
    // An IPv4-mapped destination is never a real IPv6 one on the wire (RFC 4291 §2.5.5.2).
    if (dst.family !== flow.family || !verdictAllows(this.policy.decide("icmp", dst, 0))) return EchoDecision.Prohibited;
    const peer = new EchoPeer(flow, this, dst.family);
    const sock = UdpSocket.echo(this.reactor, dst.family, peer);
    if (sock instanceof DialError) {
      if (sock.errno !== EACCES && sock.errno !== EPERM) return EchoDecision.Forward; // no handler: lost, counted
      this.warn(`[!] ICMP echo sockets are not permitted here (net.ipv4.ping_group_range does not include our groups): the stack answers guest pings itself`);
      this.echo.stop();
      return EchoDecision.Local;
    }
    peer.sock = sock;
    peer.to.set(dst.bytes, 0);
    flow.handler = peer;
    return EchoDecision.Forward;
  }
}
