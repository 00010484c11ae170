// A growable circular byte buffer: the TCP send buffer (bytes from SND.UNA
// on, kept until acknowledged) and the receive buffer (in-order bytes the
// host socket has not taken yet).
//
// It starts small so that thousands of idle connections cost little, and
// doubles on demand. `softLimit` is not enforced here: the owner compares
// `length` with it to apply backpressure (pause the host socket, shrink the
// advertised window). Pushing past it only happens for the bounded amount
// a producer can deliver after being paused.
//
// Storage is charged to the connection's BudgetAccount (the global TCP
// buffer budget): push() always stores what it is given (the data was
// accepted already), reserve() grows only when the budget allows, and
// `reachable` tells the owner how large the storage may get, so that it
// announces no window and reads no host data beyond it.
//
// Producers either push() a copy or, to have the kernel write straight
// into the ring (a host socket read), reserve() a contiguous span at the
// back, fill backBuf[backOff, +n) and commit(n).
//
// Storage comes from, and goes back to, a small pool shared by all rings:
// connections come and go by the thousand (each used to leave two
// buffers to the garbage collector), and bulk transfers grow and trim
// megabyte buffers; reusing them keeps the collector, and the memory it
// has not collected yet, out of the data path.

import type { BudgetAccount } from "./budget.ts";

const INITIAL = 2 * 1024;

/** Freed storage kept for reuse, by size class (INITIAL << k). */
class StoragePool {
  private readonly free: Uint8Array[][] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  take(size: number): Uint8Array {
    const list = this.free[classOf(size)];
    const b = list?.pop();
    if (b !== undefined) {
      this.bytes -= size;
      return b;
    }
    // Its own ArrayBuffer: the storage is handed to read(2) by address,
    // and small typed arrays without one may move (ffi/libc.ts, pitfalls).
    return new Uint8Array(new ArrayBuffer(size));
  }

  give(b: Uint8Array): void {
    if (b.length < INITIAL || this.bytes + b.length > this.maxBytes) return;
    const k = classOf(b.length);
    (this.free[k] ??= []).push(b);
    this.bytes += b.length;
  }

  get pooledBytes(): number {
    return this.bytes;
  }
}

function classOf(size: number): number {
  return Math.log2(size / INITIAL) | 0;
}

/**
 * At most this much idle storage is kept: a few bulk buffers, or a
 * couple of thousand small ones. Freed storage beyond it goes to the
 * garbage collector as before.
 */
export const ringPool = new StoragePool(4 * 1024 * 1024);

const EMPTY = new Uint8Array(0);

export class ByteRing {
  private buf: Uint8Array;
  private start = 0;
  length = 0;

  constructor(
    readonly softLimit: number,
    /** Where storage is charged (null: uncounted). */
    private readonly account: BudgetAccount | null = null,
  ) {
    this.buf = EMPTY;
  }

  get capacity(): number {
    return this.buf.length;
  }

  /** Storage grew past the initial size (trim() would give some back). */
  get grown(): boolean {
    return this.buf.length > INITIAL;
  }

  /** Free space before the soft limit (never negative). */
  get room(): number {
    return Math.max(0, this.softLimit - this.length);
  }

  /**
   * The largest storage the ring may grow to now, capped at the soft
   * limit: its storage doubled as often as the budget allows.
   */
  get reachable(): number {
    if (this.account === null) return this.softLimit;
    const total = this.buf.length + this.account.grantable;
    if (total >= this.softLimit) return this.softLimit;
    let cap = INITIAL;
    if (total < cap) return this.buf.length;
    while (cap * 2 <= total) cap *= 2;
    return Math.max(cap, this.buf.length);
  }

  /**
   * Grows the storage to hold `extra` more bytes. Unless `force`, only as
   * far as the budget allows; returns whether the storage suffices.
   */
  private ensure(extra: number, force: boolean): boolean {
    const need = this.length + extra;
    if (need <= this.buf.length) return true;
    let cap = Math.max(this.buf.length, INITIAL);
    while (cap < need) cap *= 2;
    const a = this.account;
    if (a !== null) {
      const grow = cap - this.buf.length;
      if (force) a.charge(grow);
      else if (!a.tryCharge(grow)) return false;
    }
    const next = ringPool.take(cap);
    this.copyOut(0, next, 0, this.length);
    ringPool.give(this.buf);
    this.buf = next;
    this.start = 0;
    return true;
  }

  /** Appends src[off, off+len). */
  push(src: Uint8Array, off: number, len: number): void {
    if (len <= 0) return;
    this.ensure(len, true);
    const cap = this.buf.length;
    let end = this.start + this.length;
    if (end >= cap) end -= cap;
    const first = Math.min(len, cap - end);
    this.buf.set(src.subarray(off, off + first), end);
    if (first < len) this.buf.set(src.subarray(off + first, off + len), 0);
    this.length += len;
  }

  /**
   * Makes free space at the back for up to `want` bytes and returns how
   * many can go there contiguously (at least 1 when want > 0, unless the
   * ring is full and the budget refuses to grow it: 0). A full ring
   * doubles, so a stream that keeps filling it grows it quickly while a
   * trickle stays in the initial size.
   */
  reserve(want: number): number {
    if (want <= 0) return 0;
    if (this.length === 0) this.start = 0;
    if (this.length === this.buf.length && !this.ensure(Math.min(want, Math.max(this.buf.length, INITIAL)), false)) return 0;
    const cap = this.buf.length;
    const end = this.start + this.length;
    const contiguous = end < cap ? cap - end : this.start - (end - cap);
    return Math.min(want, contiguous);
  }

  /** Where reserve()'s span starts. */
  get backBuf(): Uint8Array {
    return this.buf;
  }

  get backOff(): number {
    const end = this.start + this.length;
    return end < this.buf.length ? end : end - this.buf.length;
  }

  /** `n` bytes were written at the back (n <= what reserve() returned). */
  commit(n: number): void {
    this.length += n;
  }

  /** Copies `len` bytes starting `from` bytes into the ring to dst[dstOff]. */
  copyOut(from: number, dst: Uint8Array, dstOff: number, len: number): void {
    if (len <= 0) return;
    const cap = this.buf.length;
    let pos = this.start + from;
    if (pos >= cap) pos -= cap;
    const first = Math.min(len, cap - pos);
    dst.set(this.buf.subarray(pos, pos + first), dstOff);
    if (first < len) dst.set(this.buf.subarray(0, len - first), dstOff + first);
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    if (n >= this.length) {
      this.length = 0;
      this.start = 0;
    } else {
      this.length -= n;
      this.start += n;
      if (this.start >= this.buf.length) this.start -= this.buf.length;
    }
  }

  /**
   * The longest contiguous run at the front, as (buffer, offset, length),
   * for writing straight to a socket without a copy. Returns the length;
   * the buffer and offset are in `frontBuf` / `frontOff`.
   */
  front(): number {
    const cap = this.buf.length;
    return Math.min(this.length, cap - this.start);
  }

  get frontBuf(): Uint8Array {
    return this.buf;
  }

  get frontOff(): number {
    return this.start;
  }

  /**
   * Gives the storage of an empty ring grown beyond the initial size back
   * to the pool, so a burst's buffers do not stay with an idle connection.
   * Initial-size storage is kept: returning it on every drain made each
   * packet of a request/response exchange take a buffer again.
   */
  trim(): void {
    if (this.length === 0 && this.buf.length > INITIAL) this.release();
  }

  /** Gives the storage back to the pool; the ring is empty (and usable) after. */
  release(): void {
    this.account?.release(this.buf.length);
    ringPool.give(this.buf);
    this.buf = EMPTY;
    this.start = 0;
    this.length = 0;
  }
}
