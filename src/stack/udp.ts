// UDP toward the guest: one flow per 4-tuple (guest address and port, and
// the address and port it talks to), message boundaries kept both ways,
// each flow ending after an idle time that the host side sets (125 s of
// silence in both directions, 5 s once one side ended: docs/compatibility.md,
// Timeouts and keepalive).
//
// Cap: at most `maxFlows` flows (-max-udp-flows). A new flow beyond it
// evicts the least recently active one (limit "udp-flows"), so a guest
// that sprays datagrams at new destinations or from forged sources never
// gets refused while an idle flow can go.
import { UdpView, UDP_HEADER_LEN } from "../wire/udp.ts";
import { IPPROTO_UDP } from "../wire/ipv4.ts";
import { WireError } from "../wire/errors.ts";
import { writeU16 } from "../wire/bytes.ts";
import type { Egress } from "./egress.ts";
import type { RxMeta } from "./device.ts";
import type { Stats } from "./stats.ts";
import { TimerHeap, type Timed } from "./timer-heap.ts";
import { FlowTable, type FlowTuple } from "./flow-key.ts";
import type { FlowSecret } from "./secret.ts";
import { LruList } from "./lru.ts";

/** virtio_net_hdr gso_type of a UDP segmentation super-frame. */
const GSO_UDP_L4 = 5;

/**
 * Datagrams one super-frame may carry: Linux's UDP_MAX_SEGMENTS, the most
 * a guest app's UDP_SEGMENT send can make. A vnet header written by hand
 * can ask for more (gso_size 1: one frame, 65,000 host datagrams).
 */
const MAX_GSO_SEGMENTS = 128;

/** Largest UDP payloads (RFC 768 length field; IPv6 payload length 65535 - 8). */
export const UDP_MAX_PAYLOAD_V4 = 65507;
export const UDP_MAX_PAYLOAD_V6 = 65527;

/** Why a flow ended: its idle timeout, closed by its handler, or evicted at the flow cap. */
export type UdpCloseReason = "idle" | "closed" | "evicted";

export interface UdpHandler {
  /** A datagram from the guest, valid only during the call. */
  onDatagram(flow: UdpFlow, buf: Uint8Array, off: number, len: number): void;
  /** The flow ended. Called once. */
  onClosed(flow: UdpFlow, reason: UdpCloseReason): void;
}

export interface UdpEvents {
  /**
   * The first datagram of a new guest 4-tuple. To accept, set
   * flow.handler (and flow.idleMs) and return true: the flow is created
   * and the datagram delivered to the handler. Return false to drop it
   * (the next datagram of the tuple asks again). Closing the flow inside
   * the callback drops the datagram too.
   */
  udpNewFlow(flow: UdpFlow): boolean;
}

export class UdpFlow implements FlowTuple, Timed {
  nextInBucket: UdpFlow | null = null;
  /** Activity order (least recently active first), for eviction at the cap. */
  lruPrev: UdpFlow | null = null;
  lruNext: UdpFlow | null = null;
  handler: UdpHandler | null = null;
  /** Free slot for the host side's bookkeeping. */
  tag: unknown = null;
  /** Idle time after which the flow ends (ms). */
  idleMs: number;
  lastActive: number;
  deadline = Infinity;
  heapIndex = -1;
  open = true;

  constructor(
    private readonly layer: UdpLayer,
    readonly family: 4 | 6,
    readonly destV4: number,
    readonly guestV4: number,
    readonly destV6: Uint8Array | null,
    readonly guestV6: Uint8Array | null,
    readonly destPort: number,
    readonly guestPort: number,
    now: number,
  ) {
    this.lastActive = now;
    this.idleMs = layer.idleMs;
  }

  /** Sends one datagram to the guest (fragmented by IP if larger than the MTU). */
  send(buf: Uint8Array, off: number, len: number, now: number): boolean {
    if (!this.open) return false;
    this.lastActive = now;
    this.layer.touch(this);
    return this.layer.sendFrom(this, buf, off, len, now);
  }

  /** Changes the idle timeout, counting from now. */
  setIdle(ms: number, now: number): void {
    this.idleMs = ms;
    this.lastActive = now;
    this.layer.rearm(this);
  }

  close(): void {
    this.layer.close(this, "closed");
  }
}

export class UdpLayer {
  private readonly table: FlowTable<UdpFlow>;
  private readonly timers = new TimerHeap<UdpFlow>();
  private readonly view = new UdpView();
  private now = 0;
  private readonly fire = (f: UdpFlow): void => this.expire(f);
  /** The eviction order, least recently used first. */
  private readonly lru = new LruList<UdpFlow>();
  /** Flows in the table at most (the host sets it from -max-udp-flows). */
  maxFlows = Infinity;

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    private readonly events: UdpEvents,
    /** Keyed ephemeral ports (RFC 6056) and the table's hash. */
    private readonly secret: FlowSecret,
    /** Default idle timeout of new flows (125 s, as upstream). */
    readonly idleMs = 125_000,
  ) {
    this.table = new FlowTable(secret);
  }

  get flowCount(): number {
    return this.table.size;
  }

  flows(): IterableIterator<UdpFlow> {
    return this.table.values();
  }

  inputV4(src: number, dst: number, buf: Uint8Array, off: number, len: number, meta: RxMeta, now: number): void {
    const v = this.view;
    if (v.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("udp-malformed");
      return;
    }
    if (!meta.checksumTrusted && v.checksum !== 0 && !v.verifyChecksumV4(src, dst)) {
      this.stats.drop("udp-bad-checksum");
      return;
    }
    if (this.tooManySegments(meta, len)) return;
    const sport = v.srcPort;
    const dport = v.dstPort;
    let f = this.table.findV4(dst, dport, src, sport);
    if (f === null) {
      f = new UdpFlow(this, 4, dst, src, null, null, dport, sport, now);
      if (!this.admit(f)) return;
    }
    this.deliverFrame(f, buf, off, len, meta, now);
  }

  inputV6(buf: Uint8Array, srcOff: number, dstOff: number, off: number, len: number, meta: RxMeta, now: number): void {
    const v = this.view;
    if (v.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("udp-malformed");
      return;
    }
    // RFC 8200 §8.1: a zero checksum is invalid over IPv6.
    if (!meta.checksumTrusted && !v.verifyChecksumV6(buf, srcOff, dstOff)) {
      this.stats.drop("udp-bad-checksum");
      return;
    }
    if (this.tooManySegments(meta, len)) return;
    const sport = v.srcPort;
    const dport = v.dstPort;
    let f = this.table.findV6(buf, dstOff, dport, buf, srcOff, sport);
    if (f === null) {
      f = new UdpFlow(this, 6, 0, 0, buf.slice(dstOff, dstOff + 16), buf.slice(srcOff, srcOff + 16), dport, sport, now);
      if (!this.admit(f)) return;
    }
    this.deliverFrame(f, buf, off, len, meta, now);
  }

  /** A super-frame cut into more than MAX_GSO_SEGMENTS datagrams: dropped whole, counted. */
  private tooManySegments(meta: RxMeta, len: number): boolean {
    if (meta.gsoType !== GSO_UDP_L4 || meta.gsoSize === 0) return false;
    if (Math.ceil((len - UDP_HEADER_LEN) / meta.gsoSize) <= MAX_GSO_SEGMENTS) return false;
    this.stats.drop("udp-gso-too-many-segments");
    return true;
  }

  private admit(f: UdpFlow): boolean {
    if (!this.events.udpNewFlow(f) || f.handler === null) {
      this.stats.drop("udp-denied");
      return false;
    }
    // The host side may fail at once (no route) and close the flow inside
    // the callback: it was never in the table, so it just ends here.
    if (!f.open) return false;
    this.insert(f);
    return true;
  }

  /** Adds a flow to the table, evicting the least recently active one at the cap. */
  private insert(f: UdpFlow): void {
    while (this.table.size >= this.maxFlows && this.lru.head !== null) {
      this.stats.limit("udp-flows");
      this.close(this.lru.head, "evicted");
    }
    this.table.insert(f);
    this.lru.touch(f);
    this.rearm(f);
  }

  /** The flow carried a datagram: it goes to the back of the eviction order. */
  touch(f: UdpFlow): void {
    this.lru.touch(f);
  }

  /**
   * Hands the datagram(s) of one frame to the flow. A UDP segmentation
   * offload super-frame (virtio GSO_UDP_L4, from a guest app using
   * UDP_SEGMENT) carries several datagrams of gsoSize bytes after one
   * header: each is delivered on its own, as the kernel would have split
   * them.
   */
  private deliverFrame(f: UdpFlow, buf: Uint8Array, off: number, len: number, meta: RxMeta, now: number): void {
    f.lastActive = now;
    this.lru.touch(f);
    const h = f.handler!;
    if (meta.gsoType !== GSO_UDP_L4 || meta.gsoSize === 0) {
      h.onDatagram(f, buf, this.view.payloadOff, this.view.payloadLen);
      return;
    }
    const end = off + len; // the IP payload bounds a super-frame, not the UDP length field
    for (let p = off + UDP_HEADER_LEN; p < end && f.open; p += meta.gsoSize) {
      h.onDatagram(f, buf, p, Math.min(meta.gsoSize, end - p));
    }
  }

  /** Opens a flow toward the guest (for -L): dest is the source we send from. */
  openV4(destIp: number, destPort: number, guestIp: number, guestPort: number, handler: UdpHandler, now: number): UdpFlow {
    const port = destPort || this.secret.ephemeralPortV4(this.table, destIp, guestIp, guestPort);
    const f = new UdpFlow(this, 4, destIp, guestIp, null, null, port, guestPort, now);
    return this.register(f, handler);
  }

  openV6(dest: Uint8Array, destPort: number, guest: Uint8Array, guestPort: number, handler: UdpHandler, now: number): UdpFlow {
    const port = destPort || this.secret.ephemeralPortV6(this.table, dest, guest, guestPort);
    const f = new UdpFlow(this, 6, 0, 0, dest.slice(0, 16), guest.slice(0, 16), port, guestPort, now);
    return this.register(f, handler);
  }

  private register(f: UdpFlow, handler: UdpHandler): UdpFlow {
    if (f.destPort === 0 || this.table.has(f)) throw new Error("no free local port toward the guest");
    f.handler = handler;
    this.insert(f);
    return f;
  }

  /** Builds and sends one datagram of flow `f` to the guest. */
  sendFrom(f: UdpFlow, buf: Uint8Array, off: number, len: number, now: number): boolean {
    const eg = this.egress;
    const max = f.family === 4 ? UDP_MAX_PAYLOAD_V4 : UDP_MAX_PAYLOAD_V6;
    if (len > max) {
      this.stats.drop("udp-too-big");
      return false;
    }
    const b = eg.buf;
    const at = f.family === 4 ? eg.l4OffV4 : eg.l4OffV6;
    const l4Len = UDP_HEADER_LEN + len;
    writeU16(b, at, f.destPort);
    writeU16(b, at + 2, f.guestPort);
    writeU16(b, at + 4, l4Len);
    writeU16(b, at + 6, 0);
    b.set(buf.subarray(off, off + len), at + UDP_HEADER_LEN);
    if (f.family === 4) {
      eg.checksumV4(f.destV4, f.guestV4, IPPROTO_UDP, at, l4Len, 6);
      eg.sendV4(f.destV4, f.guestV4, IPPROTO_UDP, l4Len, now);
    } else {
      eg.checksumV6(f.destV6!, 0, f.guestV6!, 0, IPPROTO_UDP, at, l4Len, 6);
      eg.sendV6(f.destV6!, 0, f.guestV6!, 0, IPPROTO_UDP, l4Len, now);
    }
    return true;
  }

  rearm(f: UdpFlow): void {
    if (!f.open) return;
    f.deadline = f.lastActive + f.idleMs;
    this.timers.update(f);
  }

  private expire(f: UdpFlow): void {
    const due = f.lastActive + f.idleMs;
    if (due > this.now) {
      // Traffic since the timer was set: the deadline moves, lazily.
      f.deadline = due;
      this.timers.update(f);
      return;
    }
    this.close(f, "idle");
  }

  close(f: UdpFlow, reason: UdpCloseReason): void {
    if (!f.open) return;
    f.open = false;
    f.deadline = Infinity;
    this.timers.remove(f);
    this.table.remove(f);
    this.lru.remove(f);
    f.handler?.onClosed(f, reason);
  }

  poll(now: number): number {
    this.now = now;
    this.timers.run(now, this.fire);
    return this.timers.peek();
  }
}
