/**
 * DHCPv6 client/server messages (RFC 8415 §8) and the options a stateless
 * server reads and writes (§21).
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |    msg-type   |               transaction-id                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                            options ...                        |
 *
 * Each option (§21.1): option-code(2) option-len(2) option-data(len).
 * Relay-agent messages (§9) have another header; this view reads them as
 * client/server messages only far enough to see their type.
 */
import { writeU16, writeU32 } from "./bytes.ts";
import { EMPTY, WireError, inBounds } from "./errors.ts";
import { copyIpv6 } from "./ipv6.ts";
import { View } from "./view.ts";

export const DHCP6_CLIENT_PORT = 546;
export const DHCP6_SERVER_PORT = 547;
export const DHCP6_HEADER_LEN = 4;
/** ff02::1:2, All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1). */
export const ALL_DHCP_SERVERS: Readonly<Uint8Array> = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]);

/** Message types (RFC 8415 §7.3). */
export const Dhcp6Msg = {
  Solicit: 1,
  Advertise: 2,
  Request: 3,
  Confirm: 4,
  Renew: 5,
  Rebind: 6,
  Reply: 7,
  Release: 8,
  Decline: 9,
  Reconfigure: 10,
  InformationRequest: 11,
  RelayForw: 12,
  RelayRepl: 13,
} as const;

/** Option codes (RFC 8415 §21, RFC 3646 for DNS). */
export const Dhcp6Opt = {
  ClientId: 1,
  ServerId: 2,
  IaNa: 3,
  IaTa: 4,
  StatusCode: 13,
  DnsServers: 23,
  DomainList: 24,
  IaPd: 25,
} as const;

/** Status codes (RFC 8415 §21.13). */
export const Dhcp6Status = {
  Success: 0,
  UnspecFail: 1,
  NoAddrsAvail: 2,
} as const;

/** A DUID is at most 128 bytes after its 2-byte type (RFC 8415 §11.1). */
export const DUID_MAX_LEN = 130;

/** DUID-LL (RFC 8415 §11.4): type 3, hardware type 1 (Ethernet), the MAC. 10 bytes. */
export function duidLl(mac: ArrayLike<number>): Uint8Array {
  const d = new Uint8Array(10);
  writeU16(d, 0, 3);
  writeU16(d, 2, 1);
  for (let i = 0; i < 6; i++) d[4 + i] = mac[i]!;
  return d;
}

/** Reusable view over one DHCPv6 message (a UDP payload). */
export class Dhcp6View extends View {
  /** Truncated below the 4-byte header. */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < DHCP6_HEADER_LEN) return WireError.Truncated;
    return WireError.Ok;
  }
  get msgType(): number {
    return this.u8(0);
  }
  /** The 24-bit transaction id. */
  get xid(): number {
    return (this.u8(1) << 16) | this.u16(2);
  }
  get optionsOff(): number {
    return this.off + DHCP6_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.len - DHCP6_HEADER_LEN;
  }
}

/**
 * Reusable iterator over a DHCPv6 option list:
 *
 *   it.reset(buf, v.optionsOff, v.optionsLen);
 *   while (it.next()) { switch (it.code) { ... it.dataOff, it.dataLen ... } }
 *   if (it.error) drop();
 *
 * An option header or data running past the end stops the walk with
 * `error = Truncated`. Each step advances by at least 4 bytes.
 */
export class Dhcp6OptionIter {
  buf: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  code = 0;
  dataOff = 0;
  dataLen = 0;
  error: WireError = WireError.Ok;

  reset(buf: Uint8Array, off: number, len: number): this {
    this.buf = buf;
    this.pos = off;
    this.end = off + len;
    this.code = 0;
    this.dataOff = off;
    this.dataLen = 0;
    this.error = inBounds(buf, off, len) ? WireError.Ok : WireError.BadBounds;
    if (this.error !== WireError.Ok) this.pos = this.end;
    return this;
  }

  /** Advances to the next option; false at the end of the list or on error (see `error`). */
  next(): boolean {
    const rem = this.end - this.pos;
    if (rem <= 0) return false;
    const b = this.buf;
    const p = this.pos;
    if (rem < 4 || 4 + ((b[p + 2] << 8) | b[p + 3]) > rem) {
      this.error = WireError.Truncated;
      this.pos = this.end;
      return false;
    }
    this.code = (b[p] << 8) | b[p + 1];
    this.dataLen = (b[p + 2] << 8) | b[p + 3];
    this.dataOff = p + 4;
    this.pos = p + 4 + this.dataLen;
    return true;
  }
}

/**
 * What a server sends back (Advertise or Reply): Server Identifier, the
 * client's Client Identifier copied from its message, then a Status Code,
 * the DNS Recursive Name Server option (23, RFC 3646 §3) and the Domain
 * Search List option (24, RFC 3646 §4) when set.
 */
export class Dhcp6ReplyRepr {
  msgType: number = Dhcp6Msg.Reply;
  xid = 0;
  serverDuid: Uint8Array = EMPTY;
  /** The client's DUID, clientIdLen bytes at clientIdBuf[clientIdOff]; length 0: none. */
  clientIdBuf: Uint8Array = EMPTY;
  clientIdOff = 0;
  clientIdLen = 0;
  /** -1: no Status Code option. */
  status = -1;
  /** UTF-8 text of the Status Code option. */
  statusMessage: Uint8Array = EMPTY;
  dnsServers: readonly Uint8Array[] = [];
  /** Names in DNS wire form (RFC 1035 §3.1, uncompressed, as RFC 8415 §10 requires). */
  searchDomains: readonly Uint8Array[] = [];

  get length(): number {
    let n = DHCP6_HEADER_LEN + 4 + this.serverDuid.length;
    if (this.clientIdLen > 0) n += 4 + this.clientIdLen;
    if (this.status >= 0) n += 4 + 2 + this.statusMessage.length;
    if (this.dnsServers.length > 0) n += 4 + 16 * this.dnsServers.length;
    if (this.searchDomains.length > 0) {
      n += 4;
      for (const d of this.searchDomains) n += d.length;
    }
    return n;
  }

  /** Writes the message at out[off]; returns its length, or 0 if it does not fit (or an option would pass 65535 bytes). */
  emit(out: Uint8Array, off: number): number {
    const n = this.length;
    if (off < 0 || off + n > out.length || n - DHCP6_HEADER_LEN > 0xffff) return 0;
    out[off] = this.msgType;
    out[off + 1] = this.xid >>> 16;
    writeU16(out, off + 2, this.xid);
    let at = off + DHCP6_HEADER_LEN;
    at = option(out, at, Dhcp6Opt.ServerId, this.serverDuid.length);
    out.set(this.serverDuid, at);
    at += this.serverDuid.length;
    if (this.clientIdLen > 0) {
      at = option(out, at, Dhcp6Opt.ClientId, this.clientIdLen);
      out.set(this.clientIdBuf.subarray(this.clientIdOff, this.clientIdOff + this.clientIdLen), at);
      at += this.clientIdLen;
    }
    if (this.status >= 0) {
      at = option(out, at, Dhcp6Opt.StatusCode, 2 + this.statusMessage.length);
      writeU16(out, at, this.status);
      out.set(this.statusMessage, at + 2);
      at += 2 + this.statusMessage.length;
    }
    if (this.dnsServers.length > 0) {
      at = option(out, at, Dhcp6Opt.DnsServers, 16 * this.dnsServers.length);
      for (const s of this.dnsServers) {
        copyIpv6(out, at, s, 0);
        at += 16;
      }
    }
    if (this.searchDomains.length > 0) {
      let len = 0;
      for (const d of this.searchDomains) len += d.length;
      at = option(out, at, Dhcp6Opt.DomainList, len);
      for (const d of this.searchDomains) {
        out.set(d, at);
        at += d.length;
      }
    }
    return at - off;
  }
}

/** Writes an option header; returns where its data goes. */
function option(out: Uint8Array, at: number, code: number, len: number): number {
  writeU32(out, at, ((code << 16) | len) >>> 0);
  return at + 4;
}
