// Two engines back to back over virtual links, driven by a virtual clock.
//
// Stack A plays "the stack" (addresses 10.0.2.2 / fd00::2), stack B plays
// "the guest" (10.0.2.100 / fd00::100). Each stack's transmitted frames go
// through an optional fault injector into a one-way link with a latency
// (and optionally a bandwidth), and come out at the other stack's input.
// Both stacks answer SYNs for any address, so either side can connect to
// the other (stack.tcp.connectV4/V6, the active open used for -L) and the
// other side's tcpConnectRequest accepts: two of our own TCP endpoints
// talking to each other, deterministically.
//
// The event loop (run) delivers due frames, calls each stack's poll(now)
// (flushing coalesced ACKs and running timers), runs the "host" tasks the
// apps deferred, and then jumps the clock to the next deadline: virtual
// time costs nothing but CPU.
import { createHash, type Hash } from "node:crypto";
import { Stack, type StackEvents } from "../../src/stack/stack.ts";
import { RxMeta, type DeviceCaps, type FrameSink, type Medium, type TxMeta } from "../../src/stack/device.ts";
import { Stats } from "../../src/stack/stats.ts";
import { DEFAULT_TCP_CONFIG, type CloseReason, type TcpConfig, type TcpConnection, type TcpHandler } from "../../src/stack/tcp/connection.ts";
import type { UdpFlow, UdpHandler } from "../../src/stack/udp.ts";
import { FaultInjector, Mulberry32, type FaultConfig } from "../../src/link/fault.ts";
import { FlowSecret } from "../../src/stack/secret.ts";
import type { FlowTuple } from "../../src/stack/flow-key.ts";
import { Ipv4View, IPPROTO_TCP, IPPROTO_UDP } from "../../src/wire/ipv4.ts";
import { Ipv6View, Ipv6ExtResult, walkExtensions } from "../../src/wire/ipv6.ts";
import { TcpView, TcpOptions, parseTcpOptions, formatTcpFlags } from "../../src/wire/tcp.ts";
import { UdpView } from "../../src/wire/udp.ts";
import { WireError } from "../../src/wire/errors.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../src/wire/guest-net.ts";

export const A_V4 = 0x0a000202; // 10.0.2.2
export const B_V4 = 0x0a000264; // 10.0.2.100
export const A_V6 = new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
export const B_V6 = new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
export const MAC_A = new Uint8Array([0x70, 0x71, 0xaa, 0x4b, 0x29, 0xaa]);
export const MAC_B = new Uint8Array([0x02, 0x00, 0x00, 0x00, 0x00, 0x64]);

export type SideName = "A" | "B";

// =====================================================================
// Frame decoding (for traces, filters and assertions)
// =====================================================================

/** A decoded TCP or UDP packet (plain data, safe to keep). */
export interface Packet {
  family: 4 | 6;
  proto: "tcp" | "udp" | "other";
  /** IPv4 fragment or IPv6 packet with a Fragment header. */
  fragment: boolean;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  /** "SYN|ACK" */
  flagNames: string;
  window: number;
  payloadLen: number;
  /** Copy of the L4 payload. */
  payload: Uint8Array;
  options: TcpOptions;
  /** IP packet length. */
  ipLen: number;
}

const dv4 = new Ipv4View();
const dv6 = new Ipv6View();
const dext = new Ipv6ExtResult();
const dtcp = new TcpView();
const dudp = new UdpView();

function v4str(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

function v6str(b: Uint8Array, off: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16));
  return parts.join(":");
}

/** Decodes a frame (no checksum verification); null when not IP. */
export function decodeFrame(buf: Uint8Array, off: number, len: number, medium: Medium = "ip"): Packet | null {
  if (medium === "ethernet") {
    if (len < 14) return null;
    off += 14;
    len -= 14;
  }
  if (len < 1) return null;
  const version = buf[off]! >>> 4;
  let family: 4 | 6;
  let l4 = 0;
  let l4Len = 0;
  let proto = 0;
  let fragment = false;
  let src = "";
  let dst = "";
  let ipLen = 0;
  if (version === 4) {
    if (dv4.attach(buf, off, len) !== WireError.Ok) return null;
    family = 4;
    l4 = dv4.payloadOff;
    l4Len = dv4.payloadLen;
    proto = dv4.protocol;
    fragment = dv4.isFragment;
    src = v4str(dv4.src);
    dst = v4str(dv4.dst);
    ipLen = dv4.totalLen;
  } else if (version === 6) {
    if (dv6.attach(buf, off, len) !== WireError.Ok) return null;
    if (walkExtensions(dv6, dext) !== WireError.Ok) return null;
    family = 6;
    l4 = dext.offset;
    l4Len = off + dv6.len - l4;
    proto = dext.protocol;
    fragment = dext.hasFragment;
    src = v6str(buf, dv6.srcOff);
    dst = v6str(buf, dv6.dstOff);
    ipLen = dv6.len;
  } else return null;
  const p: Packet = {
    family,
    proto: "other",
    fragment,
    src,
    dst,
    sport: 0,
    dport: 0,
    seq: 0,
    ack: 0,
    flags: 0,
    flagNames: "",
    window: 0,
    payloadLen: 0,
    payload: new Uint8Array(0),
    options: new TcpOptions(),
    ipLen,
  };
  if (fragment && (version === 6 ? dext.fragOffset !== 0 : dv4.fragOffset !== 0)) return p;
  if (proto === IPPROTO_TCP && dtcp.attach(buf, l4, l4Len) === WireError.Ok) {
    p.proto = "tcp";
    p.sport = dtcp.srcPort;
    p.dport = dtcp.dstPort;
    p.seq = dtcp.seq;
    p.ack = dtcp.ack;
    p.flags = dtcp.flags;
    p.flagNames = formatTcpFlags(dtcp.flags);
    p.window = dtcp.window;
    p.payloadLen = dtcp.payloadLen;
    p.payload = buf.slice(dtcp.payloadOff, dtcp.payloadOff + dtcp.payloadLen);
    parseTcpOptions(dtcp, p.options);
  } else if (proto === IPPROTO_UDP && dudp.attach(buf, l4, l4Len) === WireError.Ok) {
    p.proto = "udp";
    p.sport = dudp.srcPort;
    p.dport = dudp.dstPort;
    p.payloadLen = dudp.payloadLen;
  }
  return p;
}

/** One line per packet, for failure messages. */
export function packetLine(p: Packet): string {
  if (p.proto !== "tcp") return `${p.proto} ${p.src}:${p.sport} > ${p.dst}:${p.dport} len ${p.payloadLen}`;
  const o = p.options;
  let opts = "";
  if (o.mss) opts += ` mss ${o.mss}`;
  if (o.windowScale >= 0) opts += ` ws ${o.windowScale}`;
  if (o.sackPermitted) opts += " sackOK";
  if (o.hasTimestamps) opts += ` ts ${o.tsVal}/${o.tsEcr}`;
  for (let i = 0; i < o.sackCount; i++) opts += ` sack ${o.sackBlocks[2 * i]}-${o.sackBlocks[2 * i + 1]}`;
  return `${p.sport} > ${p.dport} [${p.flagNames}] seq ${p.seq} ack ${p.ack} win ${p.window} len ${p.payloadLen}${opts}`;
}

// =====================================================================
// Test data: a deterministic byte stream, checked byte-exact
// =====================================================================

/** The stream repeats with a prime period, so a misplaced chunk cannot match by accident. */
export const PATTERN_PERIOD = 1_048_573;
const MAX_CHUNK = 256 * 1024;
let patternBuf: Uint8Array | null = null;

function pattern(): Uint8Array {
  if (patternBuf === null) {
    const rng = new Mulberry32(0x5eed);
    patternBuf = new Uint8Array(PATTERN_PERIOD + MAX_CHUNK);
    for (let i = 0; i < PATTERN_PERIOD; i += 4) {
      const v = rng.u32();
      patternBuf[i] = v;
      patternBuf[i + 1] = v >>> 8;
      patternBuf[i + 2] = v >>> 16;
      patternBuf[i + 3] = v >>> 24;
    }
    patternBuf.copyWithin(PATTERN_PERIOD, 0, MAX_CHUNK);
  }
  return patternBuf;
}

/** Stream bytes [offset, offset+len), len <= 256 KiB, as a view (do not modify). */
export function streamBytes(offset: number, len: number): Uint8Array {
  if (len > MAX_CHUNK) throw new Error("streamBytes: chunk too long");
  const p = offset % PATTERN_PERIOD;
  return pattern().subarray(p, p + len);
}

/** Verifies a received stream chunk by chunk against streamBytes, and hashes it. */
export class StreamChecker {
  offset = 0;
  /** Offset of the first wrong byte, or -1. */
  firstMismatch = -1;
  private readonly hash: Hash = createHash("sha256");

  check(buf: Uint8Array, off: number, len: number): void {
    this.hash.update(buf.subarray(off, off + len));
    if (this.firstMismatch < 0) {
      let done = 0;
      while (done < len) {
        const n = Math.min(len - done, MAX_CHUNK);
        const want = streamBytes(this.offset + done, n);
        const got = Buffer.from(buf.buffer, buf.byteOffset + off + done, n);
        if (!got.equals(want)) {
          for (let i = 0; i < n; i++) {
            if (got[i] !== want[i]) {
              this.firstMismatch = this.offset + done + i;
              break;
            }
          }
          break;
        }
        done += n;
      }
    }
    this.offset += len;
  }

  digest(): string {
    return this.hash.copy().digest("hex");
  }
}

/** SHA-256 of the first `total` stream bytes (what the sender sent). */
export function streamDigest(total: number): string {
  const h = createHash("sha256");
  for (let o = 0; o < total; o += MAX_CHUNK) h.update(streamBytes(o, Math.min(MAX_CHUNK, total - o)));
  return h.digest("hex");
}

// =====================================================================
// The "host side" of a connection: a TcpHandler that records everything
// =====================================================================

export type ReadMode = "eager" | "manual";

/** What an AppConn needs from its surroundings: the clock and a host turn. */
export interface HostLoop {
  readonly now: number;
  defer(fn: () => void): void;
}

export class AppConn implements TcpHandler {
  conn!: TcpConnection;
  readonly log: string[] = [];
  established = false;
  peerFin = false;
  closed: CloseReason | null = null;
  readableEvents = 0;
  sendSpaceEvents = 0;
  /** Bytes the app has taken. */
  received = 0;
  /** Keep a copy of everything received (small tests). */
  collect = true;
  private readonly chunks: Uint8Array[] = [];
  readonly checker = new StreamChecker();
  /** "eager": take everything in onData; "manual": take nothing, the test reads. */
  readMode: ReadMode = "eager";
  // --- writing ---
  private writeTotal = 0;
  written = 0;
  private shutdownAfterWrite = false;
  private shutdownDone = false;
  /** Most bytes ever waiting in the connection's send buffer. */
  maxQueued = 0;
  /** Largest conn.send() call (the host reads its socket in chunks). */
  writeChunk = 64 * 1024;
  private pumpQueued = false;
  /** Called once established (tests hook their next step here). */
  onEstablishedHook: ((app: AppConn) => void) | null = null;

  constructor(
    readonly side: Side | null,
    readonly pair: HostLoop,
  ) {}

  onEstablished(_conn: TcpConnection): void {
    this.established = true;
    this.log.push(`established@${this.pair.now}`);
    if (this.onEstablishedHook !== null) this.pair.defer(() => this.onEstablishedHook!(this));
    if (this.writeTotal > this.written) this.queuePump();
  }

  onData(_conn: TcpConnection, buf: Uint8Array, off: number, len: number): number {
    if (this.readMode === "manual") {
      return 0;
    }
    this.take(buf, off, len);
    return len;
  }

  onReadable(_conn: TcpConnection): void {
    this.readableEvents++;
  }

  onPeerFin(_conn: TcpConnection): void {
    this.peerFin = true;
    this.log.push(`peer-fin@${this.pair.now}`);
  }

  onSendSpace(_conn: TcpConnection): void {
    this.sendSpaceEvents++;
    // The host resumes its socket; the bytes arrive in a later turn.
    if (this.writeTotal > this.written) this.queuePump();
  }

  onClosed(_conn: TcpConnection, reason: CloseReason): void {
    if (this.closed !== null) throw new Error(`onClosed called twice (${this.closed}, then ${reason})`);
    this.closed = reason;
    this.log.push(`closed:${reason}@${this.pair.now}`);
  }

  private take(buf: Uint8Array, off: number, len: number): void {
    this.checker.check(buf, off, len);
    if (this.collect) this.chunks.push(buf.slice(off, off + len));
    this.received += len;
  }

  /** Everything received so far, concatenated (needs collect). */
  data(): Uint8Array {
    const out = new Uint8Array(this.received);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  text(): string {
    return new TextDecoder().decode(this.data());
  }

  /** Manual mode: takes up to `max` bytes from the receive buffer and calls consumed(). */
  read(max = Infinity): number {
    const ring = this.conn.rcvBuf;
    let taken = 0;
    while (taken < max && ring.length > 0) {
      const n = Math.min(ring.front(), max - taken);
      this.take(ring.frontBuf, ring.frontOff, n);
      this.conn.consumed(n, this.pair.now);
      taken += n;
    }
    return taken;
  }

  /** Bytes waiting in the receive buffer. */
  get buffered(): number {
    return this.conn.rcvBuf.length;
  }

  /** Sends raw bytes now (small tests). */
  send(data: Uint8Array | string): void {
    const b = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.conn.send(b, 0, b.length, this.pair.now);
  }

  /**
   * Writes `total` bytes of the test stream with backpressure: as much as
   * conn.sendRoom allows, the rest after onSendSpace. Then shuts down the
   * write side when asked.
   */
  writeStream(total: number, shutdown = true): void {
    this.writeTotal = total;
    this.shutdownAfterWrite = shutdown;
    this.queuePump();
  }

  private queuePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    this.pair.defer(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    const c = this.conn;
    if (c.closed || this.closed !== null) return;
    while (this.written < this.writeTotal) {
      const room = c.sendRoom;
      if (room <= 0) return;
      const n = Math.min(room, this.writeTotal - this.written, this.writeChunk, MAX_CHUNK);
      c.send(streamBytes(this.written, n), 0, n, this.pair.now);
      this.written += n;
      if (c.sendBuf.length > this.maxQueued) this.maxQueued = c.sendBuf.length;
    }
    if (this.shutdownAfterWrite && !this.shutdownDone) {
      this.shutdownDone = true;
      c.shutdownWrite(this.pair.now);
    }
  }

  get writeDone(): boolean {
    return this.written >= this.writeTotal;
  }
}

export class UdpApp implements UdpHandler {
  flow!: UdpFlow;
  readonly datagrams: Uint8Array[] = [];
  closed: "idle" | "closed" | null = null;
  closedAt = -1;
  constructor(readonly pair: HostLoop) {}
  onDatagram(_flow: UdpFlow, buf: Uint8Array, off: number, len: number): void {
    this.datagrams.push(buf.slice(off, off + len));
  }
  onClosed(_flow: UdpFlow, reason: "idle" | "closed"): void {
    this.closed = reason;
    this.closedAt = this.pair.now;
  }
}

// =====================================================================
// One side: a Stack, its events, its apps
// =====================================================================

/** What a side does with a guest SYN. */
export type AcceptPolicy = "accept" | "refuse" | "unreachable" | "hold";

export class Side implements StackEvents {
  stack!: Stack;
  readonly stats = new Stats();
  readonly apps: AppConn[] = [];
  readonly udpApps: UdpApp[] = [];
  /** Connection requests seen (also the held ones, for "hold"). */
  readonly requests: TcpConnection[] = [];
  policy: AcceptPolicy = "accept";
  /** Accept after this many virtual ms (the host's connect() taking time). */
  acceptDelayMs = 0;
  /** Configures each app created for an incoming connection. */
  onAccept: ((app: AppConn) => void) | null = null;
  acceptUdp = true;
  /** Idle timeout given to new incoming UDP flows. */
  udpIdleMs = 125_000;
  /** ISSs the stack uses before its keyed ones (queue an ISS here). */
  readonly scripted: number[] = [];

  constructor(
    readonly name: SideName,
    readonly pair: EnginePair,
    readonly v4: number,
    readonly v6: Uint8Array,
  ) {}

  get tcp() {
    return this.stack.tcp;
  }

  tcpConnectRequest(conn: TcpConnection): void {
    this.requests.push(conn);
    if (this.policy === "hold") return;
    const app = new AppConn(this, this.pair);
    app.conn = conn;
    conn.handler = app;
    this.apps.push(app);
    this.onAccept?.(app);
    const decide = (): void => {
      const now = this.pair.now;
      if (this.policy === "accept") conn.accept(now);
      else if (this.policy === "refuse") this.stack.tcp.refuse(conn, now);
      else this.stack.tcp.unreachable(conn, now);
    };
    if (this.acceptDelayMs > 0) this.pair.after(this.acceptDelayMs, decide);
    else this.pair.defer(decide);
  }

  /** Accepts a connection held by policy "hold". */
  acceptHeld(conn: TcpConnection): AppConn {
    const app = new AppConn(this, this.pair);
    app.conn = conn;
    conn.handler = app;
    this.apps.push(app);
    conn.accept(this.pair.now);
    return app;
  }

  udpNewFlow(flow: UdpFlow): boolean {
    if (!this.acceptUdp) return false;
    const app = new UdpApp(this.pair);
    app.flow = flow;
    flow.handler = app;
    flow.idleMs = this.udpIdleMs;
    this.udpApps.push(app);
    return true;
  }

  /** The last app (incoming or outgoing). */
  get lastApp(): AppConn {
    const a = this.apps[this.apps.length - 1];
    if (a === undefined) throw new Error(`side ${this.name} has no connection`);
    return a;
  }
}

// =====================================================================
// Virtual links
// =====================================================================

interface InFlight {
  at: number;
  frame: Uint8Array;
}

/** A one-way link: copies each frame, delivers it after the latency, in order. */
export class VirtualLink implements FrameSink {
  private queue: InFlight[] = [];
  private head = 0;
  /** When the wire is free again (bandwidth model). */
  private busyUntil = 0;
  framesSent = 0;
  bytesSent = 0;
  framesDropped = 0;
  /** Drop a frame (after the fault injector) when this says so. */
  filter: ((p: Packet | null, frame: Uint8Array) => boolean) | null = null;
  /** Called for each frame entering the link (traces). */
  tap: ((p: Packet | null, frame: Uint8Array) => void) | null = null;

  constructor(
    readonly name: string,
    private readonly clock: () => number,
    public latencyMs: number,
    /** Bytes per virtual ms (Infinity: no serialization delay). */
    public bandwidth: number,
    private readonly medium: Medium,
  ) {}

  transmit(buf: Uint8Array, off: number, len: number, _meta: TxMeta | null): void {
    const frame = buf.slice(off, off + len);
    if (this.filter !== null || this.tap !== null) {
      const p = decodeFrame(frame, 0, len, this.medium);
      this.tap?.(p, frame);
      if (this.filter !== null && !this.filter(p, frame)) {
        this.framesDropped++;
        return;
      }
    }
    const now = this.clock();
    let at = now + this.latencyMs;
    if (this.bandwidth !== Infinity) {
      const start = Math.max(now, this.busyUntil);
      this.busyUntil = start + len / this.bandwidth;
      at = this.busyUntil + this.latencyMs;
    }
    this.queue.push({ at, frame });
    this.framesSent++;
    this.bytesSent += len;
  }

  get nextAt(): number {
    return this.head < this.queue.length ? this.queue[this.head]!.at : Infinity;
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Removes and returns the next frame due at `now`, or null. */
  take(now: number): Uint8Array | null {
    if (this.head >= this.queue.length) return null;
    const f = this.queue[this.head]!;
    if (f.at > now) return null;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return f.frame;
  }

  /** Drops everything in flight. */
  clear(): void {
    this.queue = [];
    this.head = 0;
  }
}

// =====================================================================
// The pair
// =====================================================================

export interface PairOptions {
  medium?: Medium;
  mtu?: number;
  /** One-way latency (virtual ms). */
  latencyMs?: number;
  /** Bytes per virtual ms on each link (Infinity: none). */
  bandwidth?: number;
  /** Faults on frames A transmits (toward B) and B transmits (toward A). */
  faultsAB?: FaultConfig | null;
  faultsBA?: FaultConfig | null;
  tcpA?: Partial<TcpConfig>;
  tcpB?: Partial<TcpConfig>;
  /** Seeds of each stack's secret key (ISS, timestamp offsets, ports). */
  seedA?: number;
  seedB?: number;
  /** Start of virtual time. */
  startMs?: number;
  /** RxMeta.checksumTrusted on delivery (false: every checksum verified). */
  checksumTrusted?: boolean;
  /**
   * Both devices offload checksums and TCP segmentation (virtio-style):
   * the stacks send partial checksums and 64 KiB super-segments, which the
   * links deliver whole with checksumTrusted, as a guest kernel gets them.
   */
  offload?: boolean;
  /** Record a trace of every packet. */
  trace?: boolean;
}

export interface TraceEntry {
  at: number;
  dir: "A>B" | "B>A";
  p: Packet | null;
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class EnginePair {
  now: number;
  readonly a: Side;
  readonly b: Side;
  readonly ab: VirtualLink;
  readonly ba: VirtualLink;
  readonly faultAB: FaultInjector | null;
  readonly faultBA: FaultInjector | null;
  readonly medium: Medium;
  readonly caps: DeviceCaps;
  readonly trace: TraceEntry[] = [];
  private readonly rxMeta = new RxMeta();
  private tasks: Array<() => void> = [];
  private timers: Timer[] = [];
  private timerSeq = 0;
  /** Frames delivered in total. */
  delivered = 0;
  private nextA = 0;
  private nextB = 0;

  constructor(opts: PairOptions = {}) {
    this.now = opts.startMs ?? 1000;
    this.medium = opts.medium ?? "ip";
    const clock = (): number => this.now;
    const off = opts.offload ?? false;
    this.caps = { medium: this.medium, mtu: opts.mtu ?? 1500, txChecksumOffload: off, txTcpSegmentation: off };
    const latency = opts.latencyMs ?? 1;
    const bw = opts.bandwidth ?? Infinity;
    this.ab = new VirtualLink("A>B", clock, latency, bw, this.medium);
    this.ba = new VirtualLink("B>A", clock, latency, bw, this.medium);
    this.faultAB = opts.faultsAB ? new FaultInjector(opts.faultsAB, this.ab, this.medium, clock) : null;
    this.faultBA = opts.faultsBA ? new FaultInjector(opts.faultsBA, this.ba, this.medium, clock) : null;
    this.rxMeta.checksumTrusted = opts.checksumTrusted ?? off;
    if (opts.trace) {
      this.ab.tap = (p) => this.trace.push({ at: this.now, dir: "A>B", p });
      this.ba.tap = (p) => this.trace.push({ at: this.now, dir: "B>A", p });
    }
    this.a = new Side("A", this, A_V4, A_V6);
    this.b = new Side("B", this, B_V4, B_V6);
    this.a.stack = this.makeStack(this.a, MAC_A, this.faultAB ?? this.ab, { ...DEFAULT_TCP_CONFIG, ...opts.tcpA }, opts.seedA ?? 1);
    this.b.stack = this.makeStack(this.b, MAC_B, this.faultBA ?? this.ba, { ...DEFAULT_TCP_CONFIG, ...opts.tcpB }, opts.seedB ?? 2);
  }

  private makeStack(side: Side, mac: Uint8Array, sink: FrameSink, tcp: TcpConfig, seed: number): Stack {
    return new Stack(this.caps, sink, side, side.stats, {
      mac,
      netV4: { ...DEFAULT_GUEST_NET_V4, gateway: side.v4 },
      gatewayV6: side.v6,
      tcp,
      secret: new ScriptedSecret(keyFromSeed(seed), side.scripted),
    });
  }

  side(name: SideName): Side {
    return name === "A" ? this.a : this.b;
  }

  peer(name: SideName): Side {
    return name === "A" ? this.b : this.a;
  }

  // --- host-side scheduling ---

  /** Runs fn in the next host turn at the current virtual time. */
  defer(fn: () => void): void {
    this.tasks.push(fn);
  }

  /** Runs fn `ms` virtual milliseconds from now. */
  after(ms: number, fn: () => void): void {
    this.timers.push({ at: this.now + ms, seq: this.timerSeq++, fn });
    this.timers.sort((x, y) => x.at - y.at || x.seq - y.seq);
  }

  // --- opening connections ---

  /**
   * Active open from `from` to the other side's `port` (the other side's
   * policy decides). The source port is `localPort` or an ephemeral one.
   */
  connect(from: SideName, port: number, opts: { family?: 4 | 6; localPort?: number } = {}): AppConn {
    const s = this.side(from);
    const peer = this.peer(from);
    const app = new AppConn(s, this);
    const local = opts.localPort ?? 0;
    app.conn =
      (opts.family ?? 4) === 4
        ? s.stack.tcp.connectV4(s.v4, local, peer.v4, port, app, this.now)
        : s.stack.tcp.connectV6(s.v6, local, peer.v6, port, app, this.now);
    s.apps.push(app);
    return app;
  }

  // --- the event loop ---

  private deliver(link: VirtualLink, to: Side): number {
    let n = 0;
    for (let f = link.take(this.now); f !== null; f = link.take(this.now)) {
      to.stack.input(f, 0, f.length, this.rxMeta, this.now);
      n++;
    }
    return n;
  }

  /** One pass at the current time; returns true when anything happened. */
  private pass(): boolean {
    let active = false;
    const toB = this.deliver(this.ab, this.b);
    const toA = this.deliver(this.ba, this.a);
    if (toB + toA > 0) active = true;
    this.delivered += toA + toB;
    // The batch ended: flush coalesced ACKs, run due timers.
    this.nextA = this.a.stack.poll(this.now);
    this.nextB = this.b.stack.poll(this.now);
    while (this.timers.length > 0 && this.timers[0]!.at <= this.now) {
      this.timers.shift()!.fn();
      active = true;
    }
    if (this.tasks.length > 0) {
      const t = this.tasks;
      this.tasks = [];
      for (const fn of t) fn();
      active = true;
    }
    this.faultAB?.poll(this.now);
    this.faultBA?.poll(this.now);
    if (this.ab.nextAt <= this.now || this.ba.nextAt <= this.now) active = true;
    if (active) {
      // Tasks may have produced output or deadlines: poll again.
      this.nextA = this.a.stack.poll(this.now);
      this.nextB = this.b.stack.poll(this.now);
    }
    return active;
  }

  /** The next virtual time anything is due. */
  nextEvent(): number {
    return Math.min(
      this.nextA,
      this.nextB,
      this.ab.nextAt,
      this.ba.nextAt,
      this.timers.length > 0 ? this.timers[0]!.at : Infinity,
      this.faultAB?.poll(this.now) ?? Infinity,
      this.faultBA?.poll(this.now) ?? Infinity,
    );
  }

  /**
   * Runs until `until()` holds (true), nothing is left to do, or the clock
   * would pass now + maxMs (false; the clock stops at that limit).
   */
  run(until: () => boolean = () => false, maxMs = 3_600_000, maxSteps = 50_000_000): boolean {
    const limit = this.now + maxMs;
    let steps = 0;
    for (;;) {
      let guard = 0;
      while (this.pass()) {
        if (until()) return true;
        if (++guard > 1_000_000) throw new Error("engine pair: no progress in virtual time (livelock)");
      }
      if (until()) return true;
      const next = this.nextEvent();
      if (next === Infinity) return false;
      if (next > limit) {
        this.now = limit;
        this.pass();
        return until();
      }
      if (next > this.now) this.now = next;
      if (++steps > maxSteps) throw new Error("engine pair: too many steps");
    }
  }

  /** Advances the clock by `ms`, running everything due on the way. */
  advance(ms: number): void {
    this.run(() => false, ms);
  }

  /** Runs until `cond` or throws with `what` after maxMs of virtual time. */
  runUntil(cond: () => boolean, what: string, maxMs = 600_000): void {
    if (!this.run(cond, maxMs)) throw new Error(`engine pair: timed out waiting for ${what} (now ${this.now})\n${this.traceTail()}`);
  }

  /** The last trace lines, for failure messages. */
  traceTail(n = 30): string {
    return this.trace
      .slice(-n)
      .map((t) => `${t.at.toFixed(3)} ${t.dir} ${t.p ? packetLine(t.p) : "?"}`)
      .join("\n");
  }

  /** TCP packets in the trace from one side. */
  sent(from: SideName): Array<{ at: number; p: Packet }> {
    const dir = from === "A" ? "A>B" : "B>A";
    return this.trace.filter((t) => t.dir === dir && t.p !== null && t.p.proto === "tcp").map((t) => ({ at: t.at, p: t.p! }));
  }

  /** Drops frames from `from` matching pred (after faults); null removes the filter. */
  dropFrom(from: SideName, pred: ((p: Packet | null) => boolean) | null): void {
    const link = from === "A" ? this.ab : this.ba;
    link.filter = pred === null ? null : (p) => !pred(p);
  }
}


/** A 16-byte secret key drawn from a seeded PRNG (reproducible tests). */
export function keyFromSeed(seed: number): Uint8Array {
  const rng = new Mulberry32(seed);
  const key = new Uint8Array(16);
  for (let i = 0; i < 16; i += 4) new DataView(key.buffer).setUint32(i, rng.u32());
  return key;
}

/**
 * The stack's keyed numbers, except that ISSs a test queued in `scripted`
 * come first (each new connection, active or passive, takes one).
 */
export class ScriptedSecret extends FlowSecret {
  constructor(
    key: Uint8Array,
    private readonly scripted: number[],
  ) {
    super(key);
  }

  override tcpIsn(t: FlowTuple, now: number): number {
    return this.scripted.length > 0 ? this.scripted.shift()! >>> 0 : super.tcpIsn(t, now);
  }
}
