// Replacing the process image from Bun (run mode: the helper becomes the
// user's command). execve() from the multi-threaded Bun process is fine: the
// kernel ends every other thread (execve(2)), which run mode relies on.
import { ptr } from "bun:ffi";
import { libc, errno, check, SysError } from "./libc.ts";

const SIGPIPE = 13;
const SIGXFSZ = 25;
const SIG_SETMASK = 2;

/** dup2(2): makes `to` a copy of `from` (without close-on-exec). */
export function dup2(from: number, to: number): void {
  check("dup2", libc.dup2(from, to), `${from} -> ${to}`);
}

/**
 * Undoes what the Bun runtime changed in the state that execve() passes
 * on: Bun ignores SIGPIPE and SIGXFSZ (an ignored signal stays ignored
 * across exec, and a shell pipeline like `yes | head` needs SIGPIPE), and
 * a blocked signal stays blocked. Signals the user had ignored before
 * starting us (nohup, `trap '' INT`) stay as they are.
 */
export function resetSignalsForExec(): void {
  // struct sigaction: handler @0 (8), sa_mask @8 (128), sa_flags @136, sa_restorer @144
  const act = new Uint8Array(new ArrayBuffer(152)); // zero: SIG_DFL, empty mask, no flags
  for (const sig of [SIGPIPE, SIGXFSZ]) libc.sigaction(sig, act, null);
  const empty = new Uint8Array(new ArrayBuffer(128));
  libc.pthread_sigmask(SIG_SETMASK, empty, null);
}

/**
 * execve(path, argv, envp). Returns only on failure, with the SysError
 * (ENOENT, EACCES, ENOEXEC, ...). All strings and both pointer arrays live
 * in one ArrayBuffer that stays referenced across the call.
 */
export function execve(path: string, argv: readonly string[], env: readonly string[]): SysError {
  const enc = new TextEncoder();
  const strings = [path, ...argv, ...env].map((s) => enc.encode(s + "\0"));
  const ptrBytes = 8 * (argv.length + 1 + env.length + 1);
  const total = ptrBytes + strings.reduce((n, s) => n + s.length, 0);
  const ab = new ArrayBuffer(Math.max(total, 4096)); // large: never moves (pitfall 1)
  const view = new DataView(ab);
  const bytes = new Uint8Array(ab);
  const base = ptr(bytes);
  let off = ptrBytes;
  const addrs: number[] = [];
  for (const s of strings) {
    bytes.set(s, off);
    addrs.push(base + off);
    off += s.length;
  }
  const [pathAddr, ...rest] = addrs;
  const argvAddrs = rest.slice(0, argv.length);
  const envAddrs = rest.slice(argv.length);
  let p = 0;
  for (const a of argvAddrs) view.setBigUint64((p++) * 8, BigInt(a), true);
  view.setBigUint64((p++) * 8, 0n, true);
  const envp = p * 8;
  for (const a of envAddrs) view.setBigUint64((p++) * 8, BigInt(a), true);
  view.setBigUint64(p * 8, 0n, true);
  libc.execve(pathAddr as never, base as never, (base + envp) as never);
  const err = new SysError("execve", errno(), path);
  void bytes[0]; // the buffer had to outlive the call
  return err;
}
