// IP fragment reassembly, IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5),
// with bounded memory and a timeout.
//
// The guest fragments any datagram larger than its MTU; the suite sends
// 65507-byte UDP datagrams over MTU 65521, which arrive as two fragments.
// Everything here is hostile input: fragments may overlap, lie about
// their offsets, never complete, or arrive by the thousand. So:
//  - a datagram may not exceed 65535 bytes of payload (ping of death);
//  - overlapping fragments drop the whole datagram (RFC 5722 for IPv6; we
//    apply the same rule to IPv4 rather than guess which copy is right);
//  - bytes past the end the last fragment (MF=0) sets, whether they came
//    before or after it, drop the whole datagram, and so does a second,
//    different end;
//  - a datagram is whole when its received ranges (the complement of
//    RFC 815's hole list) cover [0, end), never by counting bytes: a hole
//    would deliver whatever an earlier datagram left in the reused buffer;
//  - the header, and so IPv6's Next Header, comes from the fragment at
//    offset 0 (RFC 8200 §4.5), whichever fragment arrives last;
//  - at most MAX_DATAGRAMS are in progress (one 66 KiB buffer each); the
//    oldest is evicted to make room;
//  - an incomplete datagram expires after TIMEOUT_MS (RFC 8200: 60 s;
//    RFC 791 suggests 15 s; we use 30 s).
// Sans-I/O: the caller passes `now` and calls expire() from its poll.
import type { Stats } from "./stats.ts";
import { allocChecksumBuffer, inChecksumMemory } from "../wire/checksum-wasm.ts";

const EMPTY = new Uint8Array(0);

export const MAX_DATAGRAMS = 64;
export const TIMEOUT_MS = 30_000;
const MAX_PAYLOAD = 65535;
/** Ranges per datagram: more fragments than this is an attack, not a datagram. */
const MAX_PIECES = 128;
/**
 * Room in front of the payload for the first fragment's header, so the
 * datagram is whole in place: IPv4's 60 bytes, or IPv6's 40 plus the
 * extension headers before the Fragment header.
 */
const HEADROOM = 1024;
const BUF_SIZE = HEADROOM + MAX_PAYLOAD;
/** Free buffers kept for the next datagrams. */
const POOL = 4;

class Pending {
  /** Received payload [start, end) ranges, sorted, non-overlapping. */
  readonly ranges: number[] = [];
  /** Total payload length, known once the last fragment (MF=0) arrives. */
  total = -1;
  /** Length of the header in front of the payload (from the offset-0 fragment), or -1. */
  headerLen = -1;
  constructor(
    readonly key: string,
    readonly expires: number,
    /** Payload at HEADROOM + offset; the header ends at HEADROOM. */
    readonly data: Uint8Array,
  ) {}
}

/** A whole datagram, header and payload contiguous at buf[off, off+len). */
export interface Reassembled {
  buf: Uint8Array;
  off: number;
  len: number;
  headerLen: number;
  payloadLen: number;
}

export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  /**
   * Datagram buffers are reused: each is 64 KiB, and allocating (and
   * zeroing, and faulting in) one per datagram was most of the cost of a
   * fragmented 64 KiB datagram. The first ones live in the checksum
   * kernel's memory, so the datagram's checksum runs in WASM.
   */
  private readonly free: Uint8Array[] = [];
  private readonly whole: Reassembled = { buf: EMPTY, off: 0, len: 0, headerLen: 0, payloadLen: 0 };

  constructor(private readonly stats: Stats) {}

  get inProgress(): number {
    return this.pending.size;
  }

  /**
   * Adds one fragment. The header (headerLen bytes at headerOff) is kept
   * from the fragment at offset 0, with the byte at headerOff + patchAt
   * set to patchValue if patchAt >= 0: IPv6's Next Header that named the
   * Fragment header takes the Fragment header's own Next Header, as the
   * whole datagram has none (RFC 8200 §4.5). The caller fixes up the rest
   * of the header after reassembly. Returns the whole datagram when this
   * fragment completes it; the caller hands it back with release() once
   * done with it.
   */
  add(
    key: string,
    fragOffset: number,
    more: boolean,
    buf: Uint8Array,
    payloadOff: number,
    payloadLen: number,
    headerOff: number,
    headerLen: number,
    patchAt: number,
    patchValue: number,
    now: number,
  ): Reassembled | null {
    const end = fragOffset + payloadLen;
    if (end > MAX_PAYLOAD || (more && payloadLen % 8 !== 0) || (payloadLen === 0 && more)) {
      this.stats.drop("frag-invalid");
      this.discard(key);
      return null;
    }
    if (fragOffset === 0 && headerLen > HEADROOM) {
      this.stats.drop("frag-header-too-long");
      this.discard(key);
      return null;
    }
    let p = this.pending.get(key);
    if (p === undefined) {
      this.makeRoom(now);
      p = new Pending(key, now + TIMEOUT_MS, this.take());
      this.pending.set(key, p);
    }
    if (!more) {
      if (p.total >= 0 && p.total !== end) return this.fail(p, "frag-invalid");
      // Fragments that came before this one may lie past the end it sets.
      if (p.ranges.length > 0 && p.ranges[p.ranges.length - 1]! > end) return this.fail(p, "frag-invalid");
      p.total = end;
    }
    if (p.total >= 0 && end > p.total) return this.fail(p, "frag-invalid");
    // An exact copy of a fragment we hold is a network duplicate, not an
    // attack: drop it and keep the datagram (RFC 8200 §4.5 allows this).
    if (covered(p.ranges, fragOffset, end) && sameBytes(p.data, HEADROOM + fragOffset, buf, payloadOff, payloadLen)) {
      this.stats.drop("frag-duplicate");
      return null;
    }
    if (!insertRange(p.ranges, fragOffset, end)) return this.fail(p, "frag-overlap");
    if (p.ranges.length > 2 * MAX_PIECES) return this.fail(p, "frag-too-many");
    p.data.set(buf.subarray(payloadOff, payloadOff + payloadLen), HEADROOM + fragOffset);
    if (fragOffset === 0) {
      p.data.set(buf.subarray(headerOff, headerOff + headerLen), HEADROOM - headerLen);
      if (patchAt >= 0) p.data[HEADROOM - headerLen + patchAt] = patchValue;
      p.headerLen = headerLen;
    }
    if (p.total < 0 || p.headerLen < 0 || !coversAll(p.ranges, p.total)) return null;
    this.pending.delete(p.key); // whole: its buffer goes back in release()
    const w = this.whole;
    w.buf = p.data;
    w.off = HEADROOM - p.headerLen;
    w.len = p.headerLen + p.total;
    w.headerLen = p.headerLen;
    w.payloadLen = p.total;
    return w;
  }

  /** The caller is done with the datagram add() returned: its buffer is reused. */
  release(w: Reassembled): void {
    this.give(w.buf);
    w.buf = EMPTY;
  }

  /** Drops datagrams whose time is up. Returns the next expiry (or Infinity). */
  expire(now: number): number {
    // Called on every poll: no iterator object when nothing is pending.
    if (this.pending.size === 0) return Infinity;
    let next = Infinity;
    for (const p of this.pending.values()) {
      if (p.expires <= now) {
        this.stats.drop("frag-timeout");
        this.drop(p);
      } else if (p.expires < next) next = p.expires;
    }
    return next;
  }

  private take(): Uint8Array {
    return this.free.pop() ?? allocChecksumBuffer(BUF_SIZE);
  }

  private give(b: Uint8Array): void {
    if (b.length !== BUF_SIZE) return;
    if (this.free.length < POOL) {
      this.free.push(b);
      return;
    }
    // Full. A buffer in the checksum kernel's memory is kept in place of
    // an ordinary one (that memory is never given back, and there is room
    // in it for only a few), else dropped.
    if (!inChecksumMemory(b)) return;
    const i = this.free.findIndex((x) => !inChecksumMemory(x));
    if (i >= 0) this.free[i] = b;
    else this.free.push(b);
  }

  private fail(p: Pending, reason: string): null {
    this.stats.drop(reason);
    this.drop(p);
    return null;
  }

  private discard(key: string): void {
    const p = this.pending.get(key);
    if (p) this.drop(p);
  }

  /** Forgets a datagram in progress and keeps its buffer for the next. */
  private drop(p: Pending): void {
    this.pending.delete(p.key);
    this.give(p.data);
  }

  /** Evicts the oldest datagrams until one more fits (Map keeps insertion order). */
  private makeRoom(now: number): void {
    this.expire(now);
    for (const p of this.pending.values()) {
      if (this.pending.size < MAX_DATAGRAMS) break;
      this.stats.drop("frag-evicted");
      this.drop(p);
    }
  }
}

/** The ranges (all within [0, total)) leave no hole in [0, total). */
function coversAll(r: number[], total: number): boolean {
  return total === 0 ? r.length === 0 : r.length === 2 && r[0] === 0 && r[1] === total;
}

/** [s, e) lies inside one of the received ranges. */
function covered(r: number[], s: number, e: number): boolean {
  for (let i = 0; i < r.length; i += 2) if (r[i]! <= s && e <= r[i + 1]!) return true;
  return false;
}

function sameBytes(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/**
 * Inserts [s, e) into a sorted flat list of ranges [s0, e0, s1, e1, ...],
 * merging with touching neighbours. Returns false if it overlaps one.
 */
function insertRange(r: number[], s: number, e: number): boolean {
  if (e === s) return true;
  let i = 0;
  while (i < r.length && r[i + 1]! < s) i += 2;
  // A range ending exactly at s touches us on the left.
  let left = -1;
  if (i < r.length && r[i + 1] === s) {
    left = i;
    i += 2;
  }
  // r[i], if any, ends after s: it overlaps unless it starts at or after e.
  if (i < r.length && r[i]! < e) return false;
  const joinRight = i < r.length && r[i] === e;
  if (left >= 0 && joinRight) {
    r[left + 1] = r[i + 1]!;
    r.splice(i, 2);
  } else if (left >= 0) {
    r[left + 1] = e;
  } else if (joinRight) {
    r[i] = s;
  } else {
    r.splice(i, 0, s, e);
  }
  return true;
}
