// A frame device backed by a file descriptor: a tap/tun fd, or a unix
// datagram socket (-fd). Reading happens in the reader Worker into a shared
// ring; this side consumes the ring on the main thread and writes frames
// with FFI write(). See docs/architecture.md, "Packet path".
import { eventFd, eventFdSignal, closeFd, writeFd, EAGAIN } from "../../ffi/sys.ts";
import { VNET_HDR_LEN } from "../../ffi/tun.ts";
import { VirtioNetHdr } from "../wire/vnet.ts";
import {
  type DeviceCaps,
  type FrameReceiver,
  type FrameSink,
  RxMeta,
  type TxMeta,
} from "../stack/device.ts";
import { CTRL_HEAD, CTRL_STOP, CTRL_TAIL, WRAP, align4, createRing, type RingBuffers } from "./ring.ts";
import type { ReaderMessage, ReaderStart } from "./reader-worker.ts";
import type { Stats } from "../stack/stats.ts";

/** Frames handled per turn before yielding to the event loop, so host
 * sockets and timers are served during a flood. */
const FRAMES_PER_TURN = 512;

export interface RingDeviceOptions {
  fd: number;
  caps: DeviceCaps;
  /** The fd carries a 12-byte virtio_net_hdr before every frame. */
  vnetHdr: boolean;
  /** Ring size in bytes. */
  ringBytes?: number;
  stats: Stats;
  /** Called once if the reader stops on its own (device gone, read error). */
  onFailure: (error: string) => void;
}

/**
 * Where the reader Worker's module is. From source it sits next to this
 * file; in the compiled binary (build.ts embeds it as a second entry
 * point) embedded modules are addressed relative to the entry's folder.
 */
function readerWorkerUrl(): string {
  return import.meta.url.includes("/$bunfs/") ? "./link/reader-worker.ts" : new URL("./reader-worker.ts", import.meta.url).href;
}

export class RingDevice implements FrameSink {
  readonly caps: DeviceCaps;
  private readonly fd: number;
  private readonly vnetHdr: boolean;
  private readonly ring: RingBuffers;
  private readonly ctrl: Int32Array;
  private readonly data: Uint8Array;
  private readonly lens: Int32Array;
  private readonly stopFd: number;
  private readonly rxMeta = new RxMeta();
  private readonly vnet = new VirtioNetHdr();
  private readonly onFailure: (error: string) => void;
  private readonly stats: Stats;
  private worker: Worker | null = null;
  private receiver: FrameReceiver | null = null;
  private stopped = false;
  private stoppedPromise: Promise<void> | null = null;
  private tail = 0;

  constructor(opts: RingDeviceOptions) {
    this.fd = opts.fd;
    this.caps = opts.caps;
    this.vnetHdr = opts.vnetHdr;
    this.onFailure = opts.onFailure;
    this.stats = opts.stats;
    // Room for the largest frame the device can hand us in one read: a
    // GSO super-frame is up to 64 KiB whatever the MTU.
    const maxFrame = Math.max(opts.caps.mtu + 14, 65536) + (opts.vnetHdr ? VNET_HDR_LEN : 0) + 64;
    this.ring = createRing(opts.ringBytes ?? 4 << 20, maxFrame);
    this.ctrl = new Int32Array(this.ring.ctrl);
    this.data = new Uint8Array(this.ring.data);
    this.lens = new Int32Array(this.ring.data);
    this.stopFd = eventFd();
  }

  /** Starts the reader and delivers frames to `receiver` from now on. */
  start(receiver: FrameReceiver): void {
    this.receiver = receiver;
    const worker = new Worker(readerWorkerUrl());
    this.worker = worker;
    worker.onerror = (ev) => {
      if (!this.stopped) this.onFailure(`reader worker: ${ev.message}`);
    };
    this.stoppedPromise = new Promise<void>((resolve) => {
      worker.onmessage = (ev: MessageEvent<ReaderMessage>) => {
        resolve();
        if (ev.data.type === "failed" && !this.stopped) this.onFailure(ev.data.error);
      };
    });
    const start: ReaderStart = { fd: this.fd, stopFd: this.stopFd, ring: this.ring };
    worker.postMessage(start);
    this.pump();
  }

  // Consume every frame published so far (up to a turn's worth), then wait
  // for the head to move. Frames are handed out in place: the receiver
  // must copy what it keeps, because the tail is released right after.
  private readonly pump = (): void => {
    if (this.stopped) return;
    const receiver = this.receiver!;
    const ctrl = this.ctrl;
    let head = Atomics.load(ctrl, CTRL_HEAD);
    let tail = this.tail;
    let handled = 0;
    while (tail !== head && handled < FRAMES_PER_TURN) {
      const len = this.lens[tail >> 2]!;
      if (len === WRAP) {
        tail = 0;
        continue;
      }
      this.deliver(receiver, tail + 4, len);
      tail += align4(4 + len);
      handled++;
      Atomics.store(ctrl, CTRL_TAIL, tail);
      if (tail === head) head = Atomics.load(ctrl, CTRL_HEAD);
    }
    this.tail = tail;
    if (handled > 0) {
      Atomics.notify(ctrl, CTRL_TAIL);
      receiver.batchEnd();
    }
    if (this.stopped) return;
    if (tail !== Atomics.load(ctrl, CTRL_HEAD)) {
      setImmediate(this.pump);
      return;
    }
    const wait = Atomics.waitAsync(ctrl, CTRL_HEAD, tail);
    if (wait.async) wait.value.then(this.pump);
    else setImmediate(this.pump);
  };

  private deliver(receiver: FrameReceiver, off: number, len: number): void {
    const meta = this.rxMeta;
    const stats = this.stats;
    meta.clear();
    stats.rxFrames++;
    stats.rxBytes += len;
    if (this.vnetHdr) {
      if (len < VNET_HDR_LEN) {
        stats.drop("short-vnet-header");
        return;
      }
      const h = this.vnet;
      h.attach(this.data, off);
      // NEEDS_CSUM: a local guest kernel left the checksum for us (only
      // the pseudo-header sum is there); DATA_VALID: already verified.
      meta.checksumTrusted = (h.flags & 3) !== 0;
      meta.gsoType = h.gsoType;
      meta.gsoSize = h.gsoSize;
      off += VNET_HDR_LEN;
      len -= VNET_HDR_LEN;
    }
    receiver.receive(this.data, off, len, meta);
  }

  transmit(buf: Uint8Array, off: number, len: number, meta: TxMeta | null): void {
    let start = off;
    if (this.vnetHdr) {
      start = off - VNET_HDR_LEN;
      const h = this.vnet;
      h.attach(buf, start);
      h.clear();
      if (meta !== null && meta.csumStart !== 0) {
        h.flags = 1; // NEEDS_CSUM
        h.csumStart = meta.csumStart;
        h.csumOffset = meta.csumOffset;
      }
      if (meta !== null && meta.gsoType !== 0) {
        h.gsoType = meta.gsoType;
        h.gsoSize = meta.gsoSize;
        h.hdrLen = meta.hdrLen;
      }
    }
    const total = off + len - start;
    const n = writeFd(this.fd, buf.subarray(start, off + len), total);
    if (n === total) {
      this.stats.txFrames++;
      this.stats.txBytes += len;
    } else {
      this.stats.drop(n === -EAGAIN ? "tx-queue-full" : "tx-error");
    }
  }

  /** Stops the reader thread and closes the device. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    Atomics.store(this.ctrl, CTRL_STOP, 1);
    Atomics.notify(this.ctrl, CTRL_TAIL);
    eventFdSignal(this.stopFd);
    if (this.stoppedPromise) {
      await Promise.race([this.stoppedPromise, Bun.sleep(1000)]);
    }
    this.worker?.terminate();
    closeFd(this.stopFd);
    closeFd(this.fd);
  }
}
