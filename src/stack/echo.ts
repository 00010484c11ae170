// Guest echo requests to other hosts (-icmp=forward): the host side sends
// them out for real and hands back what comes back, so a ping through the
// stack tells whether the host can reach the destination, with the real
// round-trip time. The stack's own addresses (added to ownV4/ownV6 by the
// host: the gateway, the DNS forwarder) and link-local destinations are
// never forwarded: Icmp answers those itself.
//
// One flow per (guest address, guest identifier, destination): the host
// side keeps one ICMP socket per flow, whose identifier the kernel picks;
// replies and errors come back through the flow, which puts the guest's
// identifier back (RFC 792, RFC 4443 §4).
//
// Cap: at most `maxFlows` flows (limit "icmp-echo-flows"); a new flow
// beyond it evicts the least recently active one. A flow ends after
// ECHO_IDLE_MS without a request (Linux conntrack's ICMP timeout).
import { Icmpv4Type, type Icmpv4View } from "../wire/icmpv4.ts";
import { Icmpv6Type, type Icmpv6View } from "../wire/icmpv6.ts";
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from "../wire/ipv4.ts";
import { readU16, writeU16 } from "../wire/bytes.ts";
import { finish, sum16 } from "../wire/checksum.ts";
import type { Egress } from "./egress.ts";
import type { Stats } from "./stats.ts";
import { GuestError, type Icmp } from "./icmp.ts";
import { TimerHeap, type Timed } from "./timer-heap.ts";
import { FlowTable, eq16, type FlowTuple } from "./flow-key.ts";
import type { FlowSecret } from "./secret.ts";
import { LruList } from "./lru.ts";

/** Idle time after which an echo flow ends (ms). */
export const ECHO_IDLE_MS = 30_000;
/** Echo flows at most, by default (each holds one host socket). */
export const DEFAULT_MAX_ECHO_FLOWS = 1024;

/** What the host side does with the first request of a new flow. */
export const EchoDecision = {
  /** The stack answers it itself (ICMP sockets not permitted, or a stack address). */
  Local: 0,
  /** The host took the flow (flow.handler is set) and sends the request out. */
  Forward: 1,
  /** The routing policy denies the destination: administratively prohibited, from the gateway. */
  Prohibited: 2,
} as const;
export type EchoDecision = (typeof EchoDecision)[keyof typeof EchoDecision];

export interface EchoHandler {
  /** An echo request of the flow: the whole ICMP message in buf[off, off+len), valid only during the call. */
  onEchoRequest(flow: EchoFlow, buf: Uint8Array, off: number, len: number): void;
  /** The flow ended (idle, evicted or closed). Called once. */
  onClosed(flow: EchoFlow): void;
}

export interface EchoEvents {
  /** The first request of a new (guest, identifier, destination); Local and Prohibited leave no flow behind. */
  echoNewFlow(flow: EchoFlow): EchoDecision;
}

/**
 * One guest ping session. As a FlowTuple: dest is the address the guest
 * pinged, guest the guest, destPort 0 and guestPort the guest's identifier.
 */
export class EchoFlow implements FlowTuple, Timed {
  nextInBucket: EchoFlow | null = null;
  lruPrev: EchoFlow | null = null;
  lruNext: EchoFlow | null = null;
  handler: EchoHandler | null = null;
  readonly destPort = 0;
  lastActive: number;
  deadline = Infinity;
  heapIndex = -1;
  open = true;
  /** The guest's last request: its ICMP length, sequence number and checksum (quoted in errors). */
  lastLen = 0;
  lastSeq = -1;
  lastChecksum = 0;

  constructor(
    private readonly layer: EchoLayer,
    readonly family: 4 | 6,
    readonly destV4: number,
    readonly guestV4: number,
    readonly destV6: Uint8Array | null,
    readonly guestV6: Uint8Array | null,
    /** The guest's echo identifier. */
    readonly guestPort: number,
    now: number,
  ) {
    this.lastActive = now;
  }

  /**
   * An echo reply from the destination: the ICMP message as the host's
   * socket received it in buf[off, off+len) (the kernel's identifier, its
   * checksum). It reaches the guest with the guest's identifier.
   */
  reply(buf: Uint8Array, off: number, len: number, now: number): void {
    if (this.open) this.layer.reply(this, buf, off, len, now);
  }

  /**
   * An ICMP error the host got about one of the flow's requests; `sent`
   * holds the request's ICMP header as the host sent it (8 bytes at
   * sentOff: the kernel's identifier and checksum). `payloadMtu`: for
   * TooBig, the largest echo data that fits the path.
   */
  error(what: GuestError, payloadMtu: number, sent: Uint8Array, sentOff: number, now: number): void {
    if (this.open) this.layer.error(this, what, payloadMtu, sent, sentOff, now);
  }

  close(): void {
    this.layer.close(this);
  }
}

const LOCAL = 0;
const HANDLED = 1;
const ADMITTED = 2;

export class EchoLayer {
  private readonly table: FlowTable<EchoFlow>;
  private readonly timers = new TimerHeap<EchoFlow>();
  private readonly fire = (f: EchoFlow): void => this.expire(f);
  /** The eviction order, least recently used first. */
  private readonly lru = new LruList<EchoFlow>();
  private now = 0;
  /** Flows at most (limit "icmp-echo-flows"). */
  maxFlows = DEFAULT_MAX_ECHO_FLOWS;
  /** Addresses the stack answers for itself, besides the gateway (the DNS forwarder's). */
  readonly ownV4: number[] = [];
  readonly ownV6: Uint8Array[] = [];

  private events: EchoEvents | null = null;

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    private readonly icmp: Icmp,
    secret: FlowSecret,
  ) {
    this.table = new FlowTable(secret);
  }

  /** -icmp=forward: echo requests to other hosts are offered to `events` from now on. */
  start(events: EchoEvents): void {
    this.events = events;
    this.icmp.echo = this;
  }

  /** Back to answering every echo request in the stack (ICMP sockets not permitted); the flows end. */
  stop(): void {
    this.icmp.echo = null;
    this.events = null;
    for (const f of [...this.table.values()]) this.close(f);
  }

  get flowCount(): number {
    return this.table.size;
  }

  flows(): IterableIterator<EchoFlow> {
    return this.table.values();
  }

  /** A checked echo request from the guest: true if handled here, false for Icmp to answer it. */
  inputV4(src: number, dst: number, v: Icmpv4View, now: number): boolean {
    if (dst === this.icmp.gatewayV4 || this.ownV4.includes(dst)) return false;
    let f = this.table.findV4(dst, 0, src, v.ident);
    if (f === null) {
      f = new EchoFlow(this, 4, dst, src, null, null, v.ident, now);
      const a = this.admit(f, v.seq, v.checksum, v.len, now);
      if (a !== ADMITTED) return a === HANDLED;
    }
    this.deliver(f, v.buf, v.off, v.len, now);
    return true;
  }

  inputV6(buf: Uint8Array, srcOff: number, dstOff: number, v: Icmpv6View, now: number): boolean {
    // Link-local destinations are on the guest's own link: only the stack is there.
    if ((buf[dstOff] === 0xfe && (buf[dstOff + 1]! & 0xc0) === 0x80) || eq16(this.icmp.gatewayV6, buf, dstOff)) return false;
    for (const a of this.ownV6) if (eq16(a, buf, dstOff)) return false;
    let f = this.table.findV6(buf, dstOff, 0, buf, srcOff, v.ident);
    if (f === null) {
      f = new EchoFlow(this, 6, 0, 0, buf.slice(dstOff, dstOff + 16), buf.slice(srcOff, srcOff + 16), v.ident, now);
      const a = this.admit(f, v.seq, v.checksum, v.len, now);
      if (a !== ADMITTED) return a === HANDLED;
    }
    this.deliver(f, v.buf, v.off, v.len, now);
    return true;
  }

  /**
   * Asks the host about a new flow: ADMITTED (in the table now), HANDLED
   * (denied and answered with an error, or the host failed: no answer) or
   * LOCAL (for Icmp to answer).
   */
  private admit(f: EchoFlow, seq: number, checksum: number, len: number, now: number): number {
    const d = this.events!.echoNewFlow(f);
    if (d === EchoDecision.Local) return LOCAL;
    if (d === EchoDecision.Prohibited) {
      this.stats.drop("icmp-echo-denied");
      f.open = false;
      f.lastLen = len;
      this.sendError(f, GuestError.Prohibited, 0, seq, checksum, now);
      return HANDLED;
    }
    if (f.handler === null || !f.open) {
      // The host could not send it (no socket, no route): the request is lost, as on a real network.
      f.open = false;
      this.stats.drop("icmp-echo-failed");
      return HANDLED;
    }
    while (this.table.size >= this.maxFlows && this.lru.head !== null) {
      this.stats.limit("icmp-echo-flows");
      this.close(this.lru.head);
    }
    this.table.insert(f);
    this.lru.touch(f);
    return ADMITTED;
  }

  private deliver(f: EchoFlow, buf: Uint8Array, off: number, len: number, now: number): void {
    f.lastActive = now;
    f.lastLen = len;
    f.lastSeq = readU16(buf, off + 6);
    f.lastChecksum = readU16(buf, off + 2);
    this.lru.touch(f);
    f.deadline = now + ECHO_IDLE_MS;
    this.timers.update(f);
    f.handler!.onEchoRequest(f, buf, off, len);
  }

  reply(f: EchoFlow, buf: Uint8Array, off: number, len: number, now: number): void {
    const eg = this.egress;
    const b = eg.buf;
    const at = f.family === 4 ? eg.l4OffV4 : eg.l4OffV6;
    if (len < 8 || at + len > b.length) {
      this.stats.drop("icmp-echo-reply-bad");
      return;
    }
    b.set(buf.subarray(off, off + len), at);
    b[at] = f.family === 4 ? Icmpv4Type.EchoReply : Icmpv6Type.EchoReply;
    b[at + 1] = 0;
    writeU16(b, at + 2, 0);
    writeU16(b, at + 4, f.guestPort);
    if (f.family === 4) {
      writeU16(b, at + 2, finish(sum16(b, at, len)));
      eg.sendV4(f.destV4, f.guestV4, IPPROTO_ICMP, len, now);
    } else {
      eg.checksumV6(f.destV6!, 0, f.guestV6!, 0, IPPROTO_ICMPV6, at, len, 2);
      eg.sendV6(f.destV6!, 0, f.guestV6!, 0, IPPROTO_ICMPV6, len, now);
    }
  }

  error(f: EchoFlow, what: GuestError, payloadMtu: number, sent: Uint8Array, sentOff: number, now: number): void {
    const seq = readU16(sent, sentOff + 6);
    let checksum: number;
    if (f.family === 4) {
      // The kernel's checksum covers its own identifier; with the guest's
      // in its place (RFC 1624 eqn. 3) it is the guest's checksum again.
      let sum = (~readU16(sent, sentOff + 2) & 0xffff) + (~readU16(sent, sentOff + 4) & 0xffff) + f.guestPort;
      sum = (sum & 0xffff) + (sum >>> 16);
      sum = (sum & 0xffff) + (sum >>> 16);
      checksum = ~sum & 0xffff;
    } else {
      // The ICMPv6 checksum covers the host's source address and cannot be
      // turned back: the guest's own, if the error is about its last request.
      checksum = seq === f.lastSeq ? f.lastChecksum : 0;
    }
    this.sendError(f, what, payloadMtu, seq, checksum, now);
  }

  /**
   * Quotes the guest's request numbered `seq`, whose checksum was
   * `checksum` (IP header and ICMP header: RFC 792, RFC 4443 §2.4(c)), in
   * a `what` error.
   */
  private sendError(f: EchoFlow, what: GuestError, payloadMtu: number, seq: number, checksum: number, now: number): void {
    const icmp = this.icmp;
    const q = icmp.quote;
    const at = icmp.quoteIp(f, f.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, f.lastLen);
    q[at] = f.family === 4 ? Icmpv4Type.EchoRequest : Icmpv6Type.EchoRequest;
    q[at + 1] = 0;
    writeU16(q, at + 2, checksum);
    writeU16(q, at + 4, f.guestPort);
    writeU16(q, at + 6, seq);
    icmp.sendError(f, what, payloadMtu, at + 8, now);
  }

  private expire(f: EchoFlow): void {
    if (f.lastActive + ECHO_IDLE_MS > this.now) {
      f.deadline = f.lastActive + ECHO_IDLE_MS;
      this.timers.update(f);
      return;
    }
    this.close(f);
  }

  close(f: EchoFlow): void {
    if (!f.open) return;
    f.open = false;
    f.deadline = Infinity;
    this.timers.remove(f);
    if (this.table.remove(f)) this.lru.remove(f);
    f.handler?.onClosed(f);
  }

  poll(now: number): number {
    this.now = now;
    this.timers.run(now, this.fire);
    return this.timers.peek();
  }
}
