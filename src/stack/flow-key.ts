// Demultiplexing of flow 4-tuples, straight from packet bytes, for the
// TCP and UDP tables (a Map from hash to a chain of flows). No strings,
// no allocation per packet.
//
// The hash is keyed (SipHash under the stack's secret key, FlowSecret):
// the guest picks every field of the tuple, and with a public hash it can
// pick thousands of tuples with one hash, which all chain in one bucket
// and turn each lookup into a walk of the whole chain.
import type { FlowSecret } from "./secret.ts";

/** a[0, 16) equals b[bOff, bOff+16). */
export function eq16(a: Uint8Array, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[bOff + i]) return false;
  return true;
}

/** The identity every flow (TCP connection, UDP flow) carries. */
export interface FlowTuple {
  readonly family: 4 | 6;
  /**
   * "dest" is the destination the guest addressed, which the stack
   * impersonates (our end); "guest" is the guest's end. uint32 for IPv4.
   */
  readonly destV4: number;
  readonly guestV4: number;
  /** 16 bytes each for IPv6 (null for IPv4). */
  readonly destV6: Uint8Array | null;
  readonly guestV6: Uint8Array | null;
  readonly destPort: number;
  readonly guestPort: number;
}

/**
 * A table of flows chained by hash. Flows carry their own `nextInBucket`
 * link, so insertion and lookup allocate nothing.
 */
export class FlowTable<F extends FlowTuple & { nextInBucket: F | null }> {
  private readonly map = new Map<number, F>();
  size = 0;

  constructor(private readonly secret: FlowSecret) {}

  findV4(destIp: number, destPort: number, guestIp: number, guestPort: number): F | null {
    for (let f = this.map.get(this.secret.flowHashV4(destIp, destPort, guestIp, guestPort)) ?? null; f !== null; f = f.nextInBucket) {
      if (f.family === 4 && f.destV4 === destIp && f.guestV4 === guestIp && f.destPort === destPort && f.guestPort === guestPort) return f;
    }
    return null;
  }

  /** Dest address at dBuf[dOff], the guest's at gBuf[gOff]. */
  findV6(dBuf: Uint8Array, dOff: number, destPort: number, gBuf: Uint8Array, gOff: number, guestPort: number): F | null {
    for (let f = this.map.get(this.secret.flowHashV6(dBuf, dOff, destPort, gBuf, gOff, guestPort)) ?? null; f !== null; f = f.nextInBucket) {
      if (f.family === 6 && f.destPort === destPort && f.guestPort === guestPort && eq16(f.destV6!, dBuf, dOff) && eq16(f.guestV6!, gBuf, gOff)) {
        return f;
      }
    }
    return null;
  }

  has(t: FlowTuple): boolean {
    return t.family === 4
      ? this.findV4(t.destV4, t.destPort, t.guestV4, t.guestPort) !== null
      : this.findV6(t.destV6!, 0, t.destPort, t.guestV6!, 0, t.guestPort) !== null;
  }

  insert(f: F): void {
    const h = this.hashOf(f);
    f.nextInBucket = this.map.get(h) ?? null;
    this.map.set(h, f);
    this.size++;
  }

  remove(f: F): boolean {
    const h = this.hashOf(f);
    let prev: F | null = null;
    for (let x = this.map.get(h) ?? null; x !== null; prev = x, x = x.nextInBucket) {
      if (x !== f) continue;
      if (prev === null) {
        if (f.nextInBucket === null) this.map.delete(h);
        else this.map.set(h, f.nextInBucket);
      } else prev.nextInBucket = f.nextInBucket;
      f.nextInBucket = null;
      this.size--;
      return true;
    }
    return false;
  }

  private hashOf(t: FlowTuple): number {
    return t.family === 4
      ? this.secret.flowHashV4(t.destV4, t.destPort, t.guestV4, t.guestPort)
      : this.secret.flowHashV6(t.destV6!, 0, t.destPort, t.guestV6!, 0, t.guestPort);
  }

  *values(): IterableIterator<F> {
    for (let f of this.map.values()) {
      for (let x: F | null = f; x !== null; x = x.nextInBucket) yield x;
    }
  }
}
