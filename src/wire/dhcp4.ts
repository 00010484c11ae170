/**
 * DHCPv4 messages (RFC 2131 §2, options RFC 2132), the UDP payload:
 *
 *    0       op | htype | hlen | hops
 *    4       xid
 *    8       secs            | flags (bit 15: BROADCAST)
 *   12       ciaddr   16 yiaddr   20 siaddr   24 giaddr
 *   28       chaddr (16)
 *   44       sname (64)
 *  108       file (128)
 *  236       magic cookie 99.130.83.99 (RFC 2131 §3)
 *  240       options: code, length, value; 0 pads, 255 ends
 *
 * Dhcp4View checks the fixed part and the cookie; parseDhcp4Options walks
 * the options into a reused record (also the file and sname fields when
 * option 52 says they carry options, RFC 2131 §4.1), bounds-checked, never
 * throwing: every step consumes at least one byte, so the walk ends.
 * Dhcp4Writer builds replies in place.
 */
import { WireError } from "./errors.ts";
import { View } from "./view.ts";
import { encodeDnsName } from "./dns.ts";

export const DHCP4_SERVER_PORT = 67;
export const DHCP4_CLIENT_PORT = 68;
export const DHCP4_CHADDR_OFF = 28;
const SNAME_OFF = 44;
const SNAME_LEN = 64;
const FILE_OFF = 108;
const FILE_LEN = 128;
const COOKIE_OFF = 236;
export const DHCP4_OPTIONS_OFF = 240;
export const DHCP4_MAGIC_COOKIE = 0x63825363;
/** RFC 1542 §2.1: BOOTP relays and old clients expect at least 300 bytes. */
export const DHCP4_MIN_LEN = 300;
/** RFC 2131 §2: every client accepts 576-byte IP datagrams, so 548 bytes of DHCP. */
export const DHCP4_DEFAULT_MAX_LEN = 576 - 20 - 8;

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
/** RFC 2131 §2 flags: the client cannot receive unicast before it is configured. */
export const DHCP4_FLAG_BROADCAST = 0x8000;

/** Option 53 values (RFC 2132 §9.6). */
export const DhcpMsg = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

/** Option codes (RFC 2132, RFC 3397). */
export const DhcpOpt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  DOMAIN_NAME: 15,
  MTU: 26,
  BROADCAST: 28,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  DOMAIN_SEARCH: 119,
  END: 255,
} as const;

/** Reusable view over one DHCP message: the fixed fields and the cookie. */
export class Dhcp4View extends View {
  /** Truncated below 240 bytes, Malformed without the magic cookie. */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < DHCP4_OPTIONS_OFF) return WireError.Truncated;
    if (this.u32(COOKIE_OFF) !== DHCP4_MAGIC_COOKIE) return WireError.Malformed;
    return WireError.Ok;
  }

  get op(): number {
    return this.u8(0);
  }
  get htype(): number {
    return this.u8(1);
  }
  get hlen(): number {
    return this.u8(2);
  }
  get xid(): number {
    return this.u32(4);
  }
  get flags(): number {
    return this.u16(10);
  }
  get ciaddr(): number {
    return this.u32(12);
  }
  get yiaddr(): number {
    return this.u32(16);
  }
  get giaddr(): number {
    return this.u32(24);
  }
  /** Absolute offset of chaddr in buf. */
  get chaddrOff(): number {
    return this.off + DHCP4_CHADDR_OFF;
  }
}

/** What the server needs from a client's options; filled by parseDhcp4Options. */
export class Dhcp4Options {
  /** Option 53; 0 when absent. */
  messageType = 0;
  /** Option 50; 0 when absent. */
  requestedIp = 0;
  /** Option 54; 0 when absent. */
  serverId = 0;
  /** Option 57; 0 when absent. */
  maxMessageSize = 0;

  reset(): void {
    this.messageType = 0;
    this.requestedIp = 0;
    this.serverId = 0;
    this.maxMessageSize = 0;
  }
}

/**
 * Walks the options of the message `v` is attached to. An option running
 * past its field, or one of ours with the wrong length, is BadOption. The
 * options field ends at END or at the end of the message; file and sname
 * are walked after it when option 52 asks (in that order, RFC 2131 §4.1).
 */
export function parseDhcp4Options(v: Dhcp4View, out: Dhcp4Options): WireError {
  out.reset();
  const b = v.buf;
  const base = v.off;
  const overload = walkOptions(b, base + DHCP4_OPTIONS_OFF, base + v.len, out, true);
  if (overload < 0) return WireError.BadOption;
  if (overload & 1 && walkOptions(b, base + FILE_OFF, base + FILE_OFF + FILE_LEN, out, false) < 0) return WireError.BadOption;
  if (overload & 2 && walkOptions(b, base + SNAME_OFF, base + SNAME_OFF + SNAME_LEN, out, false) < 0) return WireError.BadOption;
  return WireError.Ok;
}

/** One options area, b[p, end). Returns option 52's value (0 if absent or not `main`), -1 on a bad option. */
function walkOptions(b: Uint8Array, p: number, end: number, out: Dhcp4Options, main: boolean): number {
  let overload = 0;
  while (p < end) {
    const code = b[p]!;
    if (code === DhcpOpt.END) break;
    if (code === DhcpOpt.PAD) {
      p++;
      continue;
    }
    if (p + 2 > end) return -1;
    const n = b[p + 1]!;
    const v = p + 2;
    if (v + n > end) return -1;
    switch (code) {
      case DhcpOpt.MESSAGE_TYPE:
        if (n !== 1) return -1;
        out.messageType = b[v]!;
        break;
      case DhcpOpt.REQUESTED_IP:
        if (n !== 4) return -1;
        out.requestedIp = u32(b, v);
        break;
      case DhcpOpt.SERVER_ID:
        if (n !== 4) return -1;
        out.serverId = u32(b, v);
        break;
      case DhcpOpt.MAX_MESSAGE_SIZE:
        if (n !== 2) return -1;
        out.maxMessageSize = (b[v]! << 8) | b[v + 1]!;
        break;
      case DhcpOpt.OVERLOAD:
        if (n !== 1) return -1;
        if (main) overload = b[v]! & 3;
        break;
    }
    p = v + n;
  }
  return overload;
}

function u32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

/**
 * Builds a reply in place: fixed fields, cookie, then options, each
 * refused (false) when it would pass `limit` with room left for END.
 */
export class Dhcp4Writer {
  private buf: Uint8Array = new Uint8Array(0);
  private off = 0;
  private p = 0;
  private limit = 0;

  /**
   * Starts a BOOTREPLY at buf[off], at most `maxLen` bytes, echoing the
   * request's xid, flags, giaddr and chaddr (RFC 2131 §4.3.1 table 3).
   */
  begin(buf: Uint8Array, off: number, maxLen: number, request: Dhcp4View, ciaddr: number, yiaddr: number, siaddr: number): void {
    this.buf = buf;
    this.off = off;
    this.limit = off + maxLen;
    buf.fill(0, off, off + DHCP4_OPTIONS_OFF);
    buf[off] = BOOTREPLY;
    buf[off + 1] = request.htype;
    buf[off + 2] = request.hlen;
    const r = request.buf;
    const ro = request.off;
    for (let i = 4; i < 8; i++) buf[off + i] = r[ro + i]!;
    buf[off + 10] = r[ro + 10]!;
    buf[off + 11] = r[ro + 11]!;
    w32(buf, off + 12, ciaddr);
    w32(buf, off + 16, yiaddr);
    w32(buf, off + 20, siaddr);
    for (let i = 24; i < SNAME_OFF; i++) buf[off + i] = r[ro + i]!;
    w32(buf, off + COOKIE_OFF, DHCP4_MAGIC_COOKIE);
    this.p = off + DHCP4_OPTIONS_OFF;
  }

  /** Bytes left for option values after this option's code and length, keeping one for END. */
  private room(n: number): boolean {
    return this.p + 2 + n + 1 <= this.limit;
  }

  u8(code: number, v: number): boolean {
    if (!this.room(1)) return false;
    const b = this.buf;
    b[this.p] = code;
    b[this.p + 1] = 1;
    b[this.p + 2] = v;
    this.p += 3;
    return true;
  }

  u16(code: number, v: number): boolean {
    if (!this.room(2)) return false;
    const b = this.buf;
    b[this.p] = code;
    b[this.p + 1] = 2;
    b[this.p + 2] = v >>> 8;
    b[this.p + 3] = v;
    this.p += 4;
    return true;
  }

  u32(code: number, v: number): boolean {
    if (!this.room(4)) return false;
    this.buf[this.p] = code;
    this.buf[this.p + 1] = 4;
    w32(this.buf, this.p + 2, v);
    this.p += 6;
    return true;
  }

  /** A list of IPv4 addresses (routers, DNS servers); at most 63 fit one option. */
  addresses(code: number, list: readonly number[]): boolean {
    const n = Math.min(list.length, 63);
    if (n === 0 || !this.room(4 * n)) return false;
    this.buf[this.p] = code;
    this.buf[this.p + 1] = 4 * n;
    for (let i = 0; i < n; i++) w32(this.buf, this.p + 2 + 4 * i, list[i]!);
    this.p += 2 + 4 * n;
    return true;
  }

  /**
   * Option data of any length: split into options of 255 bytes at most,
   * which the client concatenates (RFC 3396 §7). All or nothing.
   */
  bytes(code: number, data: Uint8Array): boolean {
    const pieces = Math.max(1, Math.ceil(data.length / 255));
    if (this.p + 2 * pieces + data.length + 1 > this.limit) return false;
    const b = this.buf;
    for (let at = 0, i = 0; i < pieces; i++) {
      const n = Math.min(255, data.length - at);
      b[this.p] = code;
      b[this.p + 1] = n;
      b.set(data.subarray(at, at + n), this.p + 2);
      this.p += 2 + n;
      at += n;
    }
    return true;
  }

  /** Writes END, pads to DHCP4_MIN_LEN (when `limit` allows) and returns the message length. */
  end(): number {
    const b = this.buf;
    b[this.p++] = DhcpOpt.END;
    const min = Math.min(this.off + DHCP4_MIN_LEN, this.limit);
    if (this.p < min) {
      b.fill(0, this.p, min);
      this.p = min;
    }
    return this.p - this.off;
  }
}

function w32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}

/**
 * Option 119's value (RFC 3397 §2): the names in DNS wire form, one after
 * the other, a repeated suffix replaced by a pointer to its first copy
 * (RFC 1035 §4.1.4; offsets count from the start of the value). Names
 * that are not valid DNS names are left out.
 */
export function encodeDomainSearch(names: readonly string[]): Uint8Array {
  const out: number[] = [];
  /** Offset of each suffix written so far, by its wire form (labels lowercased). */
  const seen = new Map<string, number>();
  for (const name of names) {
    let wire: Uint8Array;
    try {
      wire = encodeDnsName(name);
    } catch {
      continue;
    }
    if (wire.length <= 1) continue;
    const starts: number[] = [];
    for (let p = 0; wire[p] !== 0; p += 1 + wire[p]!) starts.push(p);
    let written = wire.length - 1;
    let pointer = -1;
    for (const s of starts) {
      const at = seen.get(suffixKey(wire, s));
      if (at !== undefined) {
        written = s;
        pointer = at;
        break;
      }
    }
    const base = out.length;
    for (const s of starts) {
      if (s >= written) break;
      if (base + s < 0x4000) seen.set(suffixKey(wire, s), base + s);
    }
    for (let i = 0; i < written; i++) out.push(wire[i]!);
    if (pointer >= 0) out.push(0xc0 | (pointer >>> 8), pointer & 0xff);
    else out.push(0);
  }
  return Uint8Array.from(out);
}

function suffixKey(wire: Uint8Array, from: number): string {
  let s = "";
  for (let i = from; i < wire.length; i++) {
    let c = wire[i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    s += String.fromCharCode(c);
  }
  return s;
}
