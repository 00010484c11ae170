// A unix SOCK_DGRAM socketpair for `-fd` mode tests: one end is handed to
// the stack as an inherited fd (StackOptions.extraFds puts it at fd 3),
// the test keeps the other and exchanges Ethernet frames on it, one frame
// per datagram (docs/compatibility.md, Fd mode).
import { libc, errno, check, SysError } from "../../ffi/libc.ts";
import { track, untrack } from "./cleanup.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;

export class DgramPair {
  private closed = false;
  private readonly buf = new Uint8Array(70_000);

  private constructor(
    /** The end the test keeps. */
    readonly local: number,
    /** The end to pass to the stack. */
    public remote: number,
  ) {
    track(this);
  }

  static create(): DgramPair {
    const sv = new Int32Array(2);
    check("socketpair", libc.socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, new Uint8Array(sv.buffer)));
    return new DgramPair(sv[0]!, sv[1]!);
  }

  /** Closes the test's copy of the stack's end (call after spawning). */
  closeRemote(): void {
    if (this.remote >= 0) libc.close(this.remote);
    this.remote = -1;
  }

  send(frame: Uint8Array): void {
    const n = libc.sendto(this.local, frame, frame.length, 0, null, 0) as number;
    if (n < 0) throw new SysError("sendto", errno());
  }

  /** One datagram if one is queued now, else null. */
  tryRecv(): Uint8Array | null {
    const n = libc.recv(this.local, this.buf, this.buf.length, MSG_DONTWAIT) as number;
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN) return null;
      throw new SysError("recv", e);
    }
    return this.buf.slice(0, n);
  }

  /**
   * Collects datagrams until `done(all frames so far)` is true or the
   * timeout passes; returns everything received. Polls without blocking
   * the event loop (the stack's output pipes must keep being read), and
   * drains promptly because the kernel queues only a few datagrams.
   */
  async collect(done: (frames: Uint8Array[]) => boolean, timeoutMs: number, onFrame?: (f: Uint8Array) => void): Promise<Uint8Array[]> {
    const frames: Uint8Array[] = [];
    const end = Date.now() + timeoutMs;
    for (;;) {
      let got = false;
      for (let f = this.tryRecv(); f !== null; f = this.tryRecv()) {
        frames.push(f);
        onFrame?.(f);
        got = true;
      }
      if (got && done(frames)) return frames;
      if (Date.now() >= end) return frames;
      await Bun.sleep(1);
    }
  }

  async destroy(): Promise<void> {
    untrack(this);
    if (this.closed) return;
    this.closed = true;
    libc.close(this.local);
    this.closeRemote();
  }
}
