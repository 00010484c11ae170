// Interface configuration over rtnetlink (linux/rtnetlink.h, RFC 3549):
// link up and MTU, the link's MAC address, addresses, default routes. The run-mode helper uses it
// to configure its tap without depending on the `ip` command. Everything
// acts on the calling thread's network namespace.
import { libc, cstr, errno, SysError, EINTR } from "./libc.ts";
import { AF_INET, AF_INET6 } from "./net.ts";
import {
  NLMSG_ERROR,
  NLM_F_REQUEST,
  RTM_NEWROUTE,
  RT_TABLE_MAIN,
  openRouteSocket,
} from "./netlink.ts";
import { closeFd } from "./sys.ts";

const AF_UNSPEC = 0;

const RTM_NEWLINK = 16;
const RTM_NEWADDR = 20;
const NLM_F_ACK = 0x04;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;

const IFF_UP = 0x1;
const IFLA_ADDRESS = 1;
const IFLA_MTU = 4;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;

/** IFA_F_NODAD: skip IPv6 duplicate address detection (the address is usable at once). */
export const IFA_F_NODAD = 0x02;

/** One rtnetlink request under construction: header, family struct, attributes. */
class Request {
  private readonly parts: Uint8Array[] = [];
  private len = 16;
  constructor(
    readonly type: number,
    readonly flags: number,
    fixed: Uint8Array,
  ) {
    this.push(fixed);
  }
  private push(b: Uint8Array): void {
    const padded = new Uint8Array((b.length + 3) & ~3);
    padded.set(b);
    this.parts.push(padded);
    this.len += padded.length;
  }
  attr(type: number, data: Uint8Array): this {
    const a = new Uint8Array(4 + data.length);
    const v = new DataView(a.buffer);
    v.setUint16(0, 4 + data.length, true);
    v.setUint16(2, type, true);
    a.set(data, 4);
    this.push(a);
    return this;
  }
  attrU32(type: number, value: number): this {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, value >>> 0, true);
    return this.attr(type, d);
  }
  encode(seq: number): Uint8Array {
    const out = new Uint8Array(new ArrayBuffer(this.len));
    const v = new DataView(out.buffer);
    v.setUint32(0, this.len, true);
    v.setUint16(4, this.type, true);
    v.setUint16(6, this.flags | NLM_F_REQUEST | NLM_F_ACK, true);
    v.setUint32(8, seq, true);
    v.setUint32(12, 0, true);
    let off = 16;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

let seqCounter = 1;

/**
 * Sends one request and waits for its acknowledgement. A negative
 * acknowledgement is a SysError("netlink", errno, what).
 */
function transact(req: Request, what: string): void {
  const fd = openRouteSocket();
  try {
    const seq = seqCounter++;
    const msg = req.encode(seq);
    for (;;) {
      const sent = libc.sendto(fd, msg, msg.length, 0, null, 0) as number;
      if (sent >= 0) break;
      const e = errno();
      if (e !== EINTR) throw new SysError("sendto", e, `netlink ${what}`);
    }
    const buf = new Uint8Array(new ArrayBuffer(8192));
    const view = new DataView(buf.buffer);
    for (;;) {
      const n = libc.recv(fd, buf, buf.length, 0) as number;
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        throw new SysError("recv", e, `netlink ${what}`);
      }
      if (n === 0) throw new SysError("recv", 71 /*EPROTO*/, `netlink ${what}: no acknowledgement`);
      let off = 0;
      while (off + 16 <= n) {
        const len = view.getUint32(off, true);
        if (len < 16 || off + len > n) break;
        if (view.getUint16(off + 4, true) === NLMSG_ERROR && view.getUint32(off + 8, true) === seq) {
          const err = -view.getInt32(off + 16, true);
          if (err !== 0) throw new SysError("netlink", err, what);
          return;
        }
        off += (len + 3) & ~3;
      }
    }
  } finally {
    closeFd(fd);
  }
}

function familyOf(addr: Uint8Array): number {
  if (addr.length === 4) return AF_INET;
  if (addr.length === 16) return AF_INET6;
  throw new SysError("netlink", 22 /*EINVAL*/, `address of ${addr.length} bytes`);
}

function formatAddr(addr: Uint8Array): string {
  if (addr.length === 4) return addr.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  return groups.join(":");
}

/** The index of interface `name` in the calling thread's namespace. */
export function interfaceIndex(name: string): number {
  const idx = libc.if_nametoindex(cstr(name));
  if (idx === 0) throw new SysError("if_nametoindex", errno(), name);
  return idx;
}

/** Sets the link up, and its MTU when given (`ip link set DEV [mtu N] up`). */
export function setLinkUp(index: number, mtu?: number): void {
  // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32
  const ifi = new Uint8Array(16);
  const v = new DataView(ifi.buffer);
  ifi[0] = AF_UNSPEC;
  v.setInt32(4, index, true);
  v.setUint32(8, IFF_UP, true);
  v.setUint32(12, IFF_UP, true);
  const req = new Request(RTM_NEWLINK, 0, ifi);
  if (mtu !== undefined) req.attrU32(IFLA_MTU, mtu);
  transact(req, `RTM_NEWLINK index ${index}${mtu !== undefined ? ` mtu ${mtu}` : ""} up`);
}

/** Sets the link's hardware address (`ip link set DEV address MAC`). */
export function setLinkAddress(index: number, mac: Uint8Array): void {
  const ifi = new Uint8Array(16);
  ifi[0] = AF_UNSPEC;
  new DataView(ifi.buffer).setInt32(4, index, true);
  transact(new Request(RTM_NEWLINK, 0, ifi).attr(IFLA_ADDRESS, mac), `RTM_NEWLINK index ${index} address`);
}

/**
 * Adds an address (`ip addr add ADDR/PREFIX dev DEV [nodad]`). `flags`
 * takes IFA_F_* bits such as {@link IFA_F_NODAD}.
 */
export function addAddress(index: number, addr: Uint8Array, prefixLen: number, flags = 0): void {
  const family = familyOf(addr);
  // struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32
  const ifa = new Uint8Array(8);
  ifa[0] = family;
  ifa[1] = prefixLen;
  ifa[2] = flags & 0xff;
  ifa[3] = RT_SCOPE_UNIVERSE;
  new DataView(ifa.buffer).setUint32(4, index, true);
  const req = new Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifa).attr(IFA_LOCAL, addr).attr(IFA_ADDRESS, addr);
  if (flags !== 0) req.attrU32(IFA_FLAGS, flags);
  transact(req, `RTM_NEWADDR ${formatAddr(addr)}/${prefixLen}`);
}

/** Adds a default route through `gateway` on the interface (`ip route add default via GW dev DEV`). */
export function addDefaultRoute(index: number, gateway: Uint8Array): void {
  const family = familyOf(gateway);
  // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags u32
  const rtm = new Uint8Array(12);
  rtm[0] = family;
  rtm[4] = RT_TABLE_MAIN;
  rtm[5] = RTPROT_BOOT;
  rtm[6] = RT_SCOPE_UNIVERSE;
  rtm[7] = RTN_UNICAST;
  const req = new Request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, rtm).attr(RTA_GATEWAY, gateway).attrU32(RTA_OIF, index);
  transact(req, `RTM_NEWROUTE default via ${formatAddr(gateway)}`);
}
