// What the host's network said about a guest datagram we sent for it, in
// the engine's words (GuestError), so the guest hears it as ICMP or ICMPv6
// whatever the family of the host socket (a guest's IPv4-mapped IPv6
// destination goes out over IPv4).
import { SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, type QueuedError } from "../../../ffi/udp-errors.ts";
import { GuestError } from "../../stack/icmp.ts";

/** sock_extended_err.ee_origin of an error the local kernel raised (ip(7)). */
const SO_EE_ORIGIN_LOCAL = 1;
const EMSGSIZE = 90;
const EPERM = 1;
const EACCES = 13;
const ENETUNREACH = 101;
const EHOSTUNREACH = 113;

/**
 * The GuestError for an ICMP error on a host socket's error queue, or -1
 * for one the guest is not told about (time exceeded, parameter problems,
 * source quench, ...): those are not about the destination, and a guest
 * sees them from its own routers.
 */
export function guestErrorOf(e: QueuedError): GuestError | -1 {
  if (e.origin === SO_EE_ORIGIN_ICMP) {
    if (e.type !== 3) return -1;
    switch (e.code) {
      case 0:
      case 6: // destination network unknown
        return GuestError.NetUnreachable;
      case 1:
      case 7: // destination host unknown
        return GuestError.HostUnreachable;
      case 3:
        return GuestError.PortUnreachable;
      case 4:
        return GuestError.TooBig;
      case 9:
      case 10:
      case 13:
        return GuestError.Prohibited;
    }
    return -1;
  }
  if (e.origin === SO_EE_ORIGIN_ICMP6) {
    if (e.type === 2) return GuestError.TooBig;
    if (e.type !== 1) return -1;
    switch (e.code) {
      case 0:
        return GuestError.NetUnreachable;
      case 1:
      case 5: // source address failed ingress/egress policy
      case 6: // reject route to destination
        return GuestError.Prohibited;
      case 3:
        return GuestError.HostUnreachable;
      case 4:
        return GuestError.PortUnreachable;
    }
    return -1;
  }
  // The host's own path MTU was too small (IP_PMTUDISC_DO datagrams).
  if (e.origin === SO_EE_ORIGIN_LOCAL && e.errno === EMSGSIZE) return GuestError.TooBig;
  return -1;
}

/**
 * For TooBig: the largest payload (after the IP header and the 8-byte UDP
 * or ICMP header) that fits the MTU the error reported, on a host socket
 * of `family`.
 */
export function payloadMtuOf(e: QueuedError, family: 4 | 6): number {
  return Math.max(0, e.info - (family === 4 ? 20 : 40) - 8);
}

/** The GuestError for a send() that failed with `errno` (positive), or -1. */
export function guestErrorOfErrno(errno: number): GuestError | -1 {
  switch (errno) {
    case ENETUNREACH:
      return GuestError.NetUnreachable;
    case EHOSTUNREACH:
      return GuestError.HostUnreachable;
    case EACCES:
    case EPERM:
      return GuestError.Prohibited;
  }
  return -1;
}
