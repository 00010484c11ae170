// Fault injection: a device middleware that loses, duplicates, reorders
// and corrupts frames, deterministically from a seed. It wraps a FrameSink
// (frames the engine transmits) and, like the pcap writer, a FrameReceiver
// (frames the device delivers), so it can sit between the engine and any
// device: the virtual links of the unit tests, or the real tap later.
//
// Sans-I/O: it never reads a clock or sets a timer. Holding a frame back
// needs time, so the owner tells it the time (the `clock` it is built
// with) and calls poll(now), which releases due frames and returns the
// next deadline. Frames it holds or corrupts are copied: the caller reuses
// its buffers the moment transmit()/receive() returns.
//
// Per frame, in this order:
//   loss     drop it;
//   corrupt  flip one random byte of the packet (never the link header,
//            never a frame whose checksum the device vouches for or fills
//            in later: that corruption would be undetectable by design);
//   reorder  hold it back; it goes out right after the next frame passes,
//            or after `delay` ms, whichever comes first;
//   dup      send it twice.
import type { FrameReceiver, FrameSink, Medium, RxMeta, TxMeta } from "../stack/device.ts";
import { RxMeta as RxMetaClass, TX_HEADROOM, TxMeta as TxMetaClass } from "../stack/device.ts";

export interface FaultConfig {
  /** Probability that a frame is dropped. */
  loss: number;
  /** Probability that a frame is held back and overtaken by the next. */
  reorder: number;
  /** Probability that a frame is sent twice. */
  dup: number;
  /** Probability that one byte of a frame is flipped. */
  corrupt: number;
  /** PRNG seed (uint32). */
  seed: number;
  /** Longest a reordered frame is held when no other frame comes (ms). */
  delay: number;
}

export const NO_FAULTS: FaultConfig = { loss: 0, reorder: 0, dup: 0, corrupt: 0, seed: 1, delay: 10 };

const PROBABILITIES = ["loss", "reorder", "dup", "corrupt"] as const;

/**
 * Parses "loss=0.05,reorder=0.05,dup=0.02,corrupt=0.01,seed=7,delay=10".
 * Every key is optional (missing ones are 0, seed 1, delay 10 ms); an
 * empty string means no faults. Throws an Error naming the bad part.
 */
export function parseFaultSpec(spec: string): FaultConfig {
  const cfg: FaultConfig = { ...NO_FAULTS };
  const text = spec.trim();
  if (text === "") return cfg;
  const seen = new Set<string>();
  for (const rawPart of text.split(",")) {
    const part = rawPart.trim();
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`fault spec: "${part}" is not key=value (in "${spec}")`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (seen.has(key)) throw new Error(`fault spec: ${key} given twice (in "${spec}")`);
    seen.add(key);
    // Number("") is 0 and Number("0x10") is 16: insist on a plain decimal.
    const num = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(value) ? Number(value) : NaN;
    if ((PROBABILITIES as readonly string[]).includes(key)) {
      if (!(num >= 0 && num <= 1)) throw new Error(`fault spec: bad value "${value}" for ${key}: want a probability between 0 and 1`);
      cfg[key as (typeof PROBABILITIES)[number]] = num;
    } else if (key === "seed") {
      if (!(Number.isInteger(num) && num >= 0 && num <= 0xffffffff)) {
        throw new Error(`fault spec: bad value "${value}" for seed: want an integer between 0 and 4294967295`);
      }
      cfg.seed = num;
    } else if (key === "delay") {
      if (!(num >= 0 && num <= 60_000)) throw new Error(`fault spec: bad value "${value}" for delay: want milliseconds between 0 and 60000`);
      cfg.delay = num;
    } else {
      throw new Error(`fault spec: unknown key "${key}" (known: loss, reorder, dup, corrupt, seed, delay)`);
    }
  }
  return cfg;
}

/** Renders a config back into spec form (for logs and test names). */
export function formatFaultSpec(c: FaultConfig): string {
  return `loss=${c.loss},reorder=${c.reorder},dup=${c.dup},corrupt=${c.corrupt},seed=${c.seed},delay=${c.delay}`;
}

/** mulberry32: tiny, fast, deterministic from its seed. */
export class Mulberry32 {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }
}

export class FaultCounters {
  frames = 0;
  lost = 0;
  duplicated = 0;
  reordered = 0;
  corrupted = 0;
  /** Corruption rolled but skipped: the frame's checksum is trusted or offloaded. */
  corruptSkipped = 0;
}

/** A frame held back for reordering (a copy at TX_HEADROOM, keeping the
 * FrameSink promise of writable headroom in front of every frame). */
class Held {
  buf: Uint8Array = new Uint8Array(0);
  len = 0;
  at = Infinity;
  readonly tx = new TxMetaClass();
  hasTx = false;
  readonly rx = new RxMetaClass();

  get busy(): boolean {
    return this.at !== Infinity;
  }

  store(buf: Uint8Array, off: number, len: number, at: number): void {
    if (this.buf.length < TX_HEADROOM + len) this.buf = new Uint8Array(TX_HEADROOM + Math.max(len, 2048));
    this.buf.set(buf.subarray(off, off + len), TX_HEADROOM);
    this.len = len;
    this.at = at;
  }
}

type Emit = (buf: Uint8Array, off: number, len: number) => void;

/** One direction's fault state (held frame, scratch for corruption). */
class Lane {
  readonly held = new Held();
  scratch = new Uint8Array(TX_HEADROOM + 2048);
}

/**
 * The SLIRPNETSTACK_FAULTS test hook ("loss=0.05,reorder=0.05,dup=0.02,seed=7"):
 * an injector in front of `sink` that hands received frames on to
 * `receiver`, so it sits between the device and the engine both ways.
 * Throws parseFaultSpec's error on a bad spec.
 */
export function injectFaults(spec: string, sink: FrameSink, receiver: FrameReceiver, medium: Medium, clock: () => number): FaultInjector {
  const injector = new FaultInjector(parseFaultSpec(spec), sink, medium, clock);
  injector.wrap(receiver);
  return injector;
}

export class FaultInjector implements FrameSink, FrameReceiver {
  readonly counters = new FaultCounters();
  private readonly rng: Mulberry32;
  private readonly linkHeader: number;
  private upper: FrameReceiver | null = null;
  private readonly txLane = new Lane();
  private readonly rxLane = new Lane();
  private curTx: TxMeta | null = null;
  private curRx: RxMeta | null = null;

  constructor(
    readonly cfg: FaultConfig,
    /** Where transmitted frames go (null: used as a receiver only). */
    private readonly lower: FrameSink | null,
    medium: Medium,
    /** The owner's clock (virtual in tests); only read when a frame is held. */
    private readonly clock: () => number,
  ) {
    this.rng = new Mulberry32(cfg.seed);
    this.linkHeader = medium === "ethernet" ? 14 : 0;
  }

  /** The receiver frames go to after the faults (as PcapWriter.wrap). */
  wrap(upper: FrameReceiver): FrameReceiver {
    this.upper = upper;
    return this;
  }

  // --- FrameSink ---

  transmit(buf: Uint8Array, off: number, len: number, meta: TxMeta | null): void {
    // A partial checksum (csumStart) is finished by the device after us.
    const trusted = meta !== null && (meta.csumStart !== 0 || meta.gsoType !== 0);
    this.curTx = meta;
    this.apply(this.txLane, buf, off, len, trusted, this.emitTx, true);
  }

  // --- FrameReceiver ---

  receive(buf: Uint8Array, off: number, len: number, meta: RxMeta): void {
    this.curRx = meta;
    this.apply(this.rxLane, buf, off, len, meta.checksumTrusted, this.emitRx, false);
  }

  batchEnd(): void {
    this.upper?.batchEnd();
  }

  /** Releases frames held longer than `delay`; returns the next deadline. */
  poll(now: number): number {
    this.release(this.txLane, now, true);
    this.release(this.rxLane, now, false);
    return Math.min(this.txLane.held.at, this.rxLane.held.at);
  }

  /** Sends every held frame at once (end of a test, or shutdown). */
  flush(): void {
    this.release(this.txLane, Infinity, true);
    this.release(this.rxLane, Infinity, false);
  }

  // --- the faults ---

  private readonly emitTx: Emit = (b, o, l) => this.lower?.transmit(b, o, l, this.curTx);
  private readonly emitRx: Emit = (b, o, l) => this.upper?.receive(b, o, l, this.curRx!);

  private apply(lane: Lane, buf: Uint8Array, off: number, len: number, trusted: boolean, emit: Emit, tx: boolean): void {
    const c = this.cfg;
    const k = this.counters;
    k.frames++;
    // Draw every roll for every frame, so one fault's rate does not shift
    // another's random sequence (runs stay comparable across configs).
    const rLoss = this.rng.next();
    const rCorrupt = this.rng.next();
    const rReorder = this.rng.next();
    const rDup = this.rng.next();
    const rPos = this.rng.u32();
    const rFlip = this.rng.u32();
    if (rLoss < c.loss) {
      k.lost++;
      this.passed(lane, tx);
      return;
    }
    if (rCorrupt < c.corrupt) {
      if (trusted || len <= this.linkHeader) {
        k.corruptSkipped++;
      } else {
        const need = TX_HEADROOM + len;
        if (lane.scratch.length < need) lane.scratch = new Uint8Array(Math.max(need, 2 * lane.scratch.length));
        lane.scratch.set(buf.subarray(off, off + len), TX_HEADROOM);
        const span = len - this.linkHeader;
        const pos = TX_HEADROOM + this.linkHeader + (rPos % span);
        lane.scratch[pos]! ^= 1 + (rFlip % 255); // never 0: the byte changes
        buf = lane.scratch;
        off = TX_HEADROOM;
        k.corrupted++;
      }
    }
    if (rReorder < c.reorder && !lane.held.busy) {
      k.reordered++;
      const h = lane.held;
      h.store(buf, off, len, this.clock() + c.delay);
      if (tx) {
        h.hasTx = this.curTx !== null;
        if (this.curTx !== null) copyTx(this.curTx, h.tx);
      } else {
        copyRx(this.curRx!, h.rx);
      }
      return;
    }
    emit(buf, off, len);
    if (rDup < c.dup) {
      k.duplicated++;
      emit(buf, off, len);
    }
    this.passed(lane, tx);
  }

  /** A frame went past (or was lost): a held frame now follows it. */
  private passed(lane: Lane, tx: boolean): void {
    if (lane.held.busy) this.release(lane, Infinity, tx);
  }

  private release(lane: Lane, now: number, tx: boolean): void {
    const h = lane.held;
    if (!h.busy || h.at > now) return;
    h.at = Infinity;
    if (tx) this.lower?.transmit(h.buf, TX_HEADROOM, h.len, h.hasTx ? h.tx : null);
    else this.upper?.receive(h.buf, TX_HEADROOM, h.len, h.rx);
  }
}

function copyTx(from: TxMeta, to: TxMeta): void {
  to.csumStart = from.csumStart;
  to.csumOffset = from.csumOffset;
  to.gsoType = from.gsoType;
  to.gsoSize = from.gsoSize;
  to.hdrLen = from.hdrLen;
}

function copyRx(from: RxMeta, to: RxMeta): void {
  to.checksumTrusted = from.checksumTrusted;
  to.gsoType = from.gsoType;
  to.gsoSize = from.gsoSize;
}
