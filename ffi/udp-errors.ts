// ICMP errors on an unconnected UDP socket or an ICMP echo socket (ip(7)
// IP_RECVERR, ipv6(7) IPV6_RECVERR). Without the option the kernel drops
// every ICMP error for a socket that is not connected; with it, each error
// is queued on the socket's error queue with the destination of the
// datagram that caused it, and EPOLLERR is raised.
//
// Layout of the one receive buffer (LP64; x86-64 and aarch64 agree):
//
//   @0    struct msghdr  (56 B)  msg_name @0, msg_namelen @8, msg_iov @16,
//                                msg_iovlen @24, msg_control @32,
//                                msg_controllen @40, msg_flags @48
//   @56   struct iovec   (16 B)  base, len -> the data area
//   @72   control area   (64 B)  one cmsghdr: len @0, level @8, type @12,
//                                struct sock_extended_err @16: ee_errno (u32),
//                                ee_origin, ee_type, ee_code (u8),
//                                ee_info (u32 @8)
//   @136  data: what the error quoted after the IP header (16 bytes at
//         most): a UDP datagram's payload, an echo socket's ICMP header
import { ptr } from "bun:ffi";
import { libc, errno } from "./libc.ts";
import type { SockAddr } from "./net.ts";

const IPPROTO_IP = 0;
const IP_RECVERR = 11;
const IPPROTO_IPV6 = 41;
const IPV6_RECVERR = 25;
const MSG_ERRQUEUE = 0x2000;

/** sock_extended_err.ee_origin of an ICMP (IPv4) and an ICMPv6 error. */
export const SO_EE_ORIGIN_ICMP = 2;
export const SO_EE_ORIGIN_ICMP6 = 3;

const OFF_IOV = 56;
const OFF_CONTROL = 72;
const CONTROL_LEN = 64;
const OFF_DATA = OFF_CONTROL + CONTROL_LEN;
const DATA_LEN = 16;
const CMSG_HDR = 16;

const one = new Int32Array(new ArrayBuffer(8));
one[0] = 1;
const oneBytes = new Uint8Array(one.buffer);

/** Asks for ICMP errors on the error queue (socket of family 4 or 6): 0 or -errno. */
export function enableRecvErr(fd: number, family: 4 | 6): number {
  const r = family === 4 ? libc.setsockopt(fd, IPPROTO_IP, IP_RECVERR, oneBytes, 4) : libc.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, oneBytes, 4);
  return r < 0 ? -errno() : 0;
}

/** One queued error, as readErrorQueue() fills it. */
export class QueuedError {
  errno = 0;
  origin = 0;
  type = 0;
  code = 0;
  /** sock_extended_err.ee_info: the next-hop MTU of "fragmentation needed" and "packet too big". */
  info = 0;
  /** The start of the quoted datagram (see the layout above), dataLen bytes of it. */
  readonly data = new Uint8Array(DATA_LEN);
  dataLen = 0;
}

const msg = new Uint8Array(new ArrayBuffer(OFF_DATA + DATA_LEN));
const view = new DataView(msg.buffer);

/**
 * Takes one error off the socket's error queue: the destination of the
 * datagram that caused it into `to`, the error into `out`. 0, or -errno
 * (-EAGAIN: the queue is empty).
 */
export function readErrorQueue(fd: number, to: SockAddr, out: QueuedError): number {
  const base = ptr(msg);
  view.setBigUint64(0, BigInt(ptr(to.bytes)), true);
  view.setUint32(8, to.bytes.length, true);
  view.setBigUint64(16, BigInt(base + OFF_IOV), true);
  view.setBigUint64(24, 1n, true);
  view.setBigUint64(32, BigInt(base + OFF_CONTROL), true);
  view.setBigUint64(40, BigInt(CONTROL_LEN), true);
  view.setInt32(48, 0, true);
  view.setBigUint64(OFF_IOV, BigInt(base + OFF_DATA), true);
  view.setBigUint64(OFF_IOV + 8, BigInt(DATA_LEN), true);
  const n = libc.recvmsg(fd, msg, MSG_ERRQUEUE) as number;
  void to.bytes[0]; // keep the address buffer reachable until after the call
  if (n < 0) return -errno();
  to.len = view.getUint32(8, true);
  out.errno = 0;
  out.origin = 0;
  const controlLen = Number(view.getBigUint64(40, true));
  if (controlLen >= CMSG_HDR + 8) {
    const level = view.getInt32(OFF_CONTROL + 8, true);
    const type = view.getInt32(OFF_CONTROL + 12, true);
    if ((level === IPPROTO_IP && type === IP_RECVERR) || (level === IPPROTO_IPV6 && type === IPV6_RECVERR)) {
      out.errno = view.getUint32(OFF_CONTROL + CMSG_HDR, true);
      out.origin = msg[OFF_CONTROL + CMSG_HDR + 4]!;
      out.type = msg[OFF_CONTROL + CMSG_HDR + 5]!;
      out.code = msg[OFF_CONTROL + CMSG_HDR + 6]!;
      out.info = view.getUint32(OFF_CONTROL + CMSG_HDR + 8, true);
    }
  }
  out.dataLen = Math.min(n, DATA_LEN);
  out.data.set(msg.subarray(OFF_DATA, OFF_DATA + out.dataLen));
  return 0;
}
