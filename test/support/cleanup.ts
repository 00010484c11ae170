// A registry of everything a test started (namespace holders, the stack
// process, servers), so teardown can always reach it: test files destroy
// their own fixtures in afterAll/afterEach, and the preload's global hooks
// (test/support/preload.ts) destroy whatever is left, also when a test threw.

export interface Destroyable {
  destroy(): Promise<void>;
}

const live = new Set<Destroyable>();

export function track(d: Destroyable): void {
  live.add(d);
}

export function untrack(d: Destroyable): void {
  live.delete(d);
}

/** Destroys everything still registered, newest first. */
export async function destroyAll(): Promise<void> {
  const items = [...live].reverse();
  live.clear();
  for (const d of items) {
    try {
      await d.destroy();
    } catch {
      // Teardown continues: one failure must not leak the rest.
    }
  }
}

export function liveCount(): number {
  return live.size;
}
