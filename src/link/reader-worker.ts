// The reader Worker: the only thread that reads the device.
//
// Bun has no event-loop readiness API for a character device, so this
// thread blocks in poll() on the device fd and a stop eventfd, then drains
// the device with non-blocking read()s straight into the shared ring (no
// copy, no message per frame). The main thread waits on the ring's head
// with Atomics.waitAsync. See ../../docs/architecture.md, "Packet path".
//
// Why poll on an eventfd too: a Worker blocked in a plain read() cannot be
// terminated and keeps the process from exiting (bun-notes §2).
import { ptr } from "bun:ffi";
import { libc, errno, EAGAIN, EINTR, errnoName } from "../../ffi/libc.ts";
import { PollSet } from "../../ffi/sys.ts";
import {
  CTRL_FRAMES,
  CTRL_FULL_WAITS,
  CTRL_HEAD,
  CTRL_READ_ERRORS,
  CTRL_STOP,
  CTRL_TAIL,
  align4,
  reserve,
  type RingBuffers,
} from "./ring.ts";

export interface ReaderStart {
  fd: number;
  stopFd: number;
  ring: RingBuffers;
}

/** Messages the worker posts to its owner. */
export type ReaderMessage = { type: "stopped" } | { type: "failed"; error: string };

declare const self: Worker;

self.onmessage = (ev: MessageEvent<ReaderStart>) => {
  let msg: ReaderMessage;
  try {
    msg = run(ev.data);
  } catch (e) {
    msg = { type: "failed", error: String((e as Error)?.message ?? e) };
  }
  self.postMessage(msg);
};

const MAX_BATCH = 256;

function run({ fd, stopFd, ring }: ReaderStart): ReaderMessage {
  const ctrl = new Int32Array(ring.ctrl);
  const data = new Uint8Array(ring.data);
  const lens = new Int32Array(ring.data);
  const size = data.length;
  const need = align4(4 + ring.maxFrame);
  // The ring is a SharedArrayBuffer: its memory never moves, and `ring`
  // stays referenced for the whole function, so a numeric base pointer is safe.
  const base = ptr(data);
  const polls = new PollSet([fd, stopFd]);
  let head = Atomics.load(ctrl, CTRL_HEAD);

  for (;;) {
    polls.wait(-1);
    if (Atomics.load(ctrl, CTRL_STOP) !== 0 || polls.revents(1) !== 0) return { type: "stopped" };
    const rev = polls.revents(0);
    if (rev === 0) continue;

    for (let batch = 0; batch < MAX_BATCH; batch++) {
      let at = reserve(lens, size, head, Atomics.load(ctrl, CTRL_TAIL), need);
      while (at < 0) {
        // Ring full: the main thread is behind. Wait for it to move the
        // tail (it notifies after every batch) rather than drop frames;
        // the device queue absorbs the rest, then the kernel drops.
        Atomics.add(ctrl, CTRL_FULL_WAITS, 1);
        Atomics.wait(ctrl, CTRL_TAIL, Atomics.load(ctrl, CTRL_TAIL), 50);
        if (Atomics.load(ctrl, CTRL_STOP) !== 0) return { type: "stopped" };
        at = reserve(lens, size, head, Atomics.load(ctrl, CTRL_TAIL), need);
      }
      const n = libc.read(fd, base + at + 4, ring.maxFrame) as number;
      if (n < 0) {
        const e = errno();
        if (e === EAGAIN || e === EINTR) break;
        Atomics.add(ctrl, CTRL_READ_ERRORS, 1);
        return { type: "failed", error: `read: ${errnoName(e)}` };
      }
      if (n === 0) {
        // A tap never returns 0; a datagram socket does for an empty
        // datagram, and at EOF with POLLHUP set.
        if ((rev & 0x10) /*POLLHUP*/ !== 0) return { type: "failed", error: "read: end of file" };
        break;
      }
      lens[at >> 2] = n;
      head = at + align4(4 + n);
      Atomics.store(ctrl, CTRL_HEAD, head);
      Atomics.add(ctrl, CTRL_FRAMES, 1);
      // Cheap without a waiter (~40 ns); wakeups coalesce when the main
      // thread is already busy.
      Atomics.notify(ctrl, CTRL_HEAD);
    }
    if ((rev & 0x18) /*POLLHUP|POLLERR*/ !== 0 && (rev & 1) === 0) {
      return { type: "failed", error: (rev & 0x08) !== 0 ? "poll: POLLERR" : "poll: POLLHUP" };
    }
  }
}
