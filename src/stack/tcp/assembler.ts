// Out-of-order receive queue: segments that arrived beyond RCV.NXT, kept
// (as copies: the frame they came in is reused) until the hole before them
// fills. Also the source of the SACK blocks we advertise (RFC 2018).
//
// Bounded twice: the caller only offers bytes inside the receive window,
// and the number of stored pieces is capped, so a guest sending many tiny
// disjoint segments cannot make us allocate without limit.
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from "./seq.ts";

interface Piece {
  seq: number;
  data: Uint8Array;
  /** Arrival stamp, for ordering SACK blocks most-recent-first. */
  stamp: number;
}

export const MAX_PIECES = 512;

export class Assembler {
  private pieces: Piece[] = [];
  private clock = 0;
  /** Bytes held. */
  bytes = 0;

  get isEmpty(): boolean {
    return this.pieces.length === 0;
  }

  get pieceCount(): number {
    return this.pieces.length;
  }

  /**
   * Stores the parts of [seq, seq+len) that lie in [lo, hi) and are not
   * already held. Returns false when the piece cap refused new data.
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
    while (i < pieces.length && seqLe(seqAdd(pieces[i]!.seq, pieces[i]!.data.length), s)) i++;
    let cur = s;
    while (seqLt(cur, e)) {
      const p = pieces[i];
      if (p !== undefined && seqLe(p.seq, cur)) {
        // Already held: skip past it (and refresh its recency).
        p.stamp = stamp;
        cur = seqAdd(p.seq, p.data.length);
        i++;
        continue;
      }
      const gapEnd = p !== undefined && seqLt(p.seq, e) ? p.seq : e;
      const n = seqDiff(gapEnd, cur);
      if (pieces.length >= MAX_PIECES) return false;
      const from = off + seqDiff(cur, s);
      pieces.splice(i, 0, { seq: cur, data: src.slice(from, from + n), stamp });
      this.bytes += n;
      i++;
      cur = gapEnd;
    }
    return true;
  }

  /**
   * Removes and returns, in order, the pieces that now continue RCV.NXT.
   * `deliver` gets each contiguous run; returns the new RCV.NXT.
   */
  drain(rcvNxt: number, deliver: (data: Uint8Array, off: number, len: number) => void): number {
    const pieces = this.pieces;
    let taken = 0;
    while (taken < pieces.length) {
      const p = pieces[taken]!;
      if (seqGt(p.seq, rcvNxt)) break;
      const end = seqAdd(p.seq, p.data.length);
      if (seqGt(end, rcvNxt)) {
        const skip = seqDiff(rcvNxt, p.seq);
        deliver(p.data, skip, p.data.length - skip);
        rcvNxt = end;
      }
      this.bytes -= p.data.length;
      taken++;
    }
    if (taken > 0) pieces.splice(0, taken);
    return rcvNxt;
  }

  /** Drops everything held (the connection is gone or reset). */
  clear(): void {
    this.pieces = [];
    this.bytes = 0;
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
    let be = seqAdd(bs, pieces[0]!.data.length);
    let st = pieces[0]!.stamp;
    for (let i = 1; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (seqGe(be, p.seq)) {
        be = seqAdd(p.seq, p.data.length);
        if (p.stamp > st) st = p.stamp;
      } else {
        blocks.push([bs, be, st]);
        bs = p.seq;
        be = seqAdd(p.seq, p.data.length);
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
