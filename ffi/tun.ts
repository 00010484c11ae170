// tun/tap attach and the network-namespace dance.
//
// setns() on the main JS thread moves only that thread (tid == pid); Bun's
// other threads stay in the host namespace. The tun fd's namespace is fixed
// when /dev/net/tun is opened, so open and TUNSETIFF both happen while
// switched, and we switch straight back so that every socket and DNS lookup
// afterwards lives in the host namespace.
import { libc, check, SysError } from "./libc.ts";
import { openPath, closeFd, O_RDONLY, O_RDWR } from "./sys.ts";
import { AF_INET, SOCK_CLOEXEC, SOCK_DGRAM } from "./net.ts";

const CLONE_NEWNET = 0x40000000;

const IFF_TUN = 0x0001;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;

const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const SIOCGIFMTU = 0x8921;

/** TUNSETOFFLOAD bits (linux/if_tun.h). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

export const VNET_HDR_LEN = 12;

const IFNAMSIZ = 16;

function ifreq(name: string): { bytes: Uint8Array; view: DataView } {
  const ab = new ArrayBuffer(40);
  const bytes = new Uint8Array(ab);
  const enc = new TextEncoder().encode(name);
  if (enc.length >= IFNAMSIZ) throw new SysError("ifreq", 22, name);
  bytes.set(enc);
  return { bytes, view: new DataView(ab) };
}

/** Which step of the attach failed: upstream prints a line per step. */
export type AttachStep = "netns" | "mtu" | "open";

export class AttachError extends Error {
  constructor(
    readonly step: AttachStep,
    readonly sys: SysError,
  ) {
    super(sys.message);
    this.name = "AttachError";
  }
}

export interface TunAttachment {
  fd: number;
  /** "tun": raw IP frames; "tap": Ethernet frames. */
  kind: "tun" | "tap";
  mtu: number;
  /** True when frames carry a 12-byte virtio_net_hdr in front. */
  vnetHdr: boolean;
  /** The TUN_F_* offloads the kernel accepted (0 without vnetHdr). */
  offloads: number;
}

export interface AttachOptions {
  /** Path of a netns handle (/proc/PID/ns/net); null: our own namespace. */
  netns: string | null;
  ifname: string;
  /** Offloads to ask for on a tap; 0 keeps plain frames (no vnet header). */
  offloads: number;
}

/** Runs fn with the calling thread inside the netns at `path`, then switches back. */
export function withNetns<R>(path: string, fn: () => R): R {
  const home = openPath("/proc/thread-self/ns/net", O_RDONLY);
  let target: number;
  try {
    target = openPath(path, O_RDONLY);
  } catch (e) {
    closeFd(home);
    throw e;
  }
  try {
    check("setns", libc.setns(target, CLONE_NEWNET), path);
  } catch (e) {
    closeFd(home);
    closeFd(target);
    throw e;
  }
  closeFd(target);
  try {
    return fn();
  } finally {
    // Failing to get back would leave host sockets in the guest: fatal.
    if (libc.setns(home, CLONE_NEWNET) !== 0) {
      process.stderr.write("[!] setns back to the host namespace failed\n");
      process.exit(253);
    }
    closeFd(home);
  }
}

/** SIOCGIFMTU on a throwaway socket of the current namespace. */
export function interfaceMtu(ifname: string): number {
  const s = check("socket", libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  try {
    const { bytes, view } = ifreq(ifname);
    check("ioctl", libc.ioctl(s, SIOCGIFMTU, bytes), "SIOCGIFMTU");
    return view.getInt32(16, true);
  } finally {
    closeFd(s);
  }
}

function setIff(fd: number, ifname: string, flags: number): void {
  const { bytes, view } = ifreq(ifname);
  view.setUint16(16, flags, true);
  check("ioctl", libc.ioctl(fd, TUNSETIFF, bytes), "TUNSETIFF");
}

/**
 * Attaches to an existing tun or tap device named opts.ifname, in the
 * namespace opts.netns (docs/compatibility.md, Attaching to a namespace):
 * read its MTU, then TUNSETIFF as tun, else as tap. A tap may get a vnet
 * header with the requested offloads.
 */
export function attachTun(opts: AttachOptions): TunAttachment {
  const work = (): TunAttachment => {
    let mtu: number;
    try {
      mtu = interfaceMtu(opts.ifname);
    } catch (e) {
      throw new AttachError("mtu", e as SysError);
    }
    try {
      return openDevice(opts.ifname, mtu, opts.offloads);
    } catch (e) {
      throw new AttachError("open", e as SysError);
    }
  };
  if (opts.netns === null) return work();
  let result: TunAttachment | undefined;
  try {
    withNetns(opts.netns, () => {
      result = work();
    });
  } catch (e) {
    if (e instanceof AttachError) throw e;
    throw new AttachError("netns", e as SysError);
  }
  return result!;
}

function openDevice(ifname: string, mtu: number, offloads: number): TunAttachment {
  const fd = openPath("/dev/net/tun", O_RDWR);
  try {
    try {
      setIff(fd, ifname, IFF_TUN | IFF_NO_PI);
      return { fd, kind: "tun", mtu, vnetHdr: false, offloads: 0 };
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== 22 /*EINVAL: it is a tap*/) throw e;
    }
    if (offloads !== 0) {
      const got = tryVnetHdr(fd, ifname, offloads);
      if (got !== null) return { fd, kind: "tap", mtu, vnetHdr: true, offloads: got };
    }
    setIff(fd, ifname, IFF_TAP | IFF_NO_PI);
    return { fd, kind: "tap", mtu, vnetHdr: false, offloads: 0 };
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

/**
 * Attaches with IFF_VNET_HDR and negotiates offloads, dropping the ones the
 * kernel refuses (USO needs Linux 6.2). Returns null when the device takes
 * no vnet header at all; the caller then attaches plainly.
 */
export function tryVnetHdr(fd: number, ifname: string, offloads: number): number | null {
  try {
    setIff(fd, ifname, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
  } catch {
    return null;
  }
  const sz = new Int32Array(new ArrayBuffer(4));
  sz[0] = VNET_HDR_LEN;
  check("ioctl", libc.ioctl(fd, TUNSETVNETHDRSZ, new Uint8Array(sz.buffer)), "TUNSETVNETHDRSZ");
  for (const want of [offloads, offloads & ~(TUN_F_USO4 | TUN_F_USO6), TUN_F_CSUM]) {
    if (libc.ioctl(fd, TUNSETOFFLOAD, want as never) === 0) return want;
  }
  // Header but no offloads: still valid framing, with nothing offloaded.
  libc.ioctl(fd, TUNSETOFFLOAD, 0 as never);
  return 0;
}

/** Opens a tun/tap device in the current namespace, creating it (run mode helper). */
export function createTap(ifname: string): number {
  const fd = openPath("/dev/net/tun", O_RDWR);
  try {
    setIff(fd, ifname, IFF_TAP | IFF_NO_PI);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  return fd;
}

