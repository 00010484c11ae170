// The eviction order of a capped table: an intrusive doubly linked list,
// least recently used first. The entries carry the links themselves
// (lruPrev, lruNext), so touching an entry on the hot path allocates
// nothing. Used by the UDP flow table, the echo flows and the host's UDP
// port mappings.

export interface LruEntry<T> {
  lruPrev: T | null;
  lruNext: T | null;
}

export class LruList<T extends LruEntry<T>> {
  /** The least recently used entry: the next to evict. */
  head: T | null = null;
  private tail: T | null = null;

  /** `e` was used: it goes to the back (or joins the list). */
  touch(e: T): void {
    if (this.tail === e) return;
    this.remove(e);
    e.lruPrev = this.tail;
    if (this.tail !== null) this.tail.lruNext = e;
    else this.head = e;
    this.tail = e;
  }

  /** Takes `e` out (a no-op if it is not in the list). */
  remove(e: T): void {
    if (e.lruPrev !== null) e.lruPrev.lruNext = e.lruNext;
    else if (this.head === e) this.head = e.lruNext;
    if (e.lruNext !== null) e.lruNext.lruPrev = e.lruPrev;
    else if (this.tail === e) this.tail = e.lruPrev;
    e.lruPrev = null;
    e.lruNext = null;
  }
}
