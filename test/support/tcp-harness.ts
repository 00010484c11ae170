// One engine and a hand-driven guest: tests build TCP segments byte by
// byte (with the src/wire builders), feed them to the stack at chosen
// virtual times, and look at exactly what comes back and when. For the
// edge cases two of our own endpoints never produce: unacceptable
// segments, forged RSTs, odd windows, sequence numbers near 2^32, old
// timestamps.
import { Stack, type StackEvents } from "../../src/stack/stack.ts";
import { RxMeta, type DeviceCaps, type FrameSink, type TxMeta } from "../../src/stack/device.ts";
import { Stats } from "../../src/stack/stats.ts";
import { DEFAULT_TCP_CONFIG, type TcpConfig, type TcpConnection } from "../../src/stack/tcp/connection.ts";
import type { UdpFlow } from "../../src/stack/udp.ts";
import { Ipv4Repr, IPPROTO_TCP } from "../../src/wire/ipv4.ts";
import { Ipv6Repr } from "../../src/wire/ipv6.ts";
import { TcpRepr, TcpView, TcpOptions, TcpFlags } from "../../src/wire/tcp.ts";
import { AppConn, ScriptedSecret, decodeFrame, keyFromSeed, packetLine, type Packet } from "./engine-pair.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../src/wire/guest-net.ts";

export const { FIN, SYN, RST, PSH, ACK } = TcpFlags;

/** The guest (the flows' guest end) and the address it talks to (their dest end: our stack, spoofing the world). */
export const GUEST_V4 = 0x0a000264; // 10.0.2.100
export const SERVER_V4 = 0xc0000201; // 192.0.2.1
export const GUEST_V6 = new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
export const SERVER_V6 = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

export interface SegmentSpec {
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  /** Options; omit for none. */
  mss?: number;
  ws?: number;
  sackOk?: boolean;
  ts?: [number, number];
  sack?: Array<[number, number]>;
  payload?: Uint8Array | string | number;
  /** Break the checksum. */
  badChecksum?: boolean;
}

export interface Sent {
  at: number;
  p: Packet;
}

export class Harness implements StackEvents, FrameSink {
  now: number;
  readonly stack: Stack;
  readonly stats = new Stats();
  readonly caps: DeviceCaps;
  readonly family: 4 | 6;
  /** Everything the stack transmitted, decoded, with the virtual time. */
  readonly out: Sent[] = [];
  private cursor = 0;
  readonly requests: TcpConnection[] = [];
  readonly apps: AppConn[] = [];
  /** What to do with a guest SYN: accept at once (in the next host turn), or hold. */
  policy: "accept" | "hold" | "refuse" = "accept";
  /** ISSs the stack uses before its keyed ones (queue an ISS here). */
  readonly scripted: number[] = [];
  private tasks: Array<() => void> = [];
  private readonly rxMeta = new RxMeta();
  private readonly frame = new Uint8Array(70_000);
  private deadline = Infinity;

  constructor(opts: { family?: 4 | 6; mtu?: number; tcp?: Partial<TcpConfig>; seed?: number; key?: Uint8Array; startMs?: number } = {}) {
    this.now = opts.startMs ?? 10_000;
    this.family = opts.family ?? 4;
    this.caps = { medium: "ip", mtu: opts.mtu ?? 1500, txChecksumOffload: false, txTcpSegmentation: false };
    this.stack = new Stack(this.caps, this, this, this.stats, {
      mac: new Uint8Array([0x70, 0x71, 0xaa, 0x4b, 0x29, 0xaa]),
      netV4: DEFAULT_GUEST_NET_V4,
      gatewayV6: new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
      tcp: { ...DEFAULT_TCP_CONFIG, ...opts.tcp },
      secret: new ScriptedSecret(opts.key ?? keyFromSeed(opts.seed ?? 99), this.scripted),
    });
  }

  // --- FrameSink ---

  transmit(buf: Uint8Array, off: number, len: number, _meta: TxMeta | null): void {
    const p = decodeFrame(buf, off, len, "ip");
    if (p !== null) this.out.push({ at: this.now, p });
  }

  // --- StackEvents ---

  tcpConnectRequest(conn: TcpConnection): void {
    this.requests.push(conn);
    if (this.policy === "hold") return;
    const app = new AppConn(null, this);
    app.conn = conn;
    conn.handler = app;
    this.apps.push(app);
    const policy = this.policy;
    this.defer(() => {
      if (policy === "accept") conn.accept(this.now);
      else this.stack.tcp.refuse(conn, this.now);
    });
  }

  udpNewFlow(_flow: UdpFlow): boolean {
    return false;
  }

  defer(fn: () => void): void {
    this.tasks.push(fn);
  }

  /** Accepts a held request with a fresh app. */
  acceptHeld(conn: TcpConnection = this.requests[this.requests.length - 1]!): AppConn {
    const app = new AppConn(null, this);
    app.conn = conn;
    conn.handler = app;
    this.apps.push(app);
    conn.accept(this.now);
    this.endBatch();
    return app;
  }

  get app(): AppConn {
    const a = this.apps[this.apps.length - 1];
    if (a === undefined) throw new Error("no connection");
    return a;
  }

  /** The only live connection. */
  get conn(): TcpConnection {
    const all = [...this.stack.tcp.connections()];
    if (all.length !== 1) throw new Error(`expected one connection, have ${all.length}`);
    return all[0]!;
  }

  // --- building and feeding segments ---

  /** Builds one IP+TCP frame from the guest (sport) to the stack (dport). */
  build(sport: number, dport: number, s: SegmentSpec): Uint8Array {
    const o = new TcpOptions();
    if (s.mss !== undefined) o.mss = s.mss;
    if (s.ws !== undefined) o.windowScale = s.ws;
    if (s.sackOk) o.sackPermitted = true;
    if (s.ts) {
      o.hasTimestamps = true;
      o.tsVal = s.ts[0] >>> 0;
      o.tsEcr = s.ts[1] >>> 0;
    }
    for (const [l, r] of s.sack ?? []) o.addSackBlock(l, r);
    const tcp = new TcpRepr({
      srcPort: sport,
      dstPort: dport,
      seq: s.seq >>> 0,
      ack: (s.ack ?? 0) >>> 0,
      flags: s.flags,
      window: s.window ?? 65535,
      options: o,
    });
    let payload: Uint8Array;
    if (s.payload === undefined) payload = new Uint8Array(0);
    else if (typeof s.payload === "string") payload = new TextEncoder().encode(s.payload);
    else if (typeof s.payload === "number") payload = new Uint8Array(s.payload).map((_, i) => (i * 7 + 3) & 0xff);
    else payload = s.payload;
    const b = this.frame;
    const ipLen = this.family === 4 ? 20 : 40;
    const hl = tcp.emit(b, ipLen);
    b.set(payload, ipLen + hl);
    const l4Len = hl + payload.length;
    const v = new TcpView().wrap(b, ipLen, l4Len);
    if (this.family === 4) {
      new Ipv4Repr({ src: GUEST_V4, dst: SERVER_V4, protocol: IPPROTO_TCP, payloadLen: l4Len, ttl: 64 }).emit(b, 0);
      v.fillChecksumV4(GUEST_V4, SERVER_V4);
    } else {
      new Ipv6Repr({ src: GUEST_V6, dst: SERVER_V6, nextHeader: IPPROTO_TCP, payloadLen: l4Len, hopLimit: 64 }).emit(b, 0);
      v.fillChecksumV6(b, 8, 24);
    }
    if (s.badChecksum) v.checksum = v.checksum ^ 0x5a5a;
    return b.slice(0, ipLen + l4Len);
  }

  /** Feeds one frame and ends the batch (ACKs flushed, host turn run). */
  inject(frame: Uint8Array, endBatch = true): void {
    this.stack.input(frame, 0, frame.length, this.rxMeta, this.now);
    if (endBatch) this.endBatch();
  }

  /** The device's batch ended: flush, run host tasks, poll again. */
  endBatch(): void {
    this.deadline = this.stack.poll(this.now);
    for (let guard = 0; this.tasks.length > 0 && guard < 100; guard++) {
      const t = this.tasks;
      this.tasks = [];
      for (const fn of t) fn();
      this.deadline = this.stack.poll(this.now);
    }
  }

  /** Advances virtual time by `ms`, running every timer on the way. */
  advance(ms: number): void {
    const target = this.now + ms;
    this.endBatch();
    let guard = 0;
    while (this.deadline <= target) {
      if (this.deadline > this.now) this.now = this.deadline;
      this.endBatch();
      if (++guard > 1_000_000) throw new Error("harness: timers do not advance");
    }
    this.now = target;
    this.endBatch();
  }

  /** Advances to the next timer deadline (at most `max` ms); returns the time advanced. */
  advanceToNext(max = 3_600_000): number {
    this.endBatch();
    const start = this.now;
    const to = Math.min(this.deadline, this.now + max);
    this.now = to;
    this.endBatch();
    return to - start;
  }

  get nextDeadline(): number {
    this.endBatch();
    return this.deadline;
  }

  // --- looking at output ---

  /** Packets sent since the last take(). */
  take(): Sent[] {
    const r = this.out.slice(this.cursor);
    this.cursor = this.out.length;
    return r;
  }

  /** Exactly one packet since the last take(); returns it. */
  one(): Packet {
    const r = this.take();
    if (r.length !== 1) throw new Error(`expected one packet, got ${r.length}:\n${r.map((x) => packetLine(x.p)).join("\n")}`);
    return r[0]!.p;
  }

  /** No packet since the last take(). */
  none(): void {
    const r = this.take();
    if (r.length !== 0) throw new Error(`expected no packet, got ${r.length}:\n${r.map((x) => packetLine(x.p)).join("\n")}`);
  }
}

/**
 * A guest endpoint built by hand on top of a Harness: keeps its own
 * sequence numbers and the stack's, so tests write the interesting field
 * and let the rest default.
 */
export class Guest {
  /** Guest's next sequence number. */
  seq: number;
  /** What the guest acknowledges (the stack's next sequence number). */
  ack = 0;
  /** The stack's ISS, from its SYN-ACK. */
  serverIss = 0;
  ts = 0;
  /** Timestamp the guest echoes (the stack's last TSval). */
  tsEcr = 0;
  window = 65535;
  synAck: Packet | null = null;

  constructor(
    readonly h: Harness,
    readonly opts: { sport?: number; dport?: number; iss?: number; mss?: number; ws?: number; sackOk?: boolean; ts?: boolean; tsStart?: number } = {},
  ) {
    this.seq = (opts.iss ?? 1_000_000) >>> 0;
    this.ts = opts.tsStart ?? 500;
  }

  get sport(): number {
    return this.opts.sport ?? 40000;
  }
  get dport(): number {
    return this.opts.dport ?? 80;
  }

  /** Sends a raw segment with this guest's ports. */
  raw(s: SegmentSpec, endBatch = true): void {
    this.h.inject(this.h.build(this.sport, this.dport, s), endBatch);
  }

  /** A segment with the guest's current seq/ack/window/timestamps (override any). */
  send(s: Partial<SegmentSpec> & { flags?: number } = {}, endBatch = true): void {
    const spec: SegmentSpec = {
      seq: this.seq,
      ack: this.ack,
      flags: ACK,
      window: this.window,
      ...(this.opts.ts ? { ts: [this.ts, this.tsEcr] as [number, number] } : {}),
      ...s,
    };
    this.raw(spec, endBatch);
  }

  /** The guest's SYN. */
  syn(): void {
    this.raw({
      seq: this.seq,
      flags: SYN,
      window: this.window,
      mss: this.opts.mss ?? 1460,
      ...(this.opts.ws !== undefined ? { ws: this.opts.ws } : {}),
      sackOk: this.opts.sackOk ?? false,
      ...(this.opts.ts ? { ts: [this.ts, 0] as [number, number] } : {}),
    });
  }

  /** Reads the stack's SYN-ACK (which must be the only packet out). */
  readSynAck(p: Packet = this.h.one()): Packet {
    if ((p.flags & (SYN | ACK)) !== (SYN | ACK)) throw new Error(`not a SYN-ACK: ${packetLine(p)}`);
    this.synAck = p;
    this.serverIss = p.seq;
    this.ack = (p.seq + 1) >>> 0;
    this.seq = p.ack;
    if (p.options.hasTimestamps) this.tsEcr = p.options.tsVal;
    return p;
  }

  /** Full passive-open handshake against an accepting harness. */
  handshake(): AppConn {
    this.syn();
    this.readSynAck();
    this.send({ flags: ACK });
    return this.h.app;
  }

  /** Data from the guest at its current seq (advances seq). */
  data(payload: Uint8Array | string | number, extra: Partial<SegmentSpec> = {}, endBatch = true): void {
    const len = typeof payload === "number" ? payload : typeof payload === "string" ? new TextEncoder().encode(payload).length : payload.length;
    this.send({ flags: ACK | PSH, payload, ...extra }, endBatch);
    this.seq = (this.seq + len) >>> 0;
  }

  /** Absorbs a packet from the stack: acknowledges its data (updates ack and tsEcr). */
  absorb(p: Packet): void {
    const end = (p.seq + p.payloadLen + (p.flags & FIN ? 1 : 0)) >>> 0;
    if (((end - this.ack) | 0) > 0 && ((p.seq - this.ack) | 0) <= 0) this.ack = end;
    if (p.options.hasTimestamps) this.tsEcr = p.options.tsVal;
  }
}

/** Handshake with the given guest options; returns harness, guest and the host app. */
export function setup(
  gopts: ConstructorParameters<typeof Guest>[1] = {},
  hopts: ConstructorParameters<typeof Harness>[0] = {},
): { h: Harness; g: Guest; app: ReturnType<Guest["handshake"]> } {
  const h = new Harness(hopts);
  const g = new Guest(h, gopts);
  const app = g.handshake();
  h.take();
  return { h, g, app };
}
