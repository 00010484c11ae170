// Out-of-order receive queue: segments that arrived beyond RCV.NXT, kept
// (as copies: the frame they came in is reused) until the hole before them
// fills. Also the source of the SACK blocks we advertise (RFC 2018).
//
// Bounded three times: the caller only offers bytes inside the receive
// window, the number of stored pieces is capped, so a guest sending many
// tiny disjoint segments cannot make us allocate without limit, and the
// storage is charged to the connection's share of the TCP buffer budget:
// what the budget refuses is dropped (the guest sends it again).
import type { BudgetAccount } from "./budget.ts";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from "./seq.ts";

interface Piece {
  seq: number;
  /** Storage; bytes [0, len) are held. Spare capacity lets a piece grow. */
  data: Uint8Array;
  len: number;
  /** Arrival stamp, for ordering SACK blocks most-recent-first. */
  stamp: number;
}

export const MAX_PIECES = 512;

export class Assembler {
  private pieces: Piece[] = [];
  private clock = 0;
  /** Bytes held. */
  bytes = 0;
  /** Storage of the pieces (bytes held plus spare capacity), as charged. */
  private storage = 0;

  constructor(
    /** Where storage is charged (null: uncounted). */
    private readonly account: BudgetAccount | null = null,
  ) {}

  get isEmpty(): boolean {
    return this.pieces.length === 0;
  }

  get pieceCount(): number {
    return this.pieces.length;
  }

  /**
   * Stores the parts of [seq, seq+len) that lie in [lo, hi) and are not
   * already held. Returns false when the piece cap or the budget refused
   * new data (what came before the refusal is kept).
   */
  add(seq: number, src: Uint8Array, off: number, len: number, lo: number, hi: number): boolean {
    // Clip to the window.
    let s = seq;
    let e = seqAdd(seq, len);
    if (seqLt(s, lo)) {
      off += seqDiff(lo, s);
      s = lo;
    }
    if (seqGt(e, hi)) e = hi;
    if (!seqLt(s, e)) return true;
    const stamp = ++this.clock;
    const pieces = this.pieces;
    // Walk the sorted pieces, filling only the gaps between them.
    let i = 0;
    while (i < pieces.length && seqLe(seqAdd(pieces[i]!.seq, pieces[i]!.len), s)) i++;
    let cur = s;
    while (seqLt(cur, e)) {
      const p = pieces[i];
      if (p !== undefined && seqLe(p.seq, cur)) {
        // Already held: skip past it (and refresh its recency).
        p.stamp = stamp;
        cur = seqAdd(p.seq, p.len);
        i++;
        continue;
      }
      const gapEnd = p !== undefined && seqLt(p.seq, e) ? p.seq : e;
      const n = seqDiff(gapEnd, cur);
      const from = off + seqDiff(cur, s);
      const prev = i > 0 ? pieces[i - 1]! : undefined;
      if (prev !== undefined && seqAdd(prev.seq, prev.len) === cur) {
        // The common case behind a hole: the next segment in order. Grow
        // the piece before it instead of adding one per segment, so the
        // piece cap bounds the holes, not the segments (a window of
        // thousands of segments past one loss used to overflow it).
        if (!this.append(prev, src, from, n)) return false;
        prev.stamp = stamp;
      } else {
        if (pieces.length >= MAX_PIECES || !this.take(n)) return false;
        pieces.splice(i, 0, { seq: cur, data: src.slice(from, from + n), len: n, stamp });
        i++;
      }
      this.bytes += n;
      cur = gapEnd;
    }
    return true;
  }

  /** Charges `n` bytes of new storage; false when the budget refuses. */
  private take(n: number): boolean {
    if (this.account !== null && !this.account.tryCharge(n)) return false;
    this.storage += n;
    return true;
  }

  /** Appends src[from, from+n) to piece p, doubling its storage as needed; false when the budget refuses. */
  private append(p: Piece, src: Uint8Array, from: number, n: number): boolean {
    const need = p.len + n;
    if (need > p.data.length) {
      const size = Math.max(need, 2 * p.data.length);
      if (!this.take(size - p.data.length)) return false;
      const grown = new Uint8Array(size);
      grown.set(p.data.subarray(0, p.len), 0);
      p.data = grown;
    }
    p.data.set(src.subarray(from, from + n), p.len);
    p.len = need;
    return true;
  }

  private give(n: number): void {
    this.storage -= n;
    this.account?.release(n);
  }

  /**
   * Removes and returns, in order, the pieces that now continue RCV.NXT.
   * `deliver` gets each contiguous run; returns the new RCV.NXT. `deliver`
   * may clear() the queue (the host side closed the connection while
   * taking the data): draining stops there, with the count at zero.
   */
  drain(rcvNxt: number, deliver: (data: Uint8Array, off: number, len: number) => void): number {
    const pieces = this.pieces;
    let taken = 0;
    // clear() empties this same array, which ends the loop.
    while (taken < pieces.length) {
      const p = pieces[taken]!;
      if (seqGt(p.seq, rcvNxt)) break;
      // Accounted before delivery, which may clear() the count.
      taken++;
      this.bytes -= p.len;
      this.give(p.data.length);
      const end = seqAdd(p.seq, p.len);
      if (seqGt(end, rcvNxt)) {
        const skip = seqDiff(rcvNxt, p.seq);
        rcvNxt = end;
        deliver(p.data, skip, p.len - skip);
      }
    }
    if (taken > 0) pieces.splice(0, taken);
    return rcvNxt;
  }

  /** Drops everything held (the connection is gone or reset); safe during drain(). */
  clear(): void {
    this.pieces.length = 0;
    this.bytes = 0;
    this.give(this.storage);
  }

  /**
   * How many SACK blocks sackBlocks(out, max) writes: the runs of touching
   * pieces, at most `max`. Allocation-free, for sizing segments.
   */
  blockCount(max: number): number {
    const pieces = this.pieces;
    if (pieces.length === 0 || max === 0) return 0;
    let n = 1;
    let end = seqAdd(pieces[0]!.seq, pieces[0]!.len);
    for (let i = 1; i < pieces.length && n < max; i++) {
      const p = pieces[i]!;
      if (seqLt(end, p.seq)) n++;
      end = seqAdd(p.seq, p.len);
    }
    return n;
  }

  /**
   * Writes up to `max` SACK blocks (start, end pairs) into `out`, the block
   * holding the most recent arrival first (RFC 2018 §4). Returns the count.
   */
  sackBlocks(out: Uint32Array, max: number): number {
    const pieces = this.pieces;
    if (pieces.length === 0 || max === 0) return 0;
    // Merge touching pieces into blocks, remembering each block's newest stamp.
    const blocks: Array<[number, number, number]> = [];
    let bs = pieces[0]!.seq;
    let be = seqAdd(bs, pieces[0]!.len);
    let st = pieces[0]!.stamp;
    for (let i = 1; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (seqGe(be, p.seq)) {
        be = seqAdd(p.seq, p.len);
        if (p.stamp > st) st = p.stamp;
      } else {
        blocks.push([bs, be, st]);
        bs = p.seq;
        be = seqAdd(p.seq, p.len);
        st = p.stamp;
      }
    }
    blocks.push([bs, be, st]);
    blocks.sort((a, b) => b[2] - a[2]);
    const n = Math.min(max, blocks.length);
    for (let i = 0; i < n; i++) {
      out[2 * i] = blocks[i]![0];
      out[2 * i + 1] = blocks[i]![1];
    }
    return n;
  }
}
