// Stateless DHCPv6 (RFC 8415 §6.1, §18.3.6): our RAs set the O flag and
// no M flag, so a guest asks for "other configuration" with an
// Information-request to ff02::1:2 port 547 and gets a Reply with the DNS
// servers (option 23) and search list (option 24), from our link-local
// address to its link-local address and port.
//
// Addresses are SLAAC's job here. A Solicit (a client configured for
// stateful DHCPv6 anyway) gets an Advertise holding only a Status Code
// NoAddrsAvail, the Server and the Client Identifier (RFC 3315 §17.2.2,
// as dnsmasq does): the client learns at once why nothing comes, and an
// RFC 8415 client ignores the Advertise (§18.2.9) and may fall back to
// an Information-request. Every other message type is for servers that
// assign addresses, so it is dropped (counted).
//
// Nothing here keeps state per client: each request gets at most one
// answer to the link-local address it came from.
import { UdpView, UDP_HEADER_LEN } from "../../wire/udp.ts";
import { IPPROTO_UDP } from "../../wire/ipv4.ts";
import { ipv6IsLinkLocal } from "../../wire/ipv6.ts";
import { writeU16 } from "../../wire/bytes.ts";
import { WireError } from "../../wire/errors.ts";
import {
  DHCP6_SERVER_PORT,
  DUID_MAX_LEN,
  Dhcp6Msg,
  Dhcp6Opt,
  Dhcp6OptionIter,
  Dhcp6ReplyRepr,
  Dhcp6Status,
  Dhcp6View,
  duidLl,
} from "../../wire/dhcp6.ts";
import type { RxMeta } from "../device.ts";
import type { Egress } from "../egress.ts";
import type { Stats } from "../stats.ts";
import type { GuestDns6 } from "./guest-dns.ts";

export interface Dhcp6Config {
  /** The DNS servers and search list to hand out, read for each Reply. */
  dns: (now: number) => GuestDns6;
}

const NONE: readonly Uint8Array[] = [];
const NO_ADDRS_MESSAGE = new TextEncoder().encode("no addresses by DHCPv6 here: use SLAAC (the router advertisement's prefix)");

export class Dhcp6Server {
  private readonly udp = new UdpView();
  private readonly msg = new Dhcp6View();
  private readonly it = new Dhcp6OptionIter();
  private readonly reply = new Dhcp6ReplyRepr();
  /** Our DUID-LL (RFC 8415 §11.4), from the gateway MAC. */
  readonly duid: Uint8Array;

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    /** Our link-local address: the source of every answer. */
    private readonly linkLocal: Uint8Array,
    private readonly cfg: Dhcp6Config,
  ) {
    this.duid = duidLl(egress.mac);
    this.reply.serverDuid = this.duid;
  }

  /**
   * A UDP datagram to ff02::1:2 at buf[off, off+len). Answered only when
   * it comes from a link-local address (RFC 8415 §13.1: clients use one
   * to reach servers on their link) to port 547 and is a valid
   * Information-request or Solicit (§16.2, §16.12).
   */
  input(buf: Uint8Array, srcOff: number, dstOff: number, srcMacOff: number, off: number, len: number, meta: RxMeta, now: number): void {
    const u = this.udp;
    if (u.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("udp-malformed");
      return;
    }
    if (!meta.checksumTrusted && !u.verifyChecksumV6(buf, srcOff, dstOff)) {
      this.stats.drop("udp-bad-checksum");
      return;
    }
    if (u.dstPort !== DHCP6_SERVER_PORT || !ipv6IsLinkLocal(buf, srcOff)) {
      this.stats.drop("ipv6-multicast");
      return;
    }
    const m = this.msg;
    if (m.attach(buf, off + UDP_HEADER_LEN, u.len - UDP_HEADER_LEN) !== WireError.Ok) {
      this.stats.drop("dhcp6-malformed");
      return;
    }
    const type = m.msgType;
    if (type !== Dhcp6Msg.InformationRequest && type !== Dhcp6Msg.Solicit) {
      this.stats.drop("dhcp6-ignored");
      return;
    }
    let clientOff = -1;
    let clientLen = 0;
    let serverOff = -1;
    let serverLen = 0;
    let ia = false;
    const it = this.it.reset(buf, m.optionsOff, m.optionsLen);
    while (it.next()) {
      switch (it.code) {
        case Dhcp6Opt.ClientId:
          clientOff = it.dataOff;
          clientLen = it.dataLen;
          break;
        case Dhcp6Opt.ServerId:
          serverOff = it.dataOff;
          serverLen = it.dataLen;
          break;
        case Dhcp6Opt.IaNa:
        case Dhcp6Opt.IaTa:
        case Dhcp6Opt.IaPd:
          ia = true;
          break;
      }
    }
    if (it.error !== WireError.Ok || (clientOff >= 0 && (clientLen === 0 || clientLen > DUID_MAX_LEN))) {
      this.stats.drop("dhcp6-malformed");
      return;
    }
    // §16.2: a Solicit must name its client and no server; §16.12: an
    // Information-request holds no IA and names no other server.
    const invalid =
      type === Dhcp6Msg.Solicit
        ? clientOff < 0 || serverOff >= 0
        : ia || (serverOff >= 0 && !this.isOurDuid(buf, serverOff, serverLen));
    if (invalid) {
      this.stats.drop("dhcp6-invalid");
      return;
    }
    const eg = this.egress;
    if (srcMacOff >= 0) {
      const released = eg.neighbors.learnV6(buf, srcOff, buf, srcMacOff);
      if (released !== null) eg.flushQueued(released);
    }
    const r = this.reply;
    r.xid = m.xid;
    r.clientIdBuf = buf;
    r.clientIdOff = clientOff;
    r.clientIdLen = clientLen;
    if (type === Dhcp6Msg.Solicit) {
      r.msgType = Dhcp6Msg.Advertise;
      r.status = Dhcp6Status.NoAddrsAvail;
      r.statusMessage = NO_ADDRS_MESSAGE;
      r.dnsServers = NONE;
      r.searchDomains = NONE;
    } else {
      const dns = this.cfg.dns(now);
      r.msgType = Dhcp6Msg.Reply;
      r.status = -1;
      r.dnsServers = dns.servers;
      r.searchDomains = dns.domains;
    }
    const at = eg.l4OffV6;
    const n = r.emit(eg.buf, at + UDP_HEADER_LEN);
    if (n === 0) {
      this.stats.drop("dhcp6-reply-too-big");
      return;
    }
    const b = eg.buf;
    writeU16(b, at, DHCP6_SERVER_PORT);
    writeU16(b, at + 2, u.srcPort);
    writeU16(b, at + 4, UDP_HEADER_LEN + n);
    eg.checksumV6(this.linkLocal, 0, buf, srcOff, IPPROTO_UDP, at, UDP_HEADER_LEN + n, 6);
    eg.sendV6(this.linkLocal, 0, buf, srcOff, IPPROTO_UDP, UDP_HEADER_LEN + n, now);
    this.stats.bump(type === Dhcp6Msg.Solicit ? "dhcp6-advertise-sent" : "dhcp6-reply-sent");
  }

  private isOurDuid(buf: Uint8Array, off: number, len: number): boolean {
    const d = this.duid;
    if (len !== d.length) return false;
    for (let i = 0; i < len; i++) if (buf[off + i] !== d[i]) return false;
    return true;
  }
}
