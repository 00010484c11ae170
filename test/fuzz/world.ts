// The system under test: one Stack per device (Ethernet and raw-IP, with
// and without offloads), the host side of each (a TcpHandler and
// UdpHandler that record what the engine hands over), a virtual clock,
// and the per-step invariant checks. Steps come from the generators or
// from a replay file; the world executes them the same way either way.
import { Stack, type StackEvents } from "../../src/stack/stack.ts";
import { RxMeta, TX_HEADROOM, type DeviceCaps, type FrameSink, type Medium, type TxMeta } from "../../src/stack/device.ts";
import { Stats } from "../../src/stack/stats.ts";
import { DEFAULT_TCP_CONFIG, TcpState, type CloseReason, type TcpConnection, type TcpHandler } from "../../src/stack/tcp/connection.ts";
import type { UdpFlow, UdpHandler } from "../../src/stack/udp.ts";
import { Mulberry32 } from "../../src/link/fault.ts";
import { FlowSecret } from "../../src/stack/secret.ts";
import {
  FuzzFailure,
  OutputFragments,
  TAINT,
  checkOutputFrame,
  checkState,
  containsTaint,
  noStaleBytes,
  pollDeadlineSane,
  type LinkSpec,
  type OutFrame,
} from "./invariants.ts";
import type { FrameStep, HostStep, Step } from "./steps.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../src/wire/guest-net.ts";

export const STACK_MAC = new Uint8Array([0x70, 0x71, 0xaa, 0x4b, 0x29, 0xaa]);
export const GATEWAY_V4 = 0x0a000202; // 10.0.2.2
export const GATEWAY_V6 = new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
export const GUEST_V4 = 0x0a000264; // 10.0.2.100
export const GUEST_V6 = new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
export const START_MS = 1_000;

export interface DeviceSpec {
  name: string;
  medium: Medium;
  mtu: number;
  /** virtio-style: partial checksums and TCP segmentation on transmit. */
  offload: boolean;
}

/** The devices every run drives, one stack each. */
export const DEVICES: readonly DeviceSpec[] = [
  { name: "tap-1500", medium: "ethernet", mtu: 1500, offload: false },
  { name: "tun-1500", medium: "ip", mtu: 1500, offload: false },
  { name: "tap-vnet-9000", medium: "ethernet", mtu: 9000, offload: true },
  { name: "tun-vnet-1280", medium: "ip", mtu: 1280, offload: true },
  { name: "tap-vnet-65521", medium: "ethernet", mtu: 65521, offload: true },
];

/** Host data toward the guest: deterministic from a seed, so a replay sends the same bytes. */
export function hostBytes(seed: number, len: number): Uint8Array {
  const m = new Mulberry32(seed);
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i += 4) {
    const v = m.u32();
    b[i] = v;
    if (i + 1 < len) b[i + 1] = v >>> 8;
    if (i + 2 < len) b[i + 2] = v >>> 16;
    if (i + 3 < len) b[i + 3] = v >>> 24;
  }
  return b;
}

/** Host data full of the taint marker (priming only). */
export function taintBytes(len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = TAINT[i % TAINT.length]!;
  return b;
}

/** Read modes of a host connection: take everything, nothing, or half of each offer. */
export const READ_EAGER = 0;
export const READ_MANUAL = 1;
export const READ_HALF = 2;

export function eventAfterClose(what: string, closed: string | null): void {
  if (closed !== null) throw new FuzzFailure("host-events-ordered", `${what} after onClosed(${closed})`);
}

/** The host side of one TCP connection. */
export class HostConn implements TcpHandler {
  mode = READ_EAGER;
  closed: CloseReason | null = null;
  received = 0;

  constructor(
    readonly world: World,
    readonly conn: TcpConnection,
  ) {}

  onEstablished(): void {
    eventAfterClose("onEstablished", this.closed);
  }

  onData(_c: TcpConnection, buf: Uint8Array, off: number, len: number): number {
    eventAfterClose("onData", this.closed);
    this.world.delivered("TCP data to the host", buf, off, len);
    const taken = this.mode === READ_EAGER ? len : this.mode === READ_MANUAL ? 0 : len >>> 1;
    this.received += taken;
    return taken;
  }

  onReadable(): void {
    eventAfterClose("onReadable", this.closed);
  }

  onPeerFin(): void {
    eventAfterClose("onPeerFin", this.closed);
  }

  onSendSpace(): void {
    eventAfterClose("onSendSpace", this.closed);
  }

  onClosed(_c: TcpConnection, reason: CloseReason): void {
    if (this.closed !== null) throw new FuzzFailure("host-events-ordered", `onClosed(${reason}) after onClosed(${this.closed})`);
    this.closed = reason;
  }

  /** The host drains up to `max` bytes of the receive buffer (as a socket write would). */
  read(max: number, now: number): void {
    const ring = this.conn.rcvBuf;
    let taken = 0;
    while (taken < max && ring.length > 0) {
      const n = Math.min(ring.front(), max - taken);
      this.world.delivered("TCP receive buffer read by the host", ring.frontBuf, ring.frontOff, n);
      this.conn.consumed(n, now);
      taken += n;
    }
    this.received += taken;
  }
}

/** The host side of one UDP flow. */
export class HostFlow implements UdpHandler {
  closed: string | null = null;

  constructor(
    readonly world: World,
    readonly flow: UdpFlow,
  ) {}

  onDatagram(f: UdpFlow, buf: Uint8Array, off: number, len: number): void {
    eventAfterClose("onDatagram", this.closed);
    if (!f.open) throw new FuzzFailure("host-events-ordered", "onDatagram on a closed flow");
    this.world.delivered("UDP datagram to the host", buf, off, len);
  }

  onClosed(_f: UdpFlow, reason: "idle" | "closed"): void {
    if (this.closed !== null) throw new FuzzFailure("host-events-ordered", `onClosed(${reason}) after onClosed(${this.closed})`);
    this.closed = reason;
  }
}

/** One device: its stack, and the host side's view of it. */
export class Device implements FrameSink, StackEvents {
  readonly stack: Stack;
  readonly stats = new Stats();
  readonly link: LinkSpec;
  /** Guest SYNs waiting for the host's verdict. */
  pending: HostConn[] = [];
  /** Connections the host holds (accepted, or opened toward the guest). */
  conns: HostConn[] = [];
  flows: HostFlow[] = [];
  private readonly frags = new OutputFragments();
  private readonly rxMeta = new RxMeta();

  constructor(
    readonly world: World,
    readonly index: number,
    readonly spec: DeviceSpec,
    seed: number,
  ) {
    const caps: DeviceCaps = { medium: spec.medium, mtu: spec.mtu, txChecksumOffload: spec.offload, txTcpSegmentation: spec.offload };
    this.link = { ethernet: spec.medium === "ethernet", mtu: spec.mtu, csumOffload: spec.offload, tso: spec.offload, mac: STACK_MAC };
    const key = hostBytes(seed, 16);
    this.stack = new Stack(caps, this, this, this.stats, {
      mac: STACK_MAC,
      netV4: DEFAULT_GUEST_NET_V4,
      gatewayV6: GATEWAY_V6,
      tcp: { ...DEFAULT_TCP_CONFIG, rcvBuf: 256 * 1024, sndBuf: 256 * 1024 },
      secret: new FlowSecret(key),
    });
  }

  // --- FrameSink ---

  transmit(buf: Uint8Array, off: number, len: number, meta: TxMeta | null): void {
    if (off < TX_HEADROOM) throw new FuzzFailure("frame-parses", `frame at offset ${off}, less than the promised headroom`);
    const out = checkOutputFrame(this.index, this.link, buf, off, len, meta, this.frags, this.world.armed);
    this.world.framesOut++;
    this.world.observer?.(out);
  }

  // --- StackEvents ---

  tcpConnectRequest(conn: TcpConnection): void {
    const h = new HostConn(this.world, conn);
    conn.handler = h;
    this.pending.push(h);
  }

  /**
   * The host's answer to a new UDP tuple, from the tuple itself (no
   * randomness, so a replay answers the same): some are refused, some
   * fail at once inside the callback, the rest get one of three idle times.
   */
  udpNewFlow(flow: UdpFlow): boolean {
    if (flow.guestPort % 17 === 0) return false;
    const h = new HostFlow(this.world, flow);
    flow.handler = h;
    flow.idleMs = [125_000, 5_000, 30_000][flow.guestPort % 3]!;
    if (flow.guestPort % 19 === 0) flow.close();
    else this.flows.push(h);
    return true;
  }

  // --- steps ---

  input(s: FrameStep, now: number): void {
    const m = this.rxMeta;
    m.clear();
    if (s.meta !== null) {
      m.checksumTrusted = s.meta.trusted;
      m.gsoType = s.meta.gsoType;
      m.gsoSize = s.meta.gsoSize;
    }
    this.stack.input(s.bytes, 0, s.bytes.length, m, now);
    if (s.batchEnd) this.poll(now);
  }

  poll(now: number): void {
    pollDeadlineSane(this.stack.poll(now));
  }

  /** Live pending handshakes / connections / flows (the lists host ops pick from). */
  livePending(): HostConn[] {
    this.pending = this.pending.filter((h) => h.conn.state === TcpState.SynPending);
    return this.pending;
  }

  liveConns(): HostConn[] {
    this.conns = this.conns.filter((h) => !h.conn.closed || h.conn.rcvBuf.length > 0);
    return this.conns;
  }

  liveFlows(): HostFlow[] {
    this.flows = this.flows.filter((h) => h.flow.open);
    return this.flows;
  }

  host(s: HostStep, now: number): void {
    const tcp = this.stack.tcp;
    switch (s.op) {
      case "accept":
      case "refuse":
      case "unreachable": {
        const list = this.livePending();
        if (list.length === 0) return;
        const h = list[s.pick % list.length]!;
        if (s.op === "accept") {
          h.mode = s.arg % 3;
          this.conns.push(h);
          h.conn.accept(now);
        } else if (s.op === "refuse") tcp.refuse(h.conn, now);
        else tcp.unreachable(h.conn, now);
        return;
      }
      case "connect": {
        const h = new HostConn(this.world, null as unknown as TcpConnection);
        const conn =
          s.arg === 6 ? tcp.connectV6(GATEWAY_V6, 0, GUEST_V6, s.arg2, h, now) : tcp.connectV4(GATEWAY_V4, 0, GUEST_V4, s.arg2, h, now);
        (h as { conn: TcpConnection }).conn = conn;
        h.mode = s.pick % 3;
        this.conns.push(h);
        return;
      }
      case "udp-open": {
        const h = new HostFlow(this.world, null as unknown as UdpFlow);
        const udp = this.stack.udp;
        const f = s.arg === 6 ? udp.openV6(GATEWAY_V6, 0, GUEST_V6, s.arg2, h, now) : udp.openV4(GATEWAY_V4, 0, GUEST_V4, s.arg2, h, now);
        (h as { flow: UdpFlow }).flow = f;
        this.flows.push(h);
        return;
      }
      case "udp-reply":
      case "udp-close":
      case "udp-idle": {
        const list = this.liveFlows();
        if (list.length === 0) return;
        const f = list[s.pick % list.length]!.flow;
        if (s.op === "udp-reply") f.send(this.world.hostData(s.arg2, s.arg), 0, s.arg, now);
        else if (s.op === "udp-close") f.close();
        else f.setIdle(s.arg, now);
        return;
      }
      default: {
        const list = this.liveConns();
        if (list.length === 0) return;
        const h = list[s.pick % list.length]!;
        const c = h.conn;
        if (s.op === "send") {
          const n = Math.min(s.arg, c.sendRoom);
          c.send(this.world.hostData(s.arg2, n), 0, n, now);
        } else if (s.op === "read") h.read(s.arg, now);
        else if (s.op === "shutdown") c.shutdownWrite(now);
        else if (s.op === "abort") c.abort(now);
        else if (s.op === "keepalive") c.setKeepalive(s.arg, s.arg, 2, 3 * s.arg, now);
      }
    }
  }
}

export class World {
  now = START_MS;
  readonly devices: Device[];
  /** While false (priming), the taint marker is allowed: the priming steps put it everywhere. */
  armed = false;
  framesIn = 0;
  framesOut = 0;
  /** Told about every output frame (the generators' guest model); null in a replay. */
  observer: ((f: OutFrame) => void) | null = null;

  constructor(seed: number, specs: readonly DeviceSpec[] = DEVICES) {
    this.devices = specs.map((spec, i) => new Device(this, i, spec, (seed ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0));
  }

  /** Data the engine hands to the host: checked for stale bytes. */
  delivered(where: string, buf: Uint8Array, off: number, len: number): void {
    if (this.armed) noStaleBytes(where, buf, off, len);
  }

  /** Host payload toward the guest, from a seed; when armed it must not hold the marker. */
  hostData(seed: number, len: number): Uint8Array {
    if (!this.armed) return taintBytes(len);
    const b = hostBytes(seed, len);
    if (containsTaint(b, 0, len)) throw new FuzzFailure("fuzzer-self-check", "host data holds the taint marker");
    return b;
  }

  /** Executes one step and checks the invariants of what it touched. */
  run(s: Step): void {
    switch (s.k) {
      case "frame": {
        if (this.armed && containsTaint(s.bytes, 0, s.bytes.length)) throw new FuzzFailure("fuzzer-self-check", "an input frame holds the taint marker");
        this.framesIn++;
        const d = this.devices[s.dev]!;
        d.input(s, this.now);
        checkState(d.stack);
        return;
      }
      case "host": {
        const d = this.devices[s.dev]!;
        d.host(s, this.now);
        d.poll(this.now);
        checkState(d.stack);
        return;
      }
      case "clock":
        this.now += s.ms;
        for (const d of this.devices) {
          d.poll(this.now);
          checkState(d.stack);
        }
        return;
      case "taint":
        this.armed = s.armed;
    }
  }
}
