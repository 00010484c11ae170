// The guest's IPv4 network: one record of every address the stack and
// the guest's configuration take from it, derived from the network's
// CIDR with slirp4netns's fixed offsets (the gateway, which is also the
// host, .2; the DNS forwarder .3; the guest .100, which is also where the
// DHCP pool starts). The IPv6 side is fixed (fd00::/64) and has no record.
// Addresses are the engine's uint32 numbers (wire/addr.ts).
import { ipV4Number, ipv4FromText, ipv4Text, type IP } from "./addr.ts";

/** The guest's IPv4 plan. */
export interface GuestNetV4 {
  /** The network address (host bits clear). */
  readonly network: number;
  /** Prefix length, 1..MAX_GUEST_PREFIX_V4. */
  readonly prefix: number;
  readonly netmask: number;
  /** The subnet's directed broadcast address. */
  readonly broadcast: number;
  /** The stack's own address: router, DHCP server, and the host's loopback. */
  readonly gateway: number;
  /** The DNS forwarder's address. */
  readonly dns: number;
  /** The guest's address (static configuration, the first DHCP lease, the API's default). */
  readonly guest: number;
}

const GATEWAY_OFFSET = 2;
const DNS_OFFSET = 3;
const GUEST_OFFSET = 100;
/** The longest prefix whose network still holds the guest address and the 16-address DHCP pool after it (.100-.115 of a /25). */
export const MAX_GUEST_PREFIX_V4 = 25;

/** The plan of the network `network`/`prefix`; null when the prefix is out of range or `network` has host bits set. */
export function guestNetV4(network: number, prefix: number): GuestNetV4 | null {
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > MAX_GUEST_PREFIX_V4) return null;
  const netmask = (0xffffffff << (32 - prefix)) >>> 0;
  if ((network & netmask) >>> 0 !== network >>> 0) return null;
  return {
    network: network >>> 0,
    prefix,
    netmask,
    broadcast: (network | ~netmask) >>> 0,
    gateway: (network + GATEWAY_OFFSET) >>> 0,
    dns: (network + DNS_OFFSET) >>> 0,
    guest: (network + GUEST_OFFSET) >>> 0,
  };
}

/** 10.0.2.0/24: gateway 10.0.2.2, DNS 10.0.2.3, guest 10.0.2.100. */
export const DEFAULT_GUEST_NET_V4: GuestNetV4 = guestNetV4(0x0a000200, 24)!;

/** "NETWORK/PREFIX", as guestNetV4FromText reads it back. */
export function guestNetV4Text(net: GuestNetV4): string {
  return `${ipv4Text(net.network)}/${net.prefix}`;
}

/** The plan of "NETWORK/PREFIX" (dotted quad, decimal prefix); null for anything guestNetV4 refuses. */
export function guestNetV4FromText(text: string): GuestNetV4 | null {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  const network = m === null ? null : ipv4FromText(m[1]!);
  return network === null ? null : guestNetV4(network, Number(m![2]));
}

/** Whether `ip` is in the guest's network (the guest's own, never a host's to reach or to pose as). */
export function inGuestNetV4(net: GuestNetV4, ip: IP): boolean {
  return ip.family === 4 && (ipV4Number(ip) & net.netmask) >>> 0 === net.network;
}
