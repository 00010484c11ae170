// Installing a seccomp filter (seccomp(2)) on every thread of the process.
// The caller sets no_new_privs first (ffi/caps.ts): without CAP_SYS_ADMIN
// the kernel refuses a filter otherwise (EACCES).
import { ptr } from "bun:ffi";
import { libc, errno, SysError } from "./libc.ts";

// linux/seccomp.h
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
/** struct sock_fprog: unsigned short len, padding, struct sock_filter *filter. */
const SOCK_FPROG_BYTES = 16;

/** A thread that TSYNC could not move to the new filter (seccomp(2): the call then fails returning its TID). */
class SeccompSyncError extends Error {
  constructor(readonly tid: number) {
    super(`seccomp SECCOMP_SET_MODE_FILTER TSYNC: thread ${tid} could not be synchronised`);
    this.name = "SeccompSyncError";
  }
}

/**
 * seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog): the
 * classic BPF program `filter` (struct sock_filter[]) on every thread of
 * the process at once; Bun runs several (JavaScriptCore's, the thread
 * pool's), and one left unfiltered would escape it. `sysSeccomp` is the
 * syscall's number on this architecture. Throws SysError on failure and
 * SeccompSyncError when a thread could not be synchronised.
 */
export function seccompSetModeFilter(sysSeccomp: number, filter: Uint8Array): void {
  // sock_fprog and the program in one buffer of at least 4 KiB: such a
  // buffer never moves, so the address stored in sock_fprog stays valid
  // (ffi/libc.ts, pitfall 1).
  const ab = new ArrayBuffer(Math.max(4096, SOCK_FPROG_BYTES + filter.length));
  const view = new DataView(ab);
  const bytes = new Uint8Array(ab);
  bytes.set(filter, SOCK_FPROG_BYTES);
  const base = ptr(bytes);
  view.setUint16(0, filter.length / 8, true);
  view.setBigUint64(8, BigInt(base + SOCK_FPROG_BYTES), true);
  const ret = Number(libc.syscall(sysSeccomp, SECCOMP_SET_MODE_FILTER as never, SECCOMP_FILTER_FLAG_TSYNC as never, base as never));
  void bytes[0]; // the buffer had to outlive the call
  if (ret < 0) throw new SysError("seccomp", errno(), "SECCOMP_SET_MODE_FILTER");
  if (ret > 0) throw new SeccompSyncError(ret);
}
