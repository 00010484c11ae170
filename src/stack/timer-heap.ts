// An indexed min-heap of timed objects (TCP connections, UDP flows), keyed
// on each object's `deadline`. Every object sits in the heap at most once
// and knows its position, so moving a deadline is one sift and removing a
// finished connection frees it at once (a lazy heap would keep closed
// connections alive until their old keepalive entry surfaced).

export interface Timed {
  /** When the object wants its timer callback (Infinity: never). */
  deadline: number;
  /** Position in the heap, -1 when absent. Owned by the heap. */
  heapIndex: number;
}

export class TimerHeap<T extends Timed> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** Call after changing item.deadline: inserts, moves or removes it. */
  update(item: T): void {
    const i = item.heapIndex;
    if (item.deadline === Infinity) {
      if (i >= 0) this.removeAt(i);
      return;
    }
    if (i < 0) {
      item.heapIndex = this.items.length;
      this.items.push(item);
      this.up(item.heapIndex);
    } else {
      this.up(i);
      this.down(item.heapIndex);
    }
  }

  remove(item: T): void {
    if (item.heapIndex >= 0) this.removeAt(item.heapIndex);
  }

  /** The earliest deadline (Infinity when empty). */
  peek(): number {
    return this.items.length > 0 ? this.items[0]!.deadline : Infinity;
  }

  /**
   * Calls fire() for every object due at `now`, earliest first. fire() is
   * expected to move the object's deadline (and call update) or remove it.
   */
  run(now: number, fire: (item: T) => void): void {
    let guard = this.items.length * 4 + 16;
    while (this.items.length > 0 && this.items[0]!.deadline <= now && guard-- > 0) {
      const item = this.items[0]!;
      fire(item);
      // fire() must have moved or removed it; if not, take it out so a
      // misbehaving object cannot spin the loop.
      if (item.heapIndex === 0 && item.deadline <= now) this.removeAt(0);
    }
  }

  private removeAt(i: number): void {
    const items = this.items;
    const gone = items[i]!;
    gone.heapIndex = -1;
    const last = items.pop()!;
    if (i < items.length) {
      items[i] = last;
      last.heapIndex = i;
      this.up(i);
      this.down(last.heapIndex);
    }
  }

  private up(i: number): void {
    const items = this.items;
    const item = items[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = items[p]!;
      if (parent.deadline <= item.deadline) break;
      items[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    items[i] = item;
    item.heapIndex = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && items[c + 1]!.deadline < items[c]!.deadline) c++;
      const child = items[c]!;
      if (child.deadline >= item.deadline) break;
      items[i] = child;
      child.heapIndex = i;
      i = c;
    }
    items[i] = item;
    item.heapIndex = i;
  }
}
