// epoll(7) through libc. Each registration carries two 32-bit words back
// in the event's data: the fd and a token the caller picks (src/io/reactor
// uses it to tell a reused fd number from the one that was registered).
//
// struct epoll_event is packed on x86-64 (12 bytes: u32 events, u64 data)
// and naturally aligned elsewhere (16 bytes: events, 4 bytes of padding,
// data). Both layouts keep every field 4-byte aligned, so one Uint32Array
// reads them.
import { libc, errno, check } from "./libc.ts";

export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 0x80000000;

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;

const PACKED = process.arch === "x64";
/** Size of struct epoll_event in 32-bit words, and where its fields are. */
const WORDS = PACKED ? 3 : 4;
const DATA_WORD = PACKED ? 1 : 2;

export class Epoll {
  readonly fd: number;
  /** Events returned by the last wait(). */
  private readonly out: Uint32Array;
  private readonly outBytes: Uint8Array;
  private readonly ctlWords = new Uint32Array(new ArrayBuffer(16));
  private readonly ctlBytes = new Uint8Array(this.ctlWords.buffer);

  constructor(readonly maxEvents: number) {
    this.fd = check("epoll_create1", libc.epoll_create1(EPOLL_CLOEXEC));
    const ab = new ArrayBuffer(maxEvents * WORDS * 4);
    this.out = new Uint32Array(ab);
    this.outBytes = new Uint8Array(ab);
  }

  /** Registers fd for `events`; 0 or -errno. */
  add(fd: number, events: number, token: number): number {
    return this.ctl(EPOLL_CTL_ADD, fd, events, token);
  }

  private ctl(op: number, fd: number, events: number, token: number): number {
    const w = this.ctlWords;
    w[0] = events >>> 0;
    w[DATA_WORD] = fd;
    w[DATA_WORD + 1] = token;
    return libc.epoll_ctl(this.fd, op, fd, this.ctlBytes) < 0 ? -errno() : 0;
  }

  /** Waits up to timeoutMs (0: just looks); returns how many events are ready, or -errno. */
  wait(timeoutMs: number): number {
    const n = libc.epoll_wait(this.fd, this.outBytes, this.maxEvents, timeoutMs);
    return n < 0 ? -errno() : n;
  }

  eventsAt(i: number): number {
    return this.out[i * WORDS]!;
  }

  fdAt(i: number): number {
    return this.out[i * WORDS + DATA_WORD]!;
  }

  tokenAt(i: number): number {
    return this.out[i * WORDS + DATA_WORD + 1]!;
  }

  close(): void {
    libc.close(this.fd);
  }
}
