// Creating a tap in the current network namespace and configuring the
// guest side of it over rtnetlink (no `ip` needed): run mode's helper does
// both for tun0, and slirp4netns mode creates the tap in the target
// namespace (and configures it with --configure), as slirp4netns does.
import { closeFd, openPath, O_RDWR } from "../../ffi/sys.ts";
import { createTap, tryVnetHdr, type TunAttachment } from "../../ffi/tun.ts";
import { SysError } from "../../ffi/libc.ts";
import { interfaceIndex, setLinkUp, setLinkAddress, addAddress, addDefaultRoute, IFA_F_NODAD } from "../../ffi/netlink-config.ts";
import { ipFromV4, parseIP } from "../wire/addr.ts";
import type { GuestNetV4 } from "../wire/guest-net.ts";
import { RUN_DEFAULTS } from "./args.ts";

/** Creates the tap, with a vnet header and offloads negotiated as attachTun does. */
export function createTapDevice(ifname: string, offloads: number): { fd: number; vnetHdr: boolean; offloads: number } {
  if (offloads !== 0) {
    const fd = openPath("/dev/net/tun", O_RDWR);
    let got: number | null;
    try {
      got = tryVnetHdr(fd, ifname, offloads);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    if (got !== null) return { fd, vnetHdr: true, offloads: got };
    closeFd(fd);
  }
  return { fd: createTap(ifname), vnetHdr: false, offloads: 0 };
}

function bytesOf(addr: string): Uint8Array {
  return parseIP(addr)!.bytes;
}

/**
 * lo up; `ifname` with MAC address `mac` (when given; set while the link
 * is still down), up with its MTU, the guest address of `net` (10.0.2.100/24
 * by default) and a default route via its gateway (10.0.2.2); with `ipv6`
 * also fd00::100/64 (no DAD) and a default route via fd00::2 (run mode;
 * slirp4netns's --configure is IPv4 only, the guest takes its IPv6 address
 * from router advertisements).
 */
export function configureGuest(ifname: string, mtu: number, ipv6: boolean, net: GuestNetV4, mac: Uint8Array | null): void {
  const index = interfaceIndex(ifname);
  setLinkUp(interfaceIndex("lo"));
  if (mac !== null) setLinkAddress(index, mac);
  setLinkUp(index, mtu);
  addAddress(index, ipFromV4(net.guest).bytes, net.prefix);
  if (ipv6) addAddress(index, bytesOf(RUN_DEFAULTS.guestV6), RUN_DEFAULTS.guestV6Prefix, IFA_F_NODAD);
  addDefaultRoute(index, ipFromV4(net.gateway).bytes);
  if (ipv6) addDefaultRoute(index, bytesOf(RUN_DEFAULTS.gatewayV6));
}

/**
 * What slirp4netns mode asks of the target namespace: create the tap, and
 * with `configure` bring it up in the guest network `net`, with MAC
 * address `mac` (--macaddress, which needs --configure); `mtu` is the stack's.
 */
export interface TapCreation {
  mtu: number;
  configure: boolean;
  net: GuestNetV4;
  mac: Uint8Array | null;
}

/** A failed system call while creating ("open") or configuring ("setup") the tap. */
export class TapSetupError extends Error {
  constructor(
    readonly step: "open" | "setup",
    readonly sys: SysError,
  ) {
    super(sys.message);
    this.name = "TapSetupError";
  }
}

/** Creates (and with `configure`, configures: IPv4 only, as slirp4netns) the tap in the current namespace. */
export function createAndConfigure(ifname: string, offloads: number, c: TapCreation): TunAttachment {
  let step: "open" | "setup" = "open";
  let tap: { fd: number; vnetHdr: boolean; offloads: number } | null = null;
  try {
    tap = createTapDevice(ifname, offloads);
    step = "setup";
    if (c.configure) configureGuest(ifname, c.mtu, false, c.net, c.mac);
    return { fd: tap.fd, kind: "tap", mtu: c.mtu, vnetHdr: tap.vnetHdr, offloads: tap.offloads };
  } catch (e) {
    if (tap !== null) closeFd(tap.fd);
    if (e instanceof SysError) throw new TapSetupError(step, e);
    throw e;
  }
}
