// The eviction order shared by the capped tables.
import { describe, expect, test } from "bun:test";
import { LruList, type LruEntry } from "../../../src/stack/lru.ts";

class E implements LruEntry<E> {
  lruPrev: E | null = null;
  lruNext: E | null = null;
  constructor(readonly name: string) {}
}

function order(l: LruList<E>): string[] {
  const out: string[] = [];
  for (let e = l.head; e !== null; e = e.lruNext) out.push(e.name);
  return out;
}

describe("LruList", () => {
  test("touch appends or moves to the back; remove unlinks anywhere; head is the next to evict", () => {
    const l = new LruList<E>();
    const [a, b, c] = [new E("a"), new E("b"), new E("c")];
    l.touch(a);
    l.touch(b);
    l.touch(c);
    expect(order(l)).toEqual(["a", "b", "c"]);
    l.touch(a);
    expect(order(l)).toEqual(["b", "c", "a"]);
    l.touch(a);
    expect(order(l)).toEqual(["b", "c", "a"]);
    l.remove(c);
    expect(order(l)).toEqual(["b", "a"]);
    l.remove(c);
    expect(order(l)).toEqual(["b", "a"]);
    l.remove(b);
    l.remove(a);
    expect(l.head).toBeNull();
    l.touch(c);
    expect(order(l)).toEqual(["c"]);
  });
});
