// Step generators. A small guest model (which TCP flows the guest has
// open, what sequence numbers the stack uses, which addresses the stack
// asked the guest about) is fed by every output frame, so the generated
// traffic gets past handshakes and into connections; around that, every
// generator also lies: bad checksums, odd flags, overlapping fragments,
// mutated copies of earlier frames.
//
// Each generator is a generator function yielding steps one at a time:
// the runner executes a step before the next is made, so a generator can
// react to what the previous step caused (a SYN-ACK, a pending handshake).
import { Rng } from "./rng.ts";
import {
  ETH_ARP,
  ETH_IPV4,
  ETH_IPV6,
  EXT_DSTOPTS,
  EXT_FRAGMENT,
  EXT_HOP,
  EXT_NONE,
  EXT_ROUTING,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  arp,
  concat,
  ethernet,
  extHeader,
  finish,
  fragHeader,
  get16,
  get32,
  icmp4,
  icmp6,
  ipv4,
  ipv6,
  put16,
  put32,
  solicitedNode,
  sum16,
  tcp,
  udp,
  type Addrs,
  type CsumMode,
  type TcpFields,
} from "./packets.ts";
import { GATEWAY_V4, GATEWAY_V6, GUEST_V4, GUEST_V6, READ_EAGER, READ_HALF, READ_MANUAL, STACK_MAC, World, taintBytes } from "./world.ts";
import type { OutFrame } from "./invariants.ts";
import type { FrameMeta, FrameStep, HostOp, HostStep, Step } from "./steps.ts";

type Gen = Generator<Step, void, undefined>;

// =====================================================================
// Addresses and ports: small sets, so flows collide and repeat
// =====================================================================

const GUEST_MACS = [new Uint8Array([2, 0, 0, 0, 0, 0x64]), new Uint8Array([2, 0, 0, 0, 0, 0x65])];
const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const DSTS_V4 = [GATEWAY_V4, 0x0a000203, 0x01010101, 0x5db8d822, 0x7f000001, 0xe0000001, 0xffffffff, 0x0a0002ff, 0x00000000];
const GUESTS_V4 = [GUEST_V4, GUEST_V4, GUEST_V4, 0x0a00020f, 0];
const v6 = (tail: number[], head = [0xfd, 0]): Uint8Array => {
  const a = new Uint8Array(16);
  a.set(head, 0);
  a.set(tail, 16 - tail.length);
  return a;
};
const DSTS_V6 = [GATEWAY_V6, v6([3]), v6([0, 1], [0x20, 0x01, 0x0d, 0xb8]), v6([1], [0xff, 0x02]), v6([0, 1], [0xfe, 0x80])];
const GUESTS_V6 = [GUEST_V6, GUEST_V6, GUEST_V6, v6([0x12, 0x34], [0xfe, 0x80]), new Uint8Array(16)];
const SERVER_PORTS = [80, 443, 53, 22, 8080, 5201, 0, 7];
const GUEST_PORTS = 48;

/** Key of a TCP or UDP tuple, from the guest's side. */
function tupleKey(dev: number, a: Addrs, gport: number, sport: number): string {
  const s = a.v === 4 ? `${a.src}>${a.dst}` : `${hexOf(a.src)}>${hexOf(a.dst)}`;
  return `${dev}/${s}/${gport}/${sport}`;
}

function hexOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

// =====================================================================
// The guest model
// =====================================================================

/** A TCP connection as the guest sees it. */
interface GuestTcp {
  key: string;
  dev: number;
  a: Addrs;
  gport: number;
  sport: number;
  /** The guest's next sequence number. */
  gNxt: number;
  /** The stack's next sequence number (what the guest acknowledges); -1 before its SYN. */
  sNxt: number;
  /** "syn": our SYN sent; "answer": the stack's SYN came (active open), ours is owed; "open"; "fin": our FIN sent. */
  state: "syn" | "answer" | "open" | "fin";
  ts: boolean;
}

interface UdpTuple {
  dev: number;
  a: Addrs;
  gport: number;
  sport: number;
}

/** An address the stack asked the guest about (ARP request, Neighbor Solicitation). */
interface Ask {
  dev: number;
  v4: number;
  v6: Uint8Array | null;
}

const MAX_FLOWS = 256;

export class StepGenerator {
  readonly flows: GuestTcp[] = [];
  private readonly byKey = new Map<string, GuestTcp>();
  private readonly udpTuples: UdpTuple[] = [];
  private readonly asks: Ask[] = [];
  /** Recent frames, for mutation. */
  private readonly recent: FrameStep[] = [];
  private fragIdent = 1;

  constructor(
    readonly rng: Rng,
    readonly world: World,
  ) {
    world.observer = (f) => this.observe(f);
  }

  // --- learning from output ---

  private observe(f: OutFrame): void {
    const b = f.buf;
    if (f.kind === "arp") {
      if (get16(b, f.l3 + 6) === 1) this.ask({ dev: f.dev, v4: get32(b, f.l3 + 24), v6: null });
      return;
    }
    if (!f.whole) return;
    if (f.proto === PROTO_ICMPV6 && b[f.l4] === 135) {
      this.ask({ dev: f.dev, v4: 0, v6: b.slice(f.l4 + 8, f.l4 + 24) });
      return;
    }
    if (f.proto !== PROTO_TCP) return;
    const a: Addrs =
      f.family === 4
        ? { v: 4, src: get32(b, f.l3 + 16), dst: get32(b, f.l3 + 12) }
        : { v: 6, src: b.slice(f.l3 + 24, f.l3 + 40), dst: b.slice(f.l3 + 8, f.l3 + 24) };
    const sport = get16(b, f.l4);
    const gport = get16(b, f.l4 + 2);
    const seq = get32(b, f.l4 + 4);
    const flags = b[f.l4 + 13]!;
    const len = f.l4Len - (b[f.l4 + 12]! >>> 4) * 4;
    const key = tupleKey(f.dev, a, gport, sport);
    const g = this.byKey.get(key);
    if (g === undefined) {
      if ((flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
        this.addFlow({ key, dev: f.dev, a, gport, sport, gNxt: this.rng.u32(), sNxt: (seq + 1) >>> 0, state: "answer", ts: this.rng.chance(0.5) });
      }
      return;
    }
    if (flags & TCP_RST) {
      this.dropFlow(g);
      return;
    }
    if (flags & TCP_SYN) {
      g.sNxt = (seq + 1) >>> 0;
      return;
    }
    const end = (seq + len + (flags & TCP_FIN ? 1 : 0)) >>> 0;
    // The guest takes everything: it acknowledges the highest byte seen.
    if (g.sNxt < 0 || ((end - g.sNxt) | 0) > 0) g.sNxt = end;
  }

  private ask(a: Ask): void {
    if (this.asks.length >= 16) this.asks.shift();
    this.asks.push(a);
  }

  private addFlow(g: GuestTcp): void {
    const old = this.byKey.get(g.key);
    if (old !== undefined) this.dropFlow(old);
    if (this.flows.length >= MAX_FLOWS) this.dropFlow(this.flows[0]!);
    this.flows.push(g);
    this.byKey.set(g.key, g);
  }

  private dropFlow(g: GuestTcp): void {
    this.byKey.delete(g.key);
    const i = this.flows.indexOf(g);
    if (i >= 0) this.flows.splice(i, 1);
  }

  // --- helpers shared by the generators ---

  dev(): number {
    return this.rng.int(this.world.devices.length);
  }

  isEthernet(dev: number): boolean {
    return this.world.devices[dev]!.spec.medium === "ethernet";
  }

  offload(dev: number): boolean {
    return this.world.devices[dev]!.spec.offload;
  }

  mtu(dev: number): number {
    return this.world.devices[dev]!.spec.mtu;
  }

  addrs(family: 4 | 6): Addrs {
    const r = this.rng;
    if (family === 4) {
      const src = r.chance(0.05) ? r.u32() : r.pick(GUESTS_V4);
      const dst = r.chance(0.2) ? r.u32() : r.pick(DSTS_V4);
      return { v: 4, src, dst };
    }
    const src = r.chance(0.05) ? r.bytes(16) : r.pick(GUESTS_V6);
    const dst = r.chance(0.2) ? r.bytes(16) : r.pick(DSTS_V6);
    return { v: 6, src, dst };
  }

  /** The usual guest: 10.0.2.100 / fd00::100 to a well-formed destination. */
  plainAddrs(family: 4 | 6): Addrs {
    const r = this.rng;
    return family === 4
      ? { v: 4, src: GUEST_V4, dst: r.pick([GATEWAY_V4, 0x01010101, 0x5db8d822, 0x0a000203]) }
      : { v: 6, src: GUEST_V6, dst: r.pick([GATEWAY_V6, DSTS_V6[1]!, DSTS_V6[2]!]) };
  }

  guestPort(): number {
    return this.rng.chance(0.02) ? this.rng.int(65536) : 40000 + this.rng.int(GUEST_PORTS);
  }

  serverPort(): number {
    return this.rng.chance(0.3) ? 1 + this.rng.int(65535) : this.rng.pick(SERVER_PORTS);
  }

  /** An IP packet as the device delivers it: in an Ethernet frame on a tap. */
  frame(dev: number, family: 4 | 6, l3: Uint8Array, meta: FrameMeta | null = null, batchEnd = true): FrameStep {
    let bytes = l3;
    if (this.isEthernet(dev)) {
      const r = this.rng;
      const dst = r.chance(0.95) ? STACK_MAC : r.chance(0.5) ? BROADCAST : r.bytes(6);
      const src = r.chance(0.97) ? r.pick(GUEST_MACS) : r.bytes(6);
      bytes = ethernet(dst, src, family === 4 ? ETH_IPV4 : ETH_IPV6, l3);
    }
    const s: FrameStep = { k: "frame", dev, bytes, meta, batchEnd };
    // Priming frames carry the taint marker: never material for mutants.
    if (this.world.armed) {
      if (this.recent.length >= 64) this.recent.shift();
      this.recent.push(s);
    }
    return s;
  }

  l3(a: Addrs, proto: number, l4: Uint8Array): Uint8Array {
    const r = this.rng;
    if (a.v === 4) {
      const options = r.chance(0.03) ? ipv4Options(r) : undefined;
      return ipv4({ src: a.src, dst: a.dst, proto, id: r.int(65536), df: r.chance(0.5), ttl: r.pick([64, 1, 255]), options, badChecksum: r.chance(0.01) }, l4);
    }
    return ipv6(a.src, a.dst, proto, r.pick([64, 255, 1]), l4);
  }

  /**
   * How the L4 checksum is filled and what the device says about it: on
   * an offload device often a partial checksum the device vouches for
   * (NEEDS_CSUM) or a full one it verified (DATA_VALID).
   */
  csum(dev: number, zeroOk: boolean): { mode: CsumMode; meta: FrameMeta | null } {
    const r = this.rng;
    if (this.offload(dev) && r.chance(0.4)) {
      return { mode: r.chance(0.7) ? "partial" : r.chance(0.9) ? "ok" : "bad", meta: { trusted: true, gsoType: 0, gsoSize: 0 } };
    }
    const x = r.int(100);
    return { mode: x < 3 ? "bad" : x < 8 && zeroOk ? "zero" : "ok", meta: null };
  }

  // =====================================================================
  // The mix
  // =====================================================================

  /** One generator's worth of steps, chosen by weight. */
  *next(): Gen {
    const x = this.rng.int(MIX_TOTAL);
    let acc = 0;
    for (const [w, g] of MIX) {
      acc += w;
      if (x < acc) {
        yield* g(this);
        return;
      }
    }
  }

  /** A step that changes the clock. */
  clock(ms: number): Step {
    return { k: "clock", ms };
  }

  host(dev: number, op: HostOp, pick: number, arg = 0, arg2 = 0): HostStep {
    return { k: "host", dev, op, pick, arg, arg2 };
  }

  // =====================================================================
  // TCP
  // =====================================================================

  /** A SYN for a new tuple, then (usually) the host's verdict on it. */
  *tcpSyn(): Gen {
    const r = this.rng;
    const dev = this.dev();
    const family = r.chance(0.6) ? 4 : 6;
    const a = r.chance(0.85) ? this.plainAddrs(family) : this.addrs(family);
    const gport = this.guestPort();
    const sport = this.serverPort();
    const iss = r.u32();
    const ts = r.chance(0.7);
    const flags = r.chance(0.95) ? TCP_SYN : r.pick([TCP_SYN | TCP_FIN, TCP_SYN | 0xc0, TCP_SYN | TCP_URG, TCP_SYN | TCP_PSH]);
    const payload = r.chance(0.05) ? r.bytes(r.int(100)) : new Uint8Array(0);
    const c = this.csum(dev, false);
    const seg = tcp(a, { sport: gport, dport: sport, seq: iss, ack: r.chance(0.9) ? 0 : r.u32(), flags, window: r.pick([65535, 29200, 0, 1, 512]), options: synOptions(r, ts, this.world.now) }, payload, c.mode);
    this.addFlow({ key: tupleKey(dev, a, gport, sport), dev, a, gport, sport, gNxt: (iss + 1) >>> 0, sNxt: -1, state: "syn", ts });
    yield this.frame(dev, family, this.l3(a, PROTO_TCP, seg), c.meta);
    const pending = this.world.devices[dev]!.livePending();
    if (pending.length === 0) return;
    const pick = pending.length - 1;
    const v = r.int(100);
    if (v < 55) yield this.host(dev, "accept", pick, r.chance(0.7) ? READ_EAGER : r.chance(0.5) ? READ_MANUAL : READ_HALF);
    else if (v < 65) yield this.host(dev, "refuse", pick);
    else if (v < 70) yield this.host(dev, "unreachable", pick);
    // else: the host holds it pending.
  }

  /** A segment (or a burst) on a flow the guest has open. */
  *tcpSegment(): Gen {
    const r = this.rng;
    if (this.flows.length === 0) {
      yield* this.tcpSyn();
      return;
    }
    // Mostly recent flows: they are the ones still alive.
    const n = this.flows.length;
    const g = this.flows[r.chance(0.7) ? n - 1 - r.int(Math.min(n, 8)) : r.int(n)]!;
    if (g.state === "answer") {
      if (r.chance(0.9)) {
        yield this.seg(g, { seq: (g.gNxt - 1) >>> 0, flags: TCP_SYN | TCP_ACK, options: synOptions(r, g.ts, this.world.now) }, EMPTY);
        g.state = "open";
      } else {
        yield this.seg(g, { seq: 0, flags: TCP_RST | TCP_ACK }, EMPTY);
        this.dropFlow(g);
      }
      return;
    }
    if (g.state === "syn") {
      if (g.sNxt < 0) {
        // The host has not answered: a retransmitted SYN, or a RST giving up.
        if (r.chance(0.7)) yield this.seg(g, { seq: (g.gNxt - 1) >>> 0, flags: TCP_SYN, options: synOptions(r, g.ts, this.world.now) }, EMPTY);
        else {
          yield this.seg(g, { seq: (g.gNxt - 1) >>> 0, flags: TCP_RST }, EMPTY);
          this.dropFlow(g);
        }
        return;
      }
      g.state = "open";
      yield this.seg(g, { flags: TCP_ACK }, EMPTY);
      return;
    }
    const x = r.int(100);
    const mss = Math.min(this.mtu(g.dev) - 60, 1460);
    if (x < 40) yield* this.tcpData(g, r.size(mss, Math.min(this.mtu(g.dev), 9000)));
    else if (x < 52) yield this.seg(g, { flags: TCP_ACK, window: r.pick([65535, 0, 1, 100, r.int(65536)]) }, EMPTY);
    else if (x < 62) yield* this.tcpBurst(g, mss);
    else if (x < 68) yield this.seg(g, { seq: (g.gNxt + 1 + r.int(20000)) >>> 0, flags: TCP_ACK | TCP_PSH }, r.bytes(1 + r.int(mss)));
    else if (x < 74) yield this.seg(g, { seq: (g.gNxt - r.int(3000)) >>> 0, flags: TCP_ACK }, r.bytes(r.int(2000)));
    else if (x < 79) {
      yield this.seg(g, { flags: TCP_FIN | TCP_ACK }, r.chance(0.3) ? r.bytes(r.int(500)) : EMPTY);
      g.state = "fin";
    } else if (x < 82) {
      const valid = r.chance(0.6);
      yield this.seg(g, { seq: valid ? g.gNxt : r.u32(), flags: r.chance(0.5) ? TCP_RST : TCP_RST | TCP_ACK }, EMPTY);
      if (valid) this.dropFlow(g);
    } else if (x < 88) {
      // An acknowledgment of something odd: the future, the past, with SACK blocks.
      const ack = (g.sNxt + r.pick([1, 1000, -1, -70000, 0x40000000])) >>> 0;
      yield this.seg(g, { flags: TCP_ACK, ack, options: sackOptions(r, g.sNxt) }, EMPTY);
    } else if (x < 91) yield this.seg(g, { flags: TCP_ACK | TCP_URG | TCP_PSH, urgent: r.int(65536) }, r.bytes(r.int(200)));
    else if (x < 93) yield this.seg(g, { seq: r.u32(), flags: TCP_SYN, options: synOptions(r, g.ts, this.world.now) }, EMPTY);
    else if (x < 96) yield this.seg(g, { flags: TCP_ACK, options: optionSoup(r) }, r.bytes(r.int(300)));
    else yield* this.tcpGso(g);
  }

  /** In-order data (the stream advances). */
  *tcpData(g: GuestTcp, len: number): Gen {
    const fin = g.state === "fin";
    yield this.seg(g, { flags: TCP_ACK | (this.rng.chance(0.5) ? TCP_PSH : 0) }, this.rng.bytes(len));
    if (!fin) g.gNxt = (g.gNxt + len) >>> 0;
  }

  /** Several in-order segments in one receive batch, some lost, some reordered. */
  *tcpBurst(g: GuestTcp, mss: number): Gen {
    const r = this.rng;
    const k = 2 + r.int(8);
    const segs: Array<{ seq: number; data: Uint8Array }> = [];
    let seq = g.gNxt;
    for (let i = 0; i < k; i++) {
      const data = r.bytes(1 + r.int(mss));
      segs.push({ seq, data });
      seq = (seq + data.length) >>> 0;
    }
    if (g.state !== "fin") g.gNxt = seq;
    const kept = segs.filter(() => r.chance(0.8));
    if (r.chance(0.4)) shuffle(r, kept);
    for (let i = 0; i < kept.length; i++) {
      yield this.seg(g, { seq: kept[i]!.seq, flags: TCP_ACK }, kept[i]!.data, i === kept.length - 1);
    }
  }

  /** A TSO super-segment as a guest kernel hands it over (offload devices only). */
  *tcpGso(g: GuestTcp): Gen {
    const r = this.rng;
    if (!this.offload(g.dev)) {
      yield* this.tcpData(g, r.int(1400));
      return;
    }
    const gsoSize = r.pick([536, 1220, 1448, 1460, 8948, 1 + r.int(9000)]);
    const len = r.chance(0.8) ? gsoSize * (1 + r.int(8)) + r.int(gsoSize) : r.int(65000);
    const meta: FrameMeta = { trusted: true, gsoType: g.a.v === 4 ? 1 : 4, gsoSize };
    yield this.seg(g, { flags: TCP_ACK | TCP_PSH }, r.bytes(len), true, meta, "partial");
    if (g.state !== "fin") g.gNxt = (g.gNxt + len) >>> 0;
  }

  /** One segment of flow g (defaults: next seq, current ack). */
  seg(g: GuestTcp, f: Partial<TcpFields>, payload: Uint8Array, batchEnd = true, meta: FrameMeta | null = null, mode?: CsumMode): FrameStep {
    const r = this.rng;
    const c = meta === null ? this.csum(g.dev, false) : { mode: mode ?? "ok", meta };
    let options = f.options;
    if (options === undefined && g.ts) options = tsOption(this.world.now, 0);
    const fields: TcpFields = {
      sport: g.gport,
      dport: g.sport,
      seq: f.seq ?? g.gNxt,
      ack: f.ack ?? (g.sNxt < 0 ? 0 : g.sNxt),
      flags: f.flags ?? TCP_ACK,
      window: f.window ?? (r.chance(0.9) ? 65535 : r.int(65536)),
      urgent: f.urgent,
      options,
    };
    return this.frame(g.dev, g.a.v, this.l3(g.a, PROTO_TCP, tcp(g.a, fields, payload, c.mode)), c.meta, batchEnd);
  }

  /** A segment for no particular connection: random flags, numbers, tuple. */
  *tcpStray(): Gen {
    const r = this.rng;
    const dev = this.dev();
    const family = r.chance(0.5) ? 4 : 6;
    const g = this.flows.length > 0 && r.chance(0.5) ? r.pick(this.flows) : null;
    const a = g?.a ?? this.addrs(family);
    const c = this.csum(dev, false);
    const seg = tcp(
      a,
      {
        sport: g?.gport ?? this.guestPort(),
        dport: g?.sport ?? this.serverPort(),
        seq: r.u32(),
        ack: r.u32(),
        flags: r.int(256),
        window: r.int(65536),
        urgent: r.int(65536),
        options: r.chance(0.5) ? optionSoup(r) : undefined,
        dataOffset: r.chance(0.05) ? r.int(16) : undefined,
      },
      r.bytes(r.size(100, 3000)),
      c.mode,
    );
    yield this.frame(g?.dev ?? dev, a.v, this.l3(a, PROTO_TCP, seg), c.meta);
  }

  // =====================================================================
  // UDP
  // =====================================================================

  udpTuple(): UdpTuple {
    const r = this.rng;
    if (this.udpTuples.length > 0 && r.chance(0.6)) return r.pick(this.udpTuples);
    const family = r.chance(0.6) ? 4 : 6;
    const t: UdpTuple = { dev: this.dev(), a: r.chance(0.85) ? this.plainAddrs(family) : this.addrs(family), gport: this.guestPort(), sport: this.serverPort() };
    if (this.udpTuples.length >= 64) this.udpTuples.shift();
    this.udpTuples.push(t);
    return t;
  }

  /** A datagram (or a UDP_L4 GSO super-frame); sometimes the host answers. */
  *udpDatagram(): Gen {
    const r = this.rng;
    const t = this.udpTuple();
    const gso = this.offload(t.dev) && r.chance(0.1);
    if (gso) {
      const gsoSize = 1 + r.int(1472);
      const payload = r.bytes(gsoSize * (1 + r.int(12)) + r.int(gsoSize));
      const dg = udp(t.a, t.gport, t.sport, payload, "partial");
      yield this.frame(t.dev, t.a.v, this.l3(t.a, PROTO_UDP, dg), { trusted: true, gsoType: 5, gsoSize });
    } else {
      const c = this.csum(t.dev, t.a.v === 4);
      const len = r.size(512, Math.min(this.mtu(t.dev), 9000));
      const dg = udp(t.a, t.gport, t.sport, r.bytes(len), c.mode, r.chance(0.03) ? r.int(65536) : undefined);
      yield this.frame(t.dev, t.a.v, this.l3(t.a, PROTO_UDP, dg), c.meta);
    }
    if (r.chance(0.3)) yield this.host(t.dev, "udp-reply", this.world.devices[t.dev]!.liveFlows().length - 1, r.size(512, 20000), r.u32());
  }

  // =====================================================================
  // ICMP, ARP, NDP
  // =====================================================================

  *icmpEcho(): Gen {
    const r = this.rng;
    const dev = this.dev();
    const family = r.chance(0.6) ? 4 : 6;
    const a = r.chance(0.8) ? this.plainAddrs(family) : this.addrs(family);
    // Larger than the MTU now and then: the reply goes out in fragments.
    const body = r.bytes(r.size(56, Math.min(this.mtu(dev) * 2, 20000)));
    if (family === 4) {
      const type = r.chance(0.85) ? 8 : r.pick([0, 3, 11, 5, 13, r.int(256)]);
      yield this.frame(dev, 4, this.l3(a, PROTO_ICMP, icmp4(type, r.chance(0.95) ? 0 : r.int(256), r.u32(), body, r.chance(0.03))));
    } else {
      const type = r.chance(0.85) ? 128 : r.pick([129, 1, 2, 3, 133, 134, 137, r.int(256)]);
      const rest = new Uint8Array(4 + body.length);
      put32(rest, 0, r.u32());
      rest.set(body, 4);
      yield this.frame(dev, 6, this.l3(a, PROTO_ICMPV6, icmp6(a, type, 0, rest, r.chance(0.03) ? "bad" : "ok")));
    }
  }

  /** ARP: requests, probes, announcements, and answers to the stack's own requests. */
  *arpFrame(): Gen {
    const r = this.rng;
    const asked = this.asks.find((q) => q.v6 === null);
    const dev = asked !== undefined && r.chance(0.6) ? asked.dev : this.dev();
    const mac = r.pick(GUEST_MACS);
    let body: Uint8Array;
    if (asked !== undefined && asked.dev === dev && r.chance(0.6)) {
      this.asks.splice(this.asks.indexOf(asked), 1);
      body = arp(2, mac, asked.v4, STACK_MAC, GATEWAY_V4);
    } else {
      const sender = r.pick([GUEST_V4, 0, r.u32(), 0x0a00020f]);
      const target = r.pick([GATEWAY_V4, sender, r.u32(), 0x0a000203]);
      body = arp(r.pick([1, 1, 2, 3]), mac, sender, r.chance(0.5) ? new Uint8Array(6) : BROADCAST, target);
      if (r.chance(0.05)) body[4] = r.int(256);
    }
    if (r.chance(0.05)) body = body.subarray(0, r.int(28));
    const bytes = this.isEthernet(dev) ? ethernet(r.chance(0.5) ? BROADCAST : STACK_MAC, mac, ETH_ARP, body) : body;
    yield { k: "frame", dev, bytes, meta: null, batchEnd: true };
  }

  /** Neighbor Solicitations and Advertisements, with well-formed and broken options. */
  *ndpFrame(): Gen {
    const r = this.rng;
    const asked = this.asks.find((q) => q.v6 !== null);
    const dev = asked !== undefined && r.chance(0.6) ? asked.dev : this.dev();
    const mac = r.pick(GUEST_MACS);
    const hop = r.chance(0.9) ? 255 : 64;
    const lla = (type: number): Uint8Array => {
      const o = new Uint8Array(8);
      o[0] = type;
      o[1] = r.chance(0.9) ? 1 : r.pick([0, 2, 255]);
      o.set(mac, 2);
      return o;
    };
    if (asked !== undefined && asked.dev === dev && r.chance(0.6)) {
      this.asks.splice(this.asks.indexOf(asked), 1);
      // NA: flags(4) target(16) [TLLA]
      const body = concat(new Uint8Array([0x60, 0, 0, 0]), asked.v6!, lla(2));
      const a: Addrs = { v: 6, src: asked.v6!, dst: GATEWAY_V6 };
      yield this.frame(dev, 6, ipv6(a.src, a.dst, PROTO_ICMPV6, hop, icmp6(a, 136, 0, body, "ok")));
      return;
    }
    const target = r.pick([GATEWAY_V6, GUEST_V6, DSTS_V6[2]!, r.bytes(16), DSTS_V6[3]!]);
    const src = r.pick([GUEST_V6, GUEST_V6, new Uint8Array(16), GUESTS_V6[3]!]);
    const a: Addrs = { v: 6, src, dst: r.chance(0.7) ? solicitedNode(target) : target };
    const opts = r.chance(0.8) ? lla(1) : r.chance(0.5) ? new Uint8Array(0) : r.bytes(8 * r.int(4));
    const type = r.chance(0.8) ? 135 : 136;
    const body = concat(new Uint8Array(4), target, opts);
    yield this.frame(dev, 6, ipv6(a.src, a.dst, PROTO_ICMPV6, hop, icmp6(a, type, 0, body, r.chance(0.05) ? "bad" : "ok")));
  }

  // =====================================================================
  // Fragments and extension headers
  // =====================================================================

  /** The L4 datagram a fragment storm carries: UDP (checksum or none), an echo, or flow data. */
  stormPayload(dev: number, a: Addrs, taint: boolean): { proto: number; l4: Uint8Array } {
    const r = this.rng;
    const len = taint ? 60000 + r.int(5000) : r.chance(0.9) ? r.int(3000) : r.int(65000);
    const data = taint ? taintBytes(len) : r.bytes(len);
    const x = r.int(10);
    if (taint || x < 6) {
      const mode: CsumMode = a.v === 4 && r.chance(0.4) ? "zero" : r.chance(0.9) ? "ok" : "bad";
      return { proto: PROTO_UDP, l4: udp(a, this.guestPort(), r.chance(0.5) ? 5353 : this.serverPort(), data, taint ? "ok" : mode) };
    }
    if (x < 8) return a.v === 4 ? { proto: PROTO_ICMP, l4: icmp4(8, 0, r.u32(), data, false) } : { proto: PROTO_ICMPV6, l4: icmp6(a, 128, 0, data, "ok") };
    const g = this.flows.find((f) => f.dev === dev && f.a.v === a.v && f.state === "open");
    if (g === undefined) return { proto: PROTO_UDP, l4: udp(a, this.guestPort(), this.serverPort(), data, "ok") };
    const seg = tcp(g.a, { sport: g.gport, dport: g.sport, seq: g.gNxt, ack: g.sNxt, flags: TCP_ACK, window: 65535 }, data, "ok");
    g.gNxt = (g.gNxt + data.length) >>> 0;
    // The flow's addresses replace the storm's.
    Object.assign(a, g.a);
    return { proto: PROTO_TCP, l4: seg };
  }

  /**
   * Cuts an L4 datagram into fragments and then breaks the set: holes,
   * duplicates, overlaps, reordering, a stray last fragment, pieces past
   * the end, flipped More Fragments bits, pieces reused from the last storm.
   * Returns [offset, more, bytes] triples.
   */
  stormPieces(l4: Uint8Array, maxPiece: number, clean: boolean): Array<[number, boolean, Uint8Array]> {
    const r = this.rng;
    const per = Math.max(8, (!clean && r.chance(0.3) ? 8 * (1 + r.int(16)) : maxPiece) & ~7);
    const out: Array<[number, boolean, Uint8Array]> = [];
    for (let off = 0; off < l4.length || off === 0; off += per) {
      const n = Math.min(per, l4.length - off);
      out.push([off, off + n < l4.length, l4.subarray(off, off + n)]);
      if (n <= 0) break;
    }
    if (clean) return out;
    if (r.chance(0.3) && out.length > 1) out.splice(r.int(out.length), 1);
    if (r.chance(0.2)) out.push(r.pick(out));
    if (r.chance(0.2)) {
      const [off, more, b] = r.pick(out);
      const shifted = Math.max(0, off + r.pick([-8, 8, -16, 4]));
      out.push([shifted & ~7, more, r.chance(0.5) ? b : r.bytes(b.length)]);
    }
    if (r.chance(0.15)) out.push([8 * r.int((l4.length >>> 3) + 2), false, EMPTY]);
    if (r.chance(0.15)) out.push([((l4.length + 7) & ~7) + 8 * r.int(4), r.chance(0.5), r.bytes(8 * (1 + r.int(4)))]);
    if (r.chance(0.1) && out.length >= 3) {
      // A hole the size of a piece past the end: a reassembler that counts
      // bytes instead of covering ranges takes the datagram as whole.
      const [, , b] = out.splice(1 + r.int(out.length - 2), 1)[0]!;
      out.unshift([((l4.length + 7) & ~7) + 8 * r.int(4), true, r.bytes(b.length)]);
    }
    if (r.chance(0.1)) {
      const p = r.pick(out);
      p[1] = !p[1];
    }
    if (r.chance(0.05)) out.push([8 * r.int(8), true, r.bytes(1 + r.int(20))]);
    if (r.chance(0.05)) out.push([65528 - 8 * r.int(4), r.chance(0.5), r.bytes(8 * r.int(4))]);
    if (r.chance(0.5)) shuffle(r, out);
    return out;
  }

  *fragStormV4(taint = false, devArg = -1): Gen {
    const r = this.rng;
    const dev = devArg >= 0 ? devArg : this.dev();
    const a = this.plainAddrs(4);
    const { proto, l4 } = this.stormPayload(dev, a, taint);
    const v4 = a as Extract<Addrs, { v: 4 }>;
    const id = !taint && r.chance(0.2) ? this.fragIdent : ++this.fragIdent & 0xffff;
    // Priming ignores the MTU (the engine takes any frame size): fewer, larger pieces.
    const maxPiece = ((taint ? 9000 : Math.min(this.mtu(dev), 9000)) - 20) & ~7;
    const pieces = this.stormPieces(l4, maxPiece, taint);
    const trusted = !taint && this.offload(dev) && r.chance(0.2);
    for (let i = 0; i < pieces.length; i++) {
      const [off, more, b] = pieces[i]!;
      const l3 = ipv4({ src: v4.src, dst: v4.dst, proto, id, fragOff: off, more }, b);
      yield this.frame(dev, 4, l3, trusted ? { trusted: true, gsoType: 0, gsoSize: 0 } : null, i === pieces.length - 1 || r.chance(0.2));
    }
  }

  *fragStormV6(taint = false, devArg = -1): Gen {
    const r = this.rng;
    const dev = devArg >= 0 ? devArg : this.dev();
    const a = this.plainAddrs(6);
    const { proto, l4 } = this.stormPayload(dev, a, taint);
    const v6a = a as Extract<Addrs, { v: 6 }>;
    const id = !taint && r.chance(0.2) ? this.fragIdent : ++this.fragIdent;
    // Unfragmentable part: sometimes a Hop-by-Hop and/or Destination Options header first.
    const pre: number[] = [];
    if (!taint && r.chance(0.2)) pre.push(EXT_HOP);
    if (!taint && r.chance(0.2)) pre.push(r.pick([EXT_DSTOPTS, EXT_ROUTING]));
    const preLen = pre.length * 8;
    const maxPiece = ((taint ? 9000 : Math.min(this.mtu(dev), 9000)) - 48 - preLen) & ~7;
    const pieces = this.stormPieces(l4, maxPiece, taint);
    for (let i = 0; i < pieces.length; i++) {
      const [off, more, b] = pieces[i]!;
      const chain = [...pre, EXT_FRAGMENT];
      const parts: Uint8Array[] = [];
      for (let k = 0; k < pre.length; k++) parts.push(extHeader(chain[k + 1]!, 0, null));
      parts.push(fragHeader(r.chance(0.02) ? EXT_FRAGMENT : proto, off, more, id));
      parts.push(b);
      const l3 = ipv6(v6a.src, v6a.dst, chain[0]!, 64, concat(...parts));
      yield this.frame(dev, 6, l3, null, i === pieces.length - 1 || r.chance(0.2));
    }
  }

  /** IPv6 with a chain of extension headers (some valid, some not) before TCP/UDP/ICMPv6. */
  *extChain(): Gen {
    const r = this.rng;
    const dev = this.dev();
    const a = r.chance(0.8) ? this.plainAddrs(6) : this.addrs(6);
    const n = r.int(10);
    const types: number[] = [];
    for (let i = 0; i < n; i++) types.push(r.pick([EXT_HOP, EXT_ROUTING, EXT_DSTOPTS, EXT_DSTOPTS, EXT_FRAGMENT, 135, 139, 253]));
    const g = this.flows.find((f) => f.dev === dev && f.a.v === 6 && f.state === "open");
    const finalProto = r.pick([PROTO_TCP, PROTO_UDP, PROTO_ICMPV6, EXT_NONE, 50, r.int(256)]);
    let l4: Uint8Array;
    if (finalProto === PROTO_TCP && g !== undefined && r.chance(0.7)) {
      l4 = tcp(g.a, { sport: g.gport, dport: g.sport, seq: g.gNxt, ack: g.sNxt, flags: TCP_ACK, window: 65535 }, r.bytes(r.int(500)), "ok");
      Object.assign(a, g.a);
    } else if (finalProto === PROTO_TCP) l4 = tcp(a, { sport: this.guestPort(), dport: this.serverPort(), seq: r.u32(), ack: 0, flags: TCP_SYN, window: 1024, options: synOptions(r, true, 0) }, EMPTY, "ok");
    else if (finalProto === PROTO_UDP) l4 = udp(a, this.guestPort(), this.serverPort(), r.bytes(r.int(300)), "ok");
    else if (finalProto === PROTO_ICMPV6) l4 = icmp6(a, 128, 0, r.bytes(r.int(100) + 4), "ok");
    else l4 = r.bytes(r.int(64));
    const parts: Uint8Array[] = [];
    for (let i = 0; i < types.length; i++) {
      const next = i + 1 < types.length ? types[i + 1]! : finalProto;
      if (types[i] === EXT_FRAGMENT) parts.push(fragHeader(next, r.chance(0.7) ? 0 : 8 * r.int(100), r.chance(0.3), r.u32()));
      else parts.push(extHeader(next, r.chance(0.8) ? r.int(3) : r.int(256), r.chance(0.8) ? null : r.bytes(2 + r.int(30))));
    }
    parts.push(l4);
    let payload = concat(...parts);
    if (r.chance(0.1)) payload = payload.subarray(0, r.int(payload.length + 1));
    const lie = r.chance(0.05) ? r.int(65536) : undefined;
    const v6a = a as Extract<Addrs, { v: 6 }>;
    yield this.frame(dev, 6, ipv6(v6a.src, v6a.dst, types.length > 0 ? types[0]! : finalProto, 64, payload, lie));
  }

  // =====================================================================
  // Mutation and garbage
  // =====================================================================

  /**
   * A recent frame with bytes flipped, cut short or lengthened. Often
   * passed with the checksum trusted (offload devices), or with the IPv4
   * header checksum fixed, so the damage reaches the upper layers.
   */
  *mutant(): Gen {
    const r = this.rng;
    if (this.recent.length === 0) {
      yield* this.garbage();
      return;
    }
    const src = r.pick(this.recent);
    let b: Uint8Array = src.bytes.slice();
    const link = this.isEthernet(src.dev) ? 14 : 0;
    const flips = 1 + r.int(4);
    for (let i = 0; i < flips && b.length > link; i++) {
      const span = Math.min(b.length - link, r.chance(0.8) ? 80 : b.length);
      const at = link + r.int(span);
      b[at] = r.chance(0.5) ? r.int(256) : b[at]! ^ (1 << r.int(8));
    }
    if (r.chance(0.1)) b = b.subarray(0, r.int(b.length + 1));
    if (r.chance(0.05)) b = concat(b, r.bytes(r.int(100)));
    if (r.chance(0.5) && b.length >= link + 20 && b[link]! >>> 4 === 4) {
      const hl = (b[link]! & 15) * 4;
      if (hl >= 20 && link + hl <= b.length) {
        put16(b, link + 10, 0);
        put16(b, link + 10, finish(sum16(b, link, hl)));
      }
    }
    const meta = this.offload(src.dev) && r.chance(0.5) ? { trusted: true, gsoType: r.chance(0.1) ? r.pick([1, 3, 4, 5, 0x81, 7]) : 0, gsoSize: r.int(3000) } : src.meta;
    yield { k: "frame", dev: src.dev, bytes: b, meta, batchEnd: true };
  }

  *garbage(): Gen {
    const r = this.rng;
    const dev = this.dev();
    const b = r.bytes(r.int(200));
    const link = this.isEthernet(dev) ? 14 : 0;
    if (link > 0 && b.length >= 14) put16(b, 12, r.pick([ETH_IPV4, ETH_IPV6, ETH_ARP, 0x8100, r.int(65536)]));
    if (b.length > link) b[link] = (r.pick([4, 6, 5, 0]) << 4) | (b[link]! & 15);
    yield { k: "frame", dev, bytes: b, meta: null, batchEnd: true };
  }

  // =====================================================================
  // Host side and clock
  // =====================================================================

  *hostEvent(): Gen {
    const r = this.rng;
    const dev = this.dev();
    const x = r.int(100);
    const pick = r.u32();
    if (x < 8) yield this.host(dev, "accept", pick, r.int(3));
    else if (x < 11) yield this.host(dev, "refuse", pick);
    else if (x < 13) yield this.host(dev, "unreachable", pick);
    else if (x < 38) yield this.host(dev, "send", pick, r.size(1460, 70000), r.u32());
    else if (x < 48) yield this.host(dev, "read", pick, r.size(1000, 300000));
    else if (x < 53) yield this.host(dev, "shutdown", pick);
    else if (x < 57) yield this.host(dev, "abort", pick);
    else if (x < 59) yield this.host(dev, "keepalive", pick, r.pick([1000, 5000, 75000]));
    else if (x < 64) yield this.host(dev, "connect", pick, r.chance(0.6) ? 4 : 6, this.serverPort());
    else if (x < 84) yield this.host(dev, "udp-reply", pick, r.size(512, 66000), r.u32());
    else if (x < 89) yield this.host(dev, "udp-open", pick, r.chance(0.6) ? 4 : 6, this.serverPort());
    else if (x < 94) yield this.host(dev, "udp-close", pick);
    else yield this.host(dev, "udp-idle", pick, r.pick([0, 1000, 5000, 125000]));
  }

  /** Time passes: mostly a little, sometimes minutes, rarely more than 2^31 ms. */
  *clockJump(): Gen {
    const r = this.rng;
    const x = r.int(100);
    const ms = x < 60 ? r.int(50) : x < 85 ? 100 + r.int(5000) : x < 97 ? 30_000 + r.int(700_000) : 2 ** 31 + r.int(2 ** 31);
    yield this.clock(ms);
  }

  // =====================================================================
  // Priming: the taint marker into every reusable buffer
  // =====================================================================

  /**
   * Fills the engine's reusable buffers with the taint marker: reassembly
   * buffers (several datagrams at once, then completed), the TCP rings
   * (guest data in and out of order, host data out, a manual reader), the
   * transmit buffers (echo replies, large host datagrams). Then ends every
   * flow, lets every timer run out, and arms the check.
   */
  *priming(): Gen {
    const r = this.rng;
    const T = (n: number): Uint8Array => taintBytes(n);
    for (let dev = 0; dev < this.world.devices.length; dev++) {
      for (const family of [4, 6] as const) {
        const a = this.plainAddrs(family);
        // Five datagrams in flight at once (more than the reassembler's pool), completed last.
        const lasts: FrameStep[] = [];
        for (let k = 0; k < 5; k++) {
          const pieces: FrameStep[] = [];
          const gen = family === 4 ? this.fragStormV4(true, dev) : this.fragStormV6(true, dev);
          for (const s of gen) pieces.push(s as FrameStep);
          lasts.push(pieces.pop()!);
          yield* pieces;
        }
        yield* lasts;
        const echo = family === 4 ? icmp4(8, 0, 1, T(8000), false) : icmp6(a, 128, 0, T(8000), "ok");
        yield this.frame(dev, family, this.l3(a, family === 4 ? PROTO_ICMP : PROTO_ICMPV6, echo));
        // A TCP connection: guest data in order and beyond a hole, host data out.
        for (const mode of [READ_EAGER, READ_MANUAL]) {
          const gport = 41000 + r.int(1000);
          const iss = r.u32();
          const flowA = this.plainAddrs(family);
          yield this.frame(dev, family, this.l3(flowA, PROTO_TCP, tcp(flowA, { sport: gport, dport: 80, seq: iss, ack: 0, flags: TCP_SYN, window: 65535, options: synOptions(r, false, 0) }, EMPTY, "ok")));
          const pending = this.world.devices[dev]!.livePending();
          yield this.host(dev, "accept", pending.length - 1, mode);
          const g = this.byKey.get(tupleKey(dev, flowA, gport, 80));
          if (g === undefined) continue;
          g.gNxt = (iss + 1) >>> 0;
          g.state = "open";
          g.ts = false;
          yield this.seg(g, { flags: TCP_ACK }, EMPTY, true, null, "ok");
          yield this.seg(g, { seq: (g.gNxt + 4000) >>> 0, flags: TCP_ACK }, T(1000), true, null, "ok");
          for (let k = 0; k < 4; k++) {
            yield this.seg(g, { flags: TCP_ACK }, T(1000), true, null, "ok");
            g.gNxt = (g.gNxt + 1000) >>> 0;
          }
          yield this.host(dev, "send", this.world.devices[dev]!.liveConns().length - 1, 200_000, 0);
          yield this.host(dev, "udp-open", 0, family, 9);
          yield this.host(dev, "udp-reply", this.world.devices[dev]!.liveFlows().length - 1, family === 4 ? 65507 : 65527, 0);
        }
      }
      // End everything the priming opened.
      const d = this.world.devices[dev]!;
      while (d.liveConns().some((h) => !h.conn.closed)) yield this.host(dev, "abort", d.conns.findIndex((h) => !h.conn.closed));
      while (d.liveConns().length > 0) yield this.host(dev, "read", 0, 1 << 30);
      while (d.livePending().length > 0) yield this.host(dev, "refuse", 0);
      while (d.liveFlows().length > 0) yield this.host(dev, "udp-close", 0);
    }
    this.flows.length = 0;
    this.byKey.clear();
    this.asks.length = 0;
    yield this.clock(1_000_000);
    yield { k: "taint", armed: true };
  }

  /**
   * Main-phase traffic overwrites the primed buffers with its own bytes,
   * which the check cannot tell from fresh ones: now and then, taint one
   * device's reassembly buffers again (whole datagrams only, so nothing
   * that carries the marker stays behind) and re-arm.
   */
  *reprime(dev: number): Gen {
    yield { k: "taint", armed: false };
    for (const family of [4, 6] as const) {
      const lasts: FrameStep[] = [];
      for (let k = 0; k < 5; k++) {
        const pieces = [...(family === 4 ? this.fragStormV4(true, dev) : this.fragStormV6(true, dev))] as FrameStep[];
        lasts.push(pieces.pop()!);
        yield* pieces;
      }
      yield* lasts;
    }
    yield { k: "taint", armed: true };
  }
}

const EMPTY = new Uint8Array(0);

function shuffle<T>(r: Rng, a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}

// =====================================================================
// TCP options
// =====================================================================

function tsOption(now: number, ecr: number): Uint8Array {
  const o = new Uint8Array(12);
  o[0] = 1;
  o[1] = 1;
  o[2] = 8;
  o[3] = 10;
  put32(o, 4, Math.floor(now) >>> 0);
  put32(o, 8, ecr);
  return o;
}

/** A SYN's options: mostly the usual set, in a random order, sometimes with junk. */
function synOptions(r: Rng, ts: boolean, now: number): Uint8Array {
  const parts: Uint8Array[] = [];
  if (r.chance(0.9)) {
    const mss = new Uint8Array([2, 4, 0, 0]);
    put16(mss, 2, r.chance(0.8) ? r.pick([1460, 1440, 8960, 65495, 1220]) : r.int(65536));
    parts.push(mss);
  }
  if (r.chance(0.8)) parts.push(new Uint8Array([1, 3, 3, r.chance(0.9) ? r.int(15) : r.int(256)]));
  if (r.chance(0.7)) parts.push(new Uint8Array([1, 1, 4, 2]));
  if (ts) parts.push(tsOption(now, 0));
  if (r.chance(0.1)) parts.push(optionSoup(r));
  if (r.chance(0.3)) shuffle(r, parts);
  return concat(...parts).subarray(0, 40);
}

/** SACK blocks around the stack's sequence space (some valid, some not). */
function sackOptions(r: Rng, base: number): Uint8Array {
  const n = 1 + r.int(4);
  const o = new Uint8Array(2 + 2 + 8 * n);
  o[0] = 1;
  o[1] = 1;
  o[2] = 5;
  o[3] = 2 + 8 * n;
  for (let i = 0; i < n; i++) {
    const s = (base + r.pick([-2000, 0, 1000, 5000, r.u32()])) >>> 0;
    put32(o, 4 + 8 * i, s);
    put32(o, 8 + 8 * i, (s + r.pick([0, 1, 1448, 100000, -5])) >>> 0);
  }
  return o.subarray(0, 40);
}

/** Any options at all: known kinds with wrong lengths, unknown kinds, lengths past the end. */
function optionSoup(r: Rng): Uint8Array {
  const out: number[] = [];
  const n = 1 + r.int(8);
  for (let i = 0; i < n && out.length < 40; i++) {
    const kind = r.pick([0, 1, 2, 3, 4, 5, 8, 19, 28, 29, 30, 34, 253, r.int(256)]);
    if (kind === 0 || kind === 1) {
      out.push(kind);
      continue;
    }
    const len = r.chance(0.7) ? ({ 2: 4, 3: 3, 4: 2, 8: 10, 5: 10 } as Record<number, number>)[kind] ?? 2 + r.int(8) : r.int(41);
    out.push(kind, len);
    for (let k = 2; k < len; k++) out.push(r.int(256));
  }
  return new Uint8Array(out.slice(0, 40));
}

/** IPv4 options: NOPs, Record Route, junk. */
function ipv4Options(r: Rng): Uint8Array {
  const kind = r.int(3);
  if (kind === 0) return new Uint8Array([1, 1, 1, 0]);
  if (kind === 1) return new Uint8Array([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  return r.bytes(4 * (1 + r.int(10)));
}

// =====================================================================
// Weights
// =====================================================================

const MIX: Array<[number, (g: StepGenerator) => Gen]> = [
  [6, (g) => g.tcpSyn()],
  [30, (g) => g.tcpSegment()],
  [4, (g) => g.tcpStray()],
  [12, (g) => g.udpDatagram()],
  [5, (g) => g.icmpEcho()],
  [3, (g) => g.arpFrame()],
  [3, (g) => g.ndpFrame()],
  [4, (g) => g.fragStormV4()],
  [4, (g) => g.fragStormV6()],
  [4, (g) => g.extChain()],
  [8, (g) => g.mutant()],
  [2, (g) => g.garbage()],
  [14, (g) => g.hostEvent()],
  [6, (g) => g.clockJump()],
];
const MIX_TOTAL = MIX.reduce((s, [w]) => s + w, 0);
