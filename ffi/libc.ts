// libc through bun:ffi. The only module that calls dlopen; everything else in
// ffi/ builds on the symbols and the error helpers here, and nothing outside
// ffi/ imports bun:ffi.
//
// bun:ffi pitfalls handled here once (measured on Bun 1.4.5):
//  - A small typed array (under 4 KiB) gets a new address once its .buffer
//    is touched after ptr(), and the GC frees a typed array whose only use
//    left is its numeric address. So pointer arguments are passed as typed
//    arrays, or as a number taken with ptr() in the same expression as the
//    call (the per-packet calls on a span of a buffer: ffi/net.ts, readFd),
//    never as a number kept from earlier.
//    (FdWriter in ffi/sys.ts keeps the address of a large buffer together
//    with the buffer itself.) The few structs that embed pointers (msghdr,
//    iovec) live in ffi/struct.ts and are kept alive by their owner.
//  - errno is thread-local. Each thread (main or Worker) loads this module
//    once and caches its own __errno_location().
import { dlopen, FFIType as T, read, CString, type Pointer } from "bun:ffi";

const lib = dlopen("libc.so.6", {
  open: { args: [T.ptr, T.i32, T.i32], returns: T.i32 },
  close: { args: [T.i32], returns: T.i32 },
  read: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
  write: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
  writev: { args: [T.i32, T.ptr, T.i32], returns: T.i64_fast },
  // ioctl is variadic in C; on x86-64 a fixed third argument is passed the
  // same way. By-value arguments (TUNSETOFFLOAD) go in as plain numbers.
  ioctl: { args: [T.i32, T.u64, T.ptr], returns: T.i32 },
  // fcntl's third argument is an int or a pointer (F_SETOWN_EX): declared
  // as a pointer, plain numbers pass through unchanged.
  fcntl: { args: [T.i32, T.i32, T.ptr], returns: T.i32 },
  poll: { args: [T.ptr, T.u64, T.i32], returns: T.i32 },
  eventfd: { args: [T.u32, T.i32], returns: T.i32 },
  setns: { args: [T.i32, T.i32], returns: T.i32 },
  socket: { args: [T.i32, T.i32, T.i32], returns: T.i32 },
  socketpair: { args: [T.i32, T.i32, T.i32, T.ptr], returns: T.i32 },
  bind: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
  connect: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
  listen: { args: [T.i32, T.i32], returns: T.i32 },
  accept4: { args: [T.i32, T.ptr, T.ptr, T.i32], returns: T.i32 },
  getsockname: { args: [T.i32, T.ptr, T.ptr], returns: T.i32 },
  shutdown: { args: [T.i32, T.i32], returns: T.i32 },
  send: { args: [T.i32, T.ptr, T.u64, T.i32], returns: T.i64_fast },
  recvfrom: { args: [T.i32, T.ptr, T.u64, T.i32, T.ptr, T.ptr], returns: T.i64_fast },
  epoll_create1: { args: [T.i32], returns: T.i32 },
  epoll_ctl: { args: [T.i32, T.i32, T.i32, T.ptr], returns: T.i32 },
  epoll_wait: { args: [T.i32, T.ptr, T.i32, T.i32], returns: T.i32 },
  sigtimedwait: { args: [T.ptr, T.ptr, T.ptr], returns: T.i32 },
  sendto: { args: [T.i32, T.ptr, T.u64, T.i32, T.ptr, T.u32], returns: T.i64_fast },
  recv: { args: [T.i32, T.ptr, T.u64, T.i32], returns: T.i64_fast },
  sendmsg: { args: [T.i32, T.ptr, T.i32], returns: T.i64_fast },
  recvmsg: { args: [T.i32, T.ptr, T.i32], returns: T.i64_fast },
  setsockopt: { args: [T.i32, T.i32, T.i32, T.ptr, T.u32], returns: T.i32 },
  getsockopt: { args: [T.i32, T.i32, T.i32, T.ptr, T.ptr], returns: T.i32 },
  prctl: { args: [T.i32, T.u64, T.u64, T.u64, T.u64], returns: T.i32 },
  getrlimit: { args: [T.i32, T.ptr], returns: T.i32 },
  setrlimit: { args: [T.i32, T.ptr], returns: T.i32 },
  getpid: { args: [], returns: T.i32 },
  getppid: { args: [], returns: T.i32 },
  getuid: { args: [], returns: T.u32 },
  kill: { args: [T.i32, T.i32], returns: T.i32 },
  execve: { args: [T.ptr, T.ptr, T.ptr], returns: T.i32 },
  strerror: { args: [T.i32], returns: T.ptr },
  // Namespace work (src/ns/): mounts, fd and signal set-up before execve.
  mount: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.ptr], returns: T.i32 },
  dup2: { args: [T.i32, T.i32], returns: T.i32 },
  sigaction: { args: [T.i32, T.ptr, T.ptr], returns: T.i32 },
  pthread_sigmask: { args: [T.i32, T.ptr, T.ptr], returns: T.i32 },
  if_nametoindex: { args: [T.ptr], returns: T.u32 },
  geteuid: { args: [], returns: T.u32 },
  // slirp4netns's --outbound-addr=INTERFACE (ffi/ifaddrs.ts).
  getifaddrs: { args: [T.ptr], returns: T.i32 },
  freeifaddrs: { args: [T.ptr], returns: T.void },
  // pivot_root and seccomp have no glibc wrapper: syscall(SYS_pivot_root,
  // new, old, NULL), syscall(SYS_seccomp, op, flags, args). syscall(2) is
  // variadic; on x86-64 and arm64 fixed integer and pointer arguments are
  // passed the same way (plain numbers pass through a pointer argument).
  syscall: { args: [T.i64, T.ptr, T.ptr, T.ptr], returns: T.i64 },
  // The sandbox's mount namespace and capabilities (src/sandbox/sandbox.ts).
  umount2: { args: [T.ptr, T.i32], returns: T.i32 },
  chdir: { args: [T.ptr], returns: T.i32 },
  mkdir: { args: [T.ptr, T.u32], returns: T.i32 },
  rmdir: { args: [T.ptr], returns: T.i32 },
  capset: { args: [T.ptr, T.ptr], returns: T.i32 },
  __errno_location: { args: [], returns: T.ptr },
});

/** The raw symbols. Callers check results with {@link check}. */
export const libc = lib.symbols;

const errnoLocation = libc.__errno_location() as Pointer;

/** errno of the calling thread, valid right after a failed call. */
export function errno(): number {
  return read.i32(errnoLocation, 0);
}

// Linux x86-64 errno numbers we name in messages. Anything else prints as
// "errno N" plus libc's description.
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 9: "EBADF",
  11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST",
  19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE",
  25: "ENOTTY", 28: "ENOSPC", 32: "EPIPE", 38: "ENOSYS", 71: "EPROTO", 77: "EBADFD",
  88: "ENOTSOCK", 90: "EMSGSIZE", 93: "EPROTONOSUPPORT", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT",
  98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH", 104: "ECONNRESET",
  105: "ENOBUFS", 107: "ENOTCONN", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH",
};

export const EAGAIN = 11;
export const EINTR = 4;
export const ENOENT = 2;
export const ETIMEDOUT = 110;
export const ECONNREFUSED = 111;
export const EINPROGRESS = 115;

export function errnoName(n: number): string {
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}

/** libc's description, lower-cased the way Go prints syscall errors. */
export function errnoText(n: number): string {
  const p = libc.strerror(n);
  const s = p ? new CString(p as Pointer).toString() : `errno ${n}`;
  return s.length > 0 ? s[0]!.toLowerCase() + s.slice(1) : s;
}

/**
 * A failed libc call. `message` is "call: ENAME" (e.g. "setns: EPERM");
 * `text` is the Go-style description ("operation not permitted") that
 * upstream's log lines quote.
 */
export class SysError extends Error {
  readonly call: string;
  readonly errno: number;
  readonly code: string;
  readonly text: string;
  constructor(call: string, err: number, detail?: string) {
    const code = errnoName(err);
    super(`${call}${detail ? ` ${detail}` : ""}: ${code}`);
    this.name = "SysError";
    this.call = call;
    this.errno = err;
    this.code = code;
    this.text = errnoText(err);
  }
}

/** Throws a SysError naming `call` when a libc call returned a negative value. */
export function check(call: string, ret: number, detail?: string): number {
  if (ret < 0) throw new SysError(call, errno(), detail);
  return ret;
}

/** A NUL-terminated copy of `s` for `const char *` arguments. */
export function cstr(s: string): Uint8Array {
  const bytes = Buffer.from(s + "\0", "utf8");
  return new Uint8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}
