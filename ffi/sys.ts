// Small process- and fd-level wrappers: each one libc call, checked.
import { ptr } from "bun:ffi";
import { libc, check, cstr, errno, SysError, EAGAIN, EINTR } from "./libc.ts";

export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export function openPath(path: string, flags: number): number {
  return check("open", libc.open(cstr(path), flags | O_CLOEXEC, 0), path);
}

export function closeFd(fd: number): void {
  libc.close(fd);
}

const F_GETFL = 3;
const F_SETFL = 4;
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

export function setNonBlocking(fd: number): void {
  const fl = check("fcntl", libc.fcntl(fd, F_GETFL, 0));
  check("fcntl", libc.fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

/**
 * Sets fd's close-on-exec flag (so helpers we spawn do not keep an
 * inherited fd), or clears it (so an execve of our own keeps it).
 */
export function setCloseOnExec(fd: number, closeOnExec = true): void {
  const fl = check("fcntl", libc.fcntl(fd, F_GETFD, 0));
  check("fcntl", libc.fcntl(fd, F_SETFD, closeOnExec ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC));
}

/** True when fd is an open descriptor of this process. */
export function fdIsOpen(fd: number): boolean {
  return libc.fcntl(fd, F_GETFD, 0) >= 0;
}

const F_SETOWN_EX = 15;
const F_OWNER_TID = 0;
const O_ASYNC = 0o20000;

// struct f_owner_ex { int type; pid_t pid; }, reused.
const owner = new Int32Array(new ArrayBuffer(8));
const ownerBytes = new Uint8Array(owner.buffer);

/**
 * Signal-driven I/O (fcntl(2) O_ASYNC) on a non-blocking fd: the kernel
 * sends SIGIO to thread `tid` whenever fd becomes readable or writable.
 * The fd's status flags become
 * exactly O_NONBLOCK (| O_ASYNC): ours never carry O_APPEND, O_DIRECT or
 * O_NOATIME, and skipping F_GETFL saves a syscall per host socket. The
 * caller must listen for SIGIO first (its default action ends the
 * process). Returns 0 or -errno.
 */
export function signalDrivenIo(fd: number, tid: number): number {
  owner[0] = F_OWNER_TID;
  owner[1] = tid;
  if (libc.fcntl(fd, F_SETOWN_EX, ownerBytes) < 0) return -errno();
  return libc.fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC) < 0 ? -errno() : 0;
}

const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;
const SIGIO = 29;
// A sigset_t with only SIGIO (glibc's is 128 bytes; the kernel reads 8).
const sigioSet = new BigUint64Array(new ArrayBuffer(128));
sigioSet[0] = 1n << BigInt(SIGIO - 1);
const sigioSetBytes = new Uint8Array(sigioSet.buffer);

/**
 * Holds back (true) or lets through (false) SIGIO for the calling thread.
 * While held, any number of SIGIOs become one pending signal, delivered
 * when it is let through.
 */
export function holdSigio(hold: boolean): void {
  libc.pthread_sigmask(hold ? SIG_BLOCK : SIG_UNBLOCK, sigioSetBytes, null);
}

const zeroTimeout = new BigInt64Array(new ArrayBuffer(16));
const zeroTimeoutBytes = new Uint8Array(zeroTimeout.buffer);

/**
 * Takes a pending (held back) SIGIO without delivering it: true if there
 * was one. For a caller that is about to look at everything anyway.
 */
export function takePendingSigio(): boolean {
  return libc.sigtimedwait(sigioSetBytes, null, zeroTimeoutBytes) > 0;
}

const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

export function eventFd(): number {
  return check("eventfd", libc.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

const one = new BigUint64Array(new ArrayBuffer(8));
one[0] = 1n;
const one8 = new Uint8Array(one.buffer);

/** Adds 1 to an eventfd counter, waking whoever polls it. */
export function eventFdSignal(fd: number): void {
  libc.write(fd, one8, 8);
}

/**
 * write(2) of a whole buffer. Returns bytes written, or -errno. EAGAIN and
 * friends are for the caller to count; they are not exceptional on a device.
 */
export function writeFd(fd: number, buf: Uint8Array, len: number): number {
  const n = libc.write(fd, buf, len) as number;
  return n < 0 ? -errno() : n;
}

/**
 * write(2) of buf[off, off+len) without creating a subarray per call (a
 * measurable cost at a few hundred thousand frames a second). The address
 * of a large, long-lived buffer is taken once and kept with a reference to
 * the buffer, so it can be neither moved nor collected while cached:
 * typed arrays of 4 KiB and more live outside the moving GC heap
 * (ffi/libc.ts, first pitfall); smaller ones take the subarray path.
 */
export class FdWriter {
  private buf: Uint8Array | null = null;
  private base = 0;

  constructor(private readonly fd: number) {}

  write(buf: Uint8Array, off: number, len: number): number {
    let n: number;
    if (buf.byteLength >= 4096) {
      if (buf !== this.buf) {
        this.buf = buf;
        this.base = ptr(buf);
      }
      n = libc.write(this.fd, this.base + off, len) as number;
    } else {
      n = libc.write(this.fd, buf.subarray(off, off + len), len) as number;
    }
    return n < 0 ? -errno() : n;
  }
}

/**
 * read(2) into buf[off, off+len): bytes read (0 at EOF), or -errno (EAGAIN
 * when empty). A span's address is taken at the call (no subarray per read).
 */
export function readFd(fd: number, buf: Uint8Array, off: number, len: number): number {
  const n = libc.read(fd, off === 0 ? buf : ptr(buf, off), len) as number;
  return n < 0 ? -errno() : n;
}

export { EAGAIN, EINTR };

const POLLIN = 1;

/**
 * poll(2) on up to a few fds for readability. `pfd` is a caller-owned
 * buffer of 8 bytes per fd, kept alive by the caller across calls (the GC
 * must not free it while only the kernel looks at it). Returns the revents
 * of each fd in `out`.
 */
export class PollSet {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  readonly count: number;
  constructor(fds: number[]) {
    this.count = fds.length;
    const ab = new ArrayBuffer(8 * fds.length);
    this.view = new DataView(ab);
    this.bytes = new Uint8Array(ab);
    fds.forEach((fd, i) => {
      this.view.setInt32(i * 8, fd, true);
      this.view.setInt16(i * 8 + 4, POLLIN, true);
    });
  }
  /** Blocks up to timeoutMs (-1: forever). Returns the number of ready fds. */
  wait(timeoutMs: number): number {
    for (let i = 0; i < this.count; i++) this.view.setInt16(i * 8 + 6, 0, true);
    const n = libc.poll(this.bytes, this.count, timeoutMs);
    if (n < 0) {
      const e = errno();
      if (e === EINTR) return 0;
      throw new SysError("poll", e);
    }
    return n;
  }
  revents(i: number): number {
    return this.view.getInt16(i * 8 + 6, true);
  }
}

const RLIMIT_NOFILE = 7;

/**
 * Raises RLIMIT_NOFILE as upstream does (docs/compatibility.md, startup
 * step 2): try soft = hard = 2^20, halving until the kernel accepts.
 * Failures are silent.
 */
export function raiseNoFileLimit(): number {
  const ab = new ArrayBuffer(16);
  const v = new BigUint64Array(ab);
  const bytes = new Uint8Array(ab);
  for (let n = 1048576; n >= 1; n = Math.floor(n / 2)) {
    v[0] = BigInt(n);
    v[1] = BigInt(n);
    if (libc.setrlimit(RLIMIT_NOFILE, bytes) === 0) return n;
  }
  return 0;
}

const PR_SET_PDEATHSIG = 1;

export function setParentDeathSignal(sig: number): void {
  check("prctl", libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0));
}

export const SIGTERM = 15;
export const SIGWINCH = 28;

export function getppid(): number {
  return libc.getppid();
}

export function killPid(pid: number, sig: number): boolean {
  return libc.kill(pid, sig) === 0;
}

export function getuid(): number {
  return libc.getuid();
}
