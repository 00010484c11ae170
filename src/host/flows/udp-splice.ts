// One guest UDP flow (a 4-tuple) spliced to a host peer through its guest
// endpoint's mapping (udp-nat.ts): one datagram in, one datagram out,
// boundaries kept. While the target is still being resolved (-R names)
// datagrams wait in a small bounded queue. The flow's idle timer (in the
// engine) ends it.
import { errnoText } from "../../../ffi/libc.ts";
import { AF_INET, SockAddr } from "../../../ffi/net.ts";
import type { QueuedError } from "../../../ffi/udp-errors.ts";
import { hardError } from "../../io/udp-socket.ts";
import type { GuestError } from "../../stack/icmp.ts";
import { guestErrorOf, guestErrorOfErrno, payloadMtuOf } from "./guest-errors.ts";
import type { UdpCloseReason, UdpFlow, UdpHandler } from "../../stack/udp.ts";
import type { Stats } from "../../stack/stats.ts";
import type { DialError } from "../../io/dial-error.ts";
import { endpointText } from "../../wire/addr.ts";
import type { DialTarget, FlowLabels } from "./dialer.ts";
import type { Mapping, UdpNat } from "./udp-nat.ts";
import { SpliceErrors } from "./splice-errors.ts";

/** Datagrams held while the target is being resolved. */
const MAX_QUEUED = 64;
const MAX_QUEUED_BYTES = 1 << 20;

export interface UdpSpliceOwner {
  udpSpliceDone(splice: UdpSplice): void;
}

/** Told when a flow sends to its host peer, gets a reply, or ends (the DNS forwarder's in-flight count). */
export interface UdpQueryWatch {
  sent(splice: UdpSplice): void;
  answered(splice: UdpSplice): void;
}

export class UdpSplice implements UdpHandler {
  /** The guest endpoint's mapping, while attached. */
  mapping: Mapping | null = null;
  /** Chain of splices whose peers share a key in the mapping. */
  nextInMapping: UdpSplice | null = null;
  /** The host peer. */
  readonly to = new SockAddr();
  /** Attached to a mapping once (the dialer's log lines tell a failed dial from a flow). */
  connected = false;
  readonly errors = new SpliceErrors();
  /** The host side's addresses, Go-style, captured at connect when logging (for log lines). */
  hostLocal = "";
  hostRemote = "";
  private queue: Uint8Array[] | null = [];
  /** Payload length of the guest's last datagram, for the headers an ICMP error quotes. */
  private lastLen = 0;
  private queuedBytes = 0;
  private closed = false;
  /** -R udprpc: the flow ends right after the first reply reaches the guest. */
  closeAfterReply = false;
  /** Set by the dialer once connected: how the flow's log lines name it. */
  labels: FlowLabels | null = null;

  constructor(
    readonly flow: UdpFlow,
    private readonly nat: UdpNat,
    private readonly stats: Stats,
    private readonly owner: UdpSpliceOwner,
    /** Log lines will name the host side's addresses: read them at connect. */
    private readonly wantAddresses: boolean,
    /** DNS forwarder flows: queries in flight are counted. */
    private readonly queries: UdpQueryWatch | null,
  ) {
    flow.handler = this;
  }

  /** Joins the guest endpoint's mapping and sends what was queued; null, or why it failed. */
  connect(target: DialTarget): DialError | null {
    const err = this.nat.attach(this, target, this.wantAddresses);
    if (err !== null) return err;
    this.connected = true;
    if (this.wantAddresses) this.hostRemote = endpointText(target.ip, target.port);
    const q = this.queue!;
    this.queue = null;
    for (const d of q) this.sendToHost(d, 0, d.length);
    return null;
  }

  onDatagram(_flow: UdpFlow, buf: Uint8Array, off: number, len: number): void {
    this.lastLen = len;
    if (this.queue !== null) {
      if (this.queue.length >= MAX_QUEUED || this.queuedBytes + len > MAX_QUEUED_BYTES) {
        this.stats.drop("udp-connect-queue-full");
        return;
      }
      this.queue.push(buf.slice(off, off + len));
      this.queuedBytes += len;
      return;
    }
    this.sendToHost(buf, off, len);
  }

  private sendToHost(buf: Uint8Array, off: number, len: number): void {
    const m = this.mapping;
    if (m === null) return;
    this.queries?.sent(this);
    const r = m.send(this, buf, off, len);
    if (r >= 0) return;
    this.stats.drop("udp-host-send-failed");
    // A route that went away, a local firewall: the guest hears it as it would from a router.
    const what = guestErrorOfErrno(-r);
    if (what !== -1) this.tellGuest(what, 0);
  }

  /** A datagram from the host peer (in buf[0, len)) for the guest. */
  deliver(buf: Uint8Array, len: number, now: number): void {
    this.queries?.answered(this);
    this.flow.send(buf, 0, len, now);
    if (this.closeAfterReply) this.flow.close();
  }

  /**
   * An ICMP error about the flow's datagrams reached the host socket: the
   * guest gets the matching error, quoting its datagram, and one that a
   * connected socket would have reported ends the flow, as a read error on
   * a connected socket did.
   */
  hostError(e: QueuedError): void {
    const what = guestErrorOf(e);
    if (what !== -1) this.tellGuest(what, payloadMtuOf(e, this.to.family === AF_INET ? 4 : 6));
    if (!hardError(e)) return;
    this.errors.stopR2L(`read udp ${this.hostLocal}->${this.hostRemote}: read: ${errnoText(e.errno)}`, null);
    // upstream ends the flow at its first read error
    this.flow.close();
  }

  private tellGuest(what: GuestError, payloadMtu: number): void {
    this.nat.icmp.udpError(this.flow, this.lastLen, what, payloadMtu, this.nat.clock.now());
  }

  /** A cap took the flow away (`what` names it in the done line). */
  evict(what: string): void {
    this.errors.stopL2R(`${what} reached`, null);
    this.flow.close();
  }

  onClosed(_flow: UdpFlow, reason: UdpCloseReason): void {
    if (this.closed) return;
    this.closed = true;
    if (reason === "idle") this.errors.stopL2R(`i/o timeout`, null);
    else if (reason === "evicted") this.errors.stopL2R(`udp flow limit reached`, null);
    this.queries?.answered(this);
    this.nat.detach(this);
    this.queue = null;
    this.owner.udpSpliceDone(this);
  }
}
