// The receive ring shared by the reader Worker (producer) and the main
// thread (consumer): one SharedArrayBuffer of frame records plus a small
// Int32 control block. Single producer, single consumer, no locks.
//
// Record layout, 4-byte aligned: [int32 length][frame bytes][pad to 4].
// A length of WRAP means "the rest of the ring is unused, continue at 0".
// The producer reads straight from the device into the ring, so it needs
// `maxRecord` contiguous bytes before each read; when the tail end is too
// short it writes a WRAP marker and starts again at offset 0.
//
// head and tail are byte offsets in [0, size). head == tail means empty; the
// producer never lets head catch up with tail from behind (it keeps at
// least 4 bytes free), so a full ring is never mistaken for an empty one.

export const CTRL_HEAD = 0; // producer's write offset (Atomics.store + notify)
export const CTRL_TAIL = 1; // consumer's read offset (Atomics.store + notify)
export const CTRL_STOP = 2; // set to 1 by the consumer to stop the producer
export const CTRL_FULL_WAITS = 3; // times the producer waited for space (counter)
export const CTRL_READ_ERRORS = 4; // device read errors other than EAGAIN (counter)
export const CTRL_FRAMES = 5; // frames produced (counter, wraps at 2^31)
export const CTRL_WORDS = 8;

export const WRAP = -1;

export interface RingBuffers {
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  /** Largest frame one read can return (device MTU + headers). */
  maxFrame: number;
}

export function align4(n: number): number {
  return (n + 3) & ~3;
}

export function createRing(sizeBytes: number, maxFrame: number): RingBuffers {
  // At least a few maximal records, so a burst of 64 KiB frames fits.
  const size = Math.max(align4(sizeBytes), 4 * align4(maxFrame + 4));
  return {
    ctrl: new SharedArrayBuffer(CTRL_WORDS * 4),
    data: new SharedArrayBuffer(size),
    maxFrame,
  };
}

/**
 * Producer-side space check. Returns the offset at which a record of up to
 * `need` bytes can be written, writing a WRAP marker and moving to 0 when
 * the end of the ring is too short; or -1 when the ring is full.
 */
export function reserve(lens: Int32Array, size: number, head: number, tail: number, need: number): number {
  if (head >= tail) {
    if (size - head >= need + 4) return head; // keep 4 bytes so head != tail after wrap
    if (tail > need) {
      // A record never ends exactly at `size` without room for a marker: sizes are 4-aligned.
      if (size - head >= 4) lens[head >> 2] = WRAP;
      return 0;
    }
    return -1;
  }
  return tail - head > need ? head : -1;
}
