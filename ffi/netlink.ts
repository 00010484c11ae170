// Route dumps over rtnetlink (RFC 3549; linux/rtnetlink.h), for the host's
// "local routes" (docs/compatibility.md, Host routes): the destination
// prefix of every route in the main (254) and local (255) tables, IPv4 and
// IPv6, except routes with no destination (the default route). The constants and socket that
// netlink-config.ts also needs are exported from here.
import { libc, check, errno, SysError } from "./libc.ts";
import { closeFd } from "./sys.ts";
import { AF_INET, AF_INET6, SOCK_CLOEXEC } from "./net.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;

export const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
export const RTM_NEWROUTE = 24;
const RTM_GETROUTE = 26;
export const NLM_F_REQUEST = 0x01;
const NLM_F_DUMP = 0x300;

const RTA_DST = 1;
const RTA_TABLE = 15;

export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;

/** A NETLINK_ROUTE socket on the calling thread's namespace; the caller closes it. */
export function openRouteSocket(): number {
  return check("socket", libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "AF_NETLINK");
}

export interface RoutePrefix {
  family: 4 | 6;
  /** 4 or 16 bytes (the shape of src/wire/addr.ts's IPPrefix). */
  bytes: Uint8Array;
  bits: number;
  table: number;
}

/** Dumps the routes of one family from the calling thread's namespace. */
function dumpFamily(family: number): RoutePrefix[] {
  const fd = openRouteSocket();
  try {
    // nlmsghdr (16) + rtmsg (12)
    const req = new Uint8Array(new ArrayBuffer(28));
    const dv = new DataView(req.buffer);
    dv.setUint32(0, 28, true);
    dv.setUint16(4, RTM_GETROUTE, true);
    dv.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true);
    dv.setUint32(8, 1, true);
    req[16] = family;
    const sent = libc.sendto(fd, req, 28, 0, null, 0) as number;
    if (sent < 0) throw new SysError("sendto", errno(), "netlink");
    const out: RoutePrefix[] = [];
    const buf = new Uint8Array(new ArrayBuffer(1 << 16));
    const view = new DataView(buf.buffer);
    for (;;) {
      const n = libc.recv(fd, buf, buf.length, 0) as number;
      if (n < 0) throw new SysError("recv", errno(), "netlink");
      if (n === 0) return out;
      let off = 0;
      while (off + 16 <= n) {
        const len = view.getUint32(off, true);
        const type = view.getUint16(off + 4, true);
        if (len < 16 || off + len > n) return out;
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) {
          const err = -view.getInt32(off + 16, true);
          if (err !== 0) throw new SysError("netlink", err, "RTM_GETROUTE");
          return out;
        }
        if (type === RTM_NEWROUTE && len >= 28) parseRoute(buf, view, off, len, out);
        off += (len + 3) & ~3;
      }
    }
  } finally {
    closeFd(fd);
  }
}

function parseRoute(buf: Uint8Array, view: DataView, off: number, len: number, out: RoutePrefix[]): void {
  const fam = buf[off + 16];
  const dstLen = buf[off + 17]!;
  let table = buf[off + 20]!;
  let dst: Uint8Array | null = null;
  let a = off + 28;
  const end = off + len;
  while (a + 4 <= end) {
    const alen = view.getUint16(a, true);
    const atype = view.getUint16(a + 2, true) & 0x3fff;
    if (alen < 4 || a + alen > end) break;
    if (atype === RTA_DST) dst = buf.slice(a + 4, a + alen);
    else if (atype === RTA_TABLE && alen >= 8) table = view.getUint32(a + 4, true);
    a += (alen + 3) & ~3;
  }
  if (table !== RT_TABLE_MAIN && table !== RT_TABLE_LOCAL) return;
  if (dst === null) return; // the default route: no destination
  const family = fam === AF_INET ? 4 : fam === AF_INET6 ? 6 : 0;
  if (family === 0 || dst.length !== (family === 4 ? 4 : 16)) return;
  out.push({ family, bytes: dst, bits: dstLen, table });
}

/** Every route prefix of the main and local tables, both families. */
export function dumpLocalRoutes(): RoutePrefix[] {
  return [...dumpFamily(AF_INET), ...dumpFamily(AF_INET6)];
}
