// Passing file descriptors between processes over a unix socket
// (SCM_RIGHTS, unix(7)), with pure bun:ffi.
//
// The namespace helper (src/ns/) opens the tap inside the guest's user and
// network namespaces and sends the fd back to the stack over an inherited
// SOCK_SEQPACKET socketpair. SEQPACKET keeps message boundaries, so one
// message is either a small JSON report or a report plus one fd, and a read
// of 0 bytes means the peer closed its end (it died or finished).
//
// Layout (LP64: x86-64 and aarch64 agree). Each message owns ONE
// ArrayBuffer holding every struct, so the pointers embedded in msghdr and
// iovec point into memory that the same object keeps alive (the bun:ffi
// pitfalls of ffi/libc.ts: moved and collected arrays); the addresses are
// taken with ptr() after every view exists, right before the call:
//
//   @0    struct msghdr   (56 B)  msg_iov @16, msg_iovlen @24,
//                                 msg_control @32, msg_controllen @40, msg_flags @48
//   @56   struct iovec    (16 B)  base, len -> the data area
//   @72   control area    (64 B)  one cmsghdr: len @0 (size_t), level @8, type @12, fds @16
//   @136  data
import { ptr } from "bun:ffi";
import { libc, errno, SysError, EINTR } from "./libc.ts";
import { closeFd } from "./sys.ts";
import { MSG_NOSIGNAL, SOCK_CLOEXEC, SOL_SOCKET } from "./net.ts";

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_TRUNC = 0x20;
const MSG_CTRUNC = 0x08;
const ETIMEDOUT = 110;
const EPROTO = 71;
const EMSGSIZE = 90;

const OFF_IOV = 56;
const OFF_CONTROL = 72;
const CONTROL_LEN = 64;
const OFF_DATA = OFF_CONTROL + CONTROL_LEN;
const CMSG_HDR = 16;

/** Largest message recvMessage accepts; the reports are far smaller. */
export const MAX_MESSAGE = 16384;

/** One message buffer: all structs and the data in one ArrayBuffer. */
class MsgBuffer {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(readonly dataCap: number) {
    const ab = new ArrayBuffer(OFF_DATA + dataCap);
    this.view = new DataView(ab);
    this.bytes = new Uint8Array(ab);
  }

  /** Fills msghdr and iovec for `dataLen` bytes and `controlLen` bytes of control. */
  prepare(dataLen: number, controlLen: number): void {
    // ptr() only after both views exist (pitfall 1); the buffer is also
    // larger than the size that can move.
    const base = ptr(this.bytes);
    const v = this.view;
    v.setBigUint64(0, 0n, true);
    v.setUint32(8, 0, true);
    v.setBigUint64(16, BigInt(base + OFF_IOV), true);
    v.setBigUint64(24, 1n, true);
    v.setBigUint64(32, controlLen > 0 ? BigInt(base + OFF_CONTROL) : 0n, true);
    v.setBigUint64(40, BigInt(controlLen), true);
    v.setInt32(48, 0, true);
    v.setBigUint64(OFF_IOV, BigInt(base + OFF_DATA), true);
    v.setBigUint64(OFF_IOV + 8, BigInt(dataLen), true);
  }
}

/** An AF_UNIX SOCK_SEQPACKET socketpair, both ends close-on-exec. */
export function seqpacketPair(): [number, number] {
  const sv = new Int32Array(new ArrayBuffer(8));
  const bytes = new Uint8Array(sv.buffer);
  if (libc.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, bytes) < 0) {
    throw new SysError("socketpair", errno(), "AF_UNIX SOCK_SEQPACKET");
  }
  return [sv[0]!, sv[1]!];
}

/**
 * Sends one message: `data` (at least one byte) and, when `fd` is given,
 * that descriptor as SCM_RIGHTS. Never raises SIGPIPE: a closed peer is a
 * SysError("sendmsg", EPIPE).
 */
export function sendMessage(sock: number, data: Uint8Array, fd: number | null = null): void {
  if (data.length === 0) throw new SysError("sendmsg", EMSGSIZE, "empty message");
  const m = new MsgBuffer(data.length);
  m.bytes.set(data, OFF_DATA);
  let controlLen = 0;
  if (fd !== null) {
    controlLen = 24; // CMSG_SPACE(sizeof(int))
    m.view.setBigUint64(OFF_CONTROL, 20n, true); // CMSG_LEN(sizeof(int))
    m.view.setInt32(OFF_CONTROL + 8, SOL_SOCKET, true);
    m.view.setInt32(OFF_CONTROL + 12, SCM_RIGHTS, true);
    m.view.setInt32(OFF_CONTROL + 16, fd, true);
  }
  m.prepare(data.length, controlLen);
  for (;;) {
    const n = libc.sendmsg(sock, m.bytes, MSG_NOSIGNAL) as number;
    if (n >= 0) break;
    const e = errno();
    if (e !== EINTR) throw new SysError("sendmsg", e, fd !== null ? "SCM_RIGHTS" : undefined);
  }
  void m.bytes[0]; // keep the buffer reachable until after the call
}

export interface ScmMessage {
  data: Uint8Array;
  /** The descriptor that came with the message (close-on-exec), or null. */
  fd: number | null;
}

/**
 * Waits up to `timeoutMs` (-1: forever) for the socket to become readable.
 * Returns false on timeout. Hang-up counts as readable (recvmsg then
 * reports the end).
 */
export function waitReadable(sock: number, timeoutMs: number): boolean {
  const pfd = new DataView(new ArrayBuffer(8));
  const bytes = new Uint8Array(pfd.buffer);
  pfd.setInt32(0, sock, true);
  pfd.setInt16(4, 1 /*POLLIN*/, true);
  const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
  for (;;) {
    pfd.setInt16(6, 0, true);
    const left = deadline === Infinity ? -1 : Math.max(0, deadline - Date.now());
    const n = libc.poll(bytes, 1, left);
    if (n > 0) return true;
    if (n === 0) return false; // timed out
    const e = errno();
    if (e !== EINTR) throw new SysError("poll", e);
  }
}

/**
 * Receives one message, waiting up to `timeoutMs` (-1: forever; 0: only
 * what is already queued). Returns null when the peer closed its end.
 * Throws SysError("recvmsg", ETIMEDOUT) when nothing came in time.
 * Extra descriptors beyond the first (a confused sender) are closed.
 */
export function recvMessage(sock: number, timeoutMs: number): ScmMessage | null {
  if (!waitReadable(sock, timeoutMs)) throw new SysError("recvmsg", ETIMEDOUT, "waiting for the helper");
  const m = new MsgBuffer(MAX_MESSAGE);
  m.prepare(MAX_MESSAGE, CONTROL_LEN);
  let n: number;
  for (;;) {
    n = libc.recvmsg(sock, m.bytes, MSG_CMSG_CLOEXEC) as number;
    if (n >= 0) break;
    const e = errno();
    if (e !== EINTR) throw new SysError("recvmsg", e);
  }
  const v = m.view;
  const flags = v.getInt32(48, true);
  const controlLen = Number(v.getBigUint64(40, true));
  const fds: number[] = [];
  let off = OFF_CONTROL;
  const end = OFF_CONTROL + Math.min(controlLen, CONTROL_LEN);
  while (off + CMSG_HDR <= end) {
    const len = Number(v.getBigUint64(off, true));
    if (len < CMSG_HDR || off + len > end) break;
    if (v.getInt32(off + 8, true) === SOL_SOCKET && v.getInt32(off + 12, true) === SCM_RIGHTS) {
      for (let p = off + CMSG_HDR; p + 4 <= off + len; p += 4) fds.push(v.getInt32(p, true));
    }
    off += (len + 7) & ~7;
  }
  const [fd = null, ...extra] = fds;
  for (const x of extra) closeFd(x);
  if ((flags & (MSG_TRUNC | MSG_CTRUNC)) !== 0) {
    if (fd !== null) closeFd(fd);
    throw new SysError("recvmsg", EMSGSIZE, (flags & MSG_TRUNC) !== 0 ? "message truncated" : "control data truncated");
  }
  if (n === 0 && fd === null) return null;
  return { data: m.bytes.slice(OFF_DATA, OFF_DATA + n), fd };
}

const ONE = new Uint8Array(new ArrayBuffer(1));
ONE[0] = 0x46; // "F"

/** Sends `fd` over `sock` with SCM_RIGHTS (one data byte, "F"). */
export function sendFd(sock: number, fd: number): void {
  sendMessage(sock, ONE, fd);
}

/**
 * Receives one descriptor sent with {@link sendFd}, waiting up to
 * `timeoutMs`. Throws SysError("recvmsg", ...) when the peer closed its end
 * (EPIPE), nothing came in time (ETIMEDOUT), or a message came without a
 * descriptor (EPROTO).
 */
export function recvFd(sock: number, timeoutMs: number): number {
  const msg = recvMessage(sock, timeoutMs);
  if (msg === null) throw new SysError("recvmsg", 32 /*EPIPE*/, "peer closed before sending a descriptor");
  if (msg.fd === null) throw new SysError("recvmsg", EPROTO, "message without SCM_RIGHTS");
  return msg.fd;
}
