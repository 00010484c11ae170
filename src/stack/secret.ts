// The numbers an off-path attacker must not guess: TCP initial sequence
// numbers (RFC 6528), TCP timestamp offsets (RFC 7323 §7.1), ephemeral
// ports (RFC 6056), and the flow tables' hash (so that the guest cannot
// pick tuples that all land in one bucket). Each is a keyed hash of the
// flow's addresses and ports under a secret key that the caller draws
// from a CSPRNG once at start; the engine itself stays deterministic (a
// fixed key in tests).
import type { FlowTable, FlowTuple } from "./flow-key.ts";
import { writeU16, writeU32 } from "../wire/bytes.ts";

/** The longest message SipHash takes here (FlowSecret's are 40 bytes at most). */
const MAX_MESSAGE = 64;

/**
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit PRF over
 * short messages (64 bytes at most here). 64-bit words are kept as 32-bit
 * halves in int32 locals (no BigInt, no allocation, no number that leaves
 * the int32 range, which would slow every operation on it); the result is
 * in `hi` and `lo`, unsigned.
 */
export class SipHash {
  hi = 0;
  lo = 0;
  // The key k0, k1 (little-endian 64-bit words), as halves.
  private readonly k0l: number;
  private readonly k0h: number;
  private readonly k1l: number;
  private readonly k1h: number;
  /** The message as 64-bit words (low half first), its last block included. */
  private readonly m = new Int32Array(2 * (MAX_MESSAGE / 8 + 1));

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new Error("SipHash needs a 16-byte key");
    this.k0l = le32(key, 0);
    this.k0h = le32(key, 4);
    this.k1l = le32(key, 8);
    this.k1h = le32(key, 12);
  }

  /** Hashes msg[0, len), len <= 64. */
  hash(msg: Uint8Array, len: number): void {
    if (len > MAX_MESSAGE) throw new RangeError(`SipHash: ${len} bytes is more than ${MAX_MESSAGE}`);
    const m = this.m;
    const whole = len - (len & 7);
    for (let i = 0; i < whole; i += 4) m[i >> 2] = le32(msg, i);
    // The last block: the remaining bytes, and the length in the top byte.
    let ml = 0;
    let mh = (len & 0xff) << 24;
    for (let i = whole; i < len; i++) {
      const shift = (i - whole) * 8;
      if (shift < 32) ml |= msg[i]! << shift;
      else mh |= msg[i]! << (shift - 32);
    }
    m[whole >> 2] = ml;
    m[(whole >> 2) + 1] = mh;
    this.run((whole >> 3) + 1);
  }

  /**
   * hash() of the 12 bytes LE32(a) LE32(b) LE32(c), straight from the
   * words; returns the low half.
   */
  hash12(a: number, b: number, c: number): number {
    const m = this.m;
    m[0] = a;
    m[1] = b;
    m[2] = c;
    m[3] = 12 << 24;
    this.run(2);
    return this.lo;
  }

  /**
   * hash() of the 36 bytes x[xOff, xOff+16) y[yOff, yOff+16) LE32(c),
   * straight from the buffers; returns the low half.
   */
  hash36(x: Uint8Array, xOff: number, y: Uint8Array, yOff: number, c: number): number {
    const m = this.m;
    for (let i = 0; i < 4; i++) {
      m[i] = le32(x, xOff + 4 * i);
      m[4 + i] = le32(y, yOff + 4 * i);
    }
    m[8] = c;
    m[9] = 36 << 24;
    this.run(5);
    return this.lo;
  }

  /**
   * Compresses the first `blocks` 64-bit words of `m` (the last one holds
   * the length), two SipRounds each, then finalizes with four. One loop
   * over all the rounds, so the round is written once.
   */
  private run(blocks: number): void {
    const m = this.m;
    let v0l = this.k0l ^ 0x70736575;
    let v0h = this.k0h ^ 0x736f6d65;
    let v1l = this.k1l ^ 0x6e646f6d;
    let v1h = this.k1h ^ 0x646f7261;
    let v2l = this.k0l ^ 0x6e657261;
    let v2h = this.k0h ^ 0x6c796765;
    let v3l = this.k1l ^ 0x79746573;
    let v3h = this.k1h ^ 0x74656462;
    const compress = 2 * blocks;
    let l: number;
    let h: number;
    for (let r = 0; r < compress + 4; r++) {
      if (r < compress && (r & 1) === 0) {
        // v3 ^= m, before the block's first round
        v3l ^= m[r]!;
        v3h ^= m[r + 1]!;
      } else if (r === compress) v2l ^= 0xff;
      // SipRound. v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      l = (v0l + v1l) | 0;
      v0h = (v0h + v1h + (l >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
      v0l = l;
      l = (v1l << 13) | (v1h >>> 19);
      h = (v1h << 13) | (v1l >>> 19);
      v1l = l ^ v0l;
      v1h = h ^ v0h;
      l = v0l;
      v0l = v0h;
      v0h = l;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      l = (v2l + v3l) | 0;
      v2h = (v2h + v3h + (l >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
      v2l = l;
      l = (v3l << 16) | (v3h >>> 16);
      h = (v3h << 16) | (v3l >>> 16);
      v3l = l ^ v2l;
      v3h = h ^ v2h;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      l = (v0l + v3l) | 0;
      v0h = (v0h + v3h + (l >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
      v0l = l;
      l = (v3l << 21) | (v3h >>> 11);
      h = (v3h << 21) | (v3l >>> 11);
      v3l = l ^ v0l;
      v3h = h ^ v0h;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      l = (v2l + v1l) | 0;
      v2h = (v2h + v1h + (l >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
      v2l = l;
      l = (v1l << 17) | (v1h >>> 15);
      h = (v1h << 17) | (v1l >>> 15);
      v1l = l ^ v2l;
      v1h = h ^ v2h;
      l = v2l;
      v2l = v2h;
      v2h = l;
      if (r < compress && (r & 1) === 1) {
        // v0 ^= m, after the block's second round
        v0l ^= m[r - 1]!;
        v0h ^= m[r]!;
      }
    }
    this.lo = (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
    this.hi = (v0h ^ v1h ^ v2h ^ v3h) >>> 0;
  }
}

/** The little-endian 32-bit word at b[off], as an int32. */
function le32(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24);
}

/** What each hash is for (the first message byte), so no two uses share outputs. */
const TAG_ISN = 1;
const TAG_TS = 2;
const TAG_PORT = 3;

/** Linux's default ephemeral port range, 32768-60999. */
const EPHEMERAL_MIN = 32768;
const EPHEMERAL_COUNT = 28232;
/** Counters of RFC 6056 algorithm 4 (its "table"), a power of two. */
const PORT_TABLE = 16;

/** The keyed numbers of one stack. */
export class FlowSecret {
  private readonly sip: SipHash;
  private readonly msg = new Uint8Array(40);
  private readonly portTable = new Uint32Array(PORT_TABLE);

  /** `key`: 16 bytes from a CSPRNG (crypto.getRandomValues). */
  constructor(key: Uint8Array) {
    this.sip = new SipHash(key);
  }

  /**
   * RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport,
   * secretkey), M a clock ticking every 4 µs. Consecutive connections of
   * one 4-tuple get increasing ISNs (so a new SYN lands beyond an old
   * incarnation's sequence space, RFC 9293 §3.4.1), while the ISNs of
   * other tuples tell an observer nothing.
   */
  tcpIsn(t: FlowTuple, now: number): number {
    return (Math.floor(now * 250) + this.tuple(TAG_ISN, t)) >>> 0;
  }

  /**
   * RFC 7323 §7.1 (and §5.4): the offset added to our millisecond clock in
   * one connection's TSval, so TSvals neither reveal the clock nor link
   * connections. A hash of the 4-tuple rather than a fresh random number:
   * a new incarnation of the same tuple continues the same TSval sequence,
   * which the guest's PAWS and TIME-WAIT checks (RFC 6191) rely on.
   */
  tcpTsOffset(t: FlowTuple): number {
    return this.tuple(TAG_TS, t);
  }

  /**
   * RFC 6056 §3.3.4, algorithm 4 ("double-hash port selection"): a free
   * dest port for a flow from `dest` to `guest`:`guestPort`, or 0 when
   * every port of the range is taken. F (the offset) and G (the counter's
   * index) are the two halves of one keyed hash, independent as outputs
   * of a PRF. Ports toward one destination follow a sequence no other
   * destination can see.
   */
  ephemeralPortV4<F extends FlowTuple & { nextInBucket: F | null }>(
    table: FlowTable<F>,
    dest: number,
    guest: number,
    guestPort: number,
  ): number {
    const m = this.msg;
    m[0] = TAG_PORT;
    writeU32(m, 1, dest);
    writeU32(m, 5, guest);
    writeU16(m, 9, guestPort);
    this.sip.hash(m, 11);
    const offset = this.sip.lo;
    const index = this.sip.hi & (PORT_TABLE - 1);
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const p = this.nextPort(offset, index);
      if (table.findV4(dest, p, guest, guestPort) === null) return p;
    }
    return 0;
  }

  ephemeralPortV6<F extends FlowTuple & { nextInBucket: F | null }>(
    table: FlowTable<F>,
    dest: Uint8Array,
    guest: Uint8Array,
    guestPort: number,
  ): number {
    const m = this.msg;
    m[0] = TAG_PORT;
    for (let i = 0; i < 16; i++) {
      m[1 + i] = dest[i]!;
      m[17 + i] = guest[i]!;
    }
    writeU16(m, 33, guestPort);
    this.sip.hash(m, 35);
    const offset = this.sip.lo;
    const index = this.sip.hi & (PORT_TABLE - 1);
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const p = this.nextPort(offset, index);
      if (table.findV6(dest, 0, p, guest, 0, guestPort) === null) return p;
    }
    return 0;
  }

  /**
   * The flow tables' bucket of an IPv4 4-tuple: SipHash of the 12 bytes
   * dest, guest, ports. (Its length sets it apart from the tagged
   * messages above, so it shares no outputs with them; it is never shown
   * to anyone anyway.) Allocation-free: it runs for every segment.
   */
  flowHashV4(destIp: number, destPort: number, guestIp: number, guestPort: number): number {
    return this.sip.hash12(destIp, guestIp, (destPort << 16) | guestPort) | 0;
  }

  /** The same for IPv6: SipHash of the 36 bytes dest, guest, ports. */
  flowHashV6(dest: Uint8Array, dOff: number, destPort: number, guest: Uint8Array, gOff: number, guestPort: number): number {
    return this.sip.hash36(dest, dOff, guest, gOff, (destPort << 16) | guestPort) | 0;
  }

  private nextPort(offset: number, index: number): number {
    const n = this.portTable[index]!;
    this.portTable[index] = n + 1;
    return EPHEMERAL_MIN + (((offset + n) >>> 0) % EPHEMERAL_COUNT);
  }

  /** The low 32 bits of the keyed hash of `tag` and the flow's 4-tuple. */
  private tuple(tag: number, t: FlowTuple): number {
    const m = this.msg;
    m[0] = tag;
    let n: number;
    if (t.family === 4) {
      writeU32(m, 1, t.destV4);
      writeU32(m, 5, t.guestV4);
      n = 9;
    } else {
      m.set(t.destV6!, 1);
      m.set(t.guestV6!, 17);
      n = 33;
    }
    writeU16(m, n, t.destPort);
    writeU16(m, n + 2, t.guestPort);
    this.sip.hash(m, n + 4);
    return this.sip.lo;
  }
}
