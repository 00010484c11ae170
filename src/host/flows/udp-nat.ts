// Guest UDP to the host's sockets as a NAT would map it (RFC 4787).
//
// Mapping is endpoint-independent (REQ-1): one host socket per guest
// endpoint (its address and port, per address family of the destination,
// per source address we bind), sending with sendto() to every peer that
// guest endpoint talks to. So the number of host ports held does not grow
// with the destinations a guest sends to, and a guest that forges source
// ports or addresses grows it only up to the cap.
//
// Filtering is address-and-port-dependent (RFC 4787 §5): a datagram
// arriving on a mapping's socket goes to the guest only if that guest
// endpoint has a live flow to exactly its sender's address and port;
// otherwise it is dropped and counted ("udp-unsolicited").
//
// The engine keeps one UdpFlow (and one UdpSplice) per 4-tuple, with its
// own idle timer and log lines; the splices of one guest endpoint share its
// mapping, and the mapping's socket closes with its last flow.
//
// Cap: at most `maxPorts` mappings (host sockets) at a time. A new one
// beyond it evicts the least recently used mapping, and its flows with it
// (limit "udp-ports").
//
// ICMP errors: the sockets are unconnected, so the kernel queues ICMP
// errors with the destination they are about (IP_RECVERR). The flow they
// are about tells its guest (udp-splice.ts), and an error that a connected
// socket would have reported ends that one flow.
import { EAGAIN } from "../../../ffi/libc.ts";
import { AF_INET, SockAddr, bindTo, connectTo, localAddress, udpSocket } from "../../../ffi/net.ts";
import { closeFd } from "../../../ffi/sys.ts";
import { readU32 } from "../../wire/bytes.ts";
import type { Stats } from "../../stack/stats.ts";
import type { Icmp } from "../../stack/icmp.ts";
import type { Reactor } from "../../io/reactor.ts";
import { DATAGRAMS_PER_TURN, datagramBuffer, UdpSocket, type UdpSocketOwner } from "../../io/udp-socket.ts";
import { DialError, closeWith } from "../../io/dial-error.ts";
import { sockAddrIP } from "../../io/addr.ts";
import { endpointText } from "../../wire/addr.ts";
import type { DialTarget } from "./dialer.ts";
import type { StackClock } from "../clock.ts";
import { guestEndpoint } from "./flow-addr.ts";
import type { UdpSplice } from "./udp-splice.ts";
import { LruList } from "../../stack/lru.ts";

/** Where a datagram came from (recvfrom) or an ICMP error was about. */
const from = new SockAddr();
/** The route check's address in and the local address out. */
const probeAddr = new SockAddr();

/**
 * A number for a peer's address and port, the key of a mapping's flow map:
 * exact for IPv4; for IPv6 a hash, with the colliding splices chained.
 */
function peerKey(sa: SockAddr): number {
  const b = sa.bytes;
  const port = (b[2]! << 8) | b[3]!;
  if (sa.family === AF_INET) return port * 0x1_0000_0000 + readU32(b, 4);
  let h = port;
  for (let i = SockAddr.V6_OFF; i < SockAddr.V6_OFF + 16; i += 4) h = Math.imul(h ^ readU32(b, i), 0x9e3779b1);
  return h >>> 0;
}

/** Same port and address (IPv6: flow label and scope aside). */
function samePeer(a: SockAddr, b: SockAddr): boolean {
  const x = a.bytes;
  const y = b.bytes;
  if (x[0] !== y[0] || x[1] !== y[1] || x[2] !== y[2] || x[3] !== y[3]) return false;
  const start = a.family === AF_INET ? 4 : SockAddr.V6_OFF;
  for (let i = start; i < start + (a.family === AF_INET ? 4 : 16); i++) if (x[i] !== y[i]) return false;
  return true;
}

/** One guest endpoint's host socket and the flows that share it. */
export class Mapping implements UdpSocketOwner {
  /** Least recently used order, for eviction. */
  lruPrev: Mapping | null = null;
  lruNext: Mapping | null = null;
  open = true;
  /** The splices by peerKey of their host peer, chained through nextInMapping. */
  private readonly peers = new Map<number, UdpSplice>();
  flowCount = 0;
  sock!: UdpSocket;
  /** The bound port, for log lines. */
  port = 0;

  constructor(
    private readonly nat: UdpNat,
    readonly key: string,
  ) {}

  bind(sock: UdpSocket): void {
    this.sock = sock;
    this.port = sock.localPort();
  }

  /** The splice whose peer is `sa`, or null. */
  find(sa: SockAddr): UdpSplice | null {
    let s = this.peers.get(peerKey(sa)) ?? null;
    while (s !== null && !samePeer(s.to, sa)) s = s.nextInMapping;
    return s;
  }

  add(s: UdpSplice): void {
    const k = peerKey(s.to);
    s.nextInMapping = this.peers.get(k) ?? null;
    this.peers.set(k, s);
    this.flowCount++;
  }

  remove(s: UdpSplice): void {
    const k = peerKey(s.to);
    let p = this.peers.get(k) ?? null;
    if (p === s) {
      if (s.nextInMapping === null) this.peers.delete(k);
      else this.peers.set(k, s.nextInMapping);
    } else {
      while (p !== null && p.nextInMapping !== s) p = p.nextInMapping;
      if (p === null) return;
      p.nextInMapping = s.nextInMapping;
    }
    s.nextInMapping = null;
    this.flowCount--;
  }

  splices(): UdpSplice[] {
    const out: UdpSplice[] = [];
    for (const head of this.peers.values()) for (let s: UdpSplice | null = head; s !== null; s = s.nextInMapping) out.push(s);
    return out;
  }

  /** Sends one datagram of `s` to its peer: bytes sent, or -errno if the host refused it. */
  send(s: UdpSplice, buf: Uint8Array, off: number, len: number): number {
    this.nat.touch(this);
    const n = this.sock.sendTo(buf, off, len, s.to);
    if (n >= 0) return n;
    // The first send after an ICMP error about any peer of this socket
    // fails with that error (and clears it; the error queue says whom it
    // was about); the datagram was not sent, so it goes again. A real
    // failure fails again.
    return this.sock.sendTo(buf, off, len, s.to);
  }

  udpReadable(sock: UdpSocket): void {
    const nat = this.nat;
    const now = nat.clock.now();
    let budget = DATAGRAMS_PER_TURN;
    if (sock.errorQueued) this.readErrors();
    while (sock.readable && this.open) {
      if (budget-- === 0) {
        sock.readLater();
        break;
      }
      const n = sock.recvFrom(datagramBuffer, 0, datagramBuffer.length, from);
      if (n === -EAGAIN) break;
      if (n < 0) {
        // An ICMP error's errno, reported once: the error queue says which peer.
        this.readErrors();
        continue;
      }
      const s = this.find(from);
      if (s === null) {
        nat.stats.drop("udp-unsolicited");
        continue;
      }
      nat.touch(this);
      s.deliver(datagramBuffer, n, now);
    }
    nat.clock.afterActivity();
  }

  /** Tells the flows that ICMP errors on the error queue are about. */
  private readErrors(): void {
    while (this.open) {
      const e = this.sock.readError(from);
      if (e === null) return;
      this.find(from)?.hostError(e);
    }
  }
}

export class UdpNat {
  private readonly mappings = new Map<string, Mapping>();
  /** The eviction order, least recently used first. */
  private readonly lru = new LruList<Mapping>();

  constructor(
    private readonly reactor: Reactor,
    readonly clock: StackClock,
    readonly stats: Stats,
    /** -max-udp-ports: host sockets held for guest UDP at most. */
    readonly maxPorts: number,
    /** Where the host's ICMP errors are turned into errors toward the guest. */
    readonly icmp: Icmp,
  ) {}

  /** Host sockets held now. */
  get portCount(): number {
    return this.mappings.size;
  }

  /**
   * Maps the splice's flow toward `target`: checks the route (and the
   * source address) as a connect() would, then joins the guest endpoint's
   * mapping, creating it (and evicting the least recently used one at the
   * cap). With `wantLocal`, splice.hostLocal gets the address the kernel
   * sends from. Null, or why it failed.
   */
  attach(s: UdpSplice, target: DialTarget, wantLocal: boolean): DialError | null {
    const family = target.ip.family;
    const source = target.source?.bytes ?? null;
    const err = probe(target, wantLocal);
    if (err !== null) return err;
    s.to.set(target.ip.bytes, target.port);
    const base = `${family}/${guestEndpoint(s.flow)}/${source === null ? "" : source.join(".")}`;
    // Two flows of one guest endpoint to one host peer (a -R target also
    // reached directly) cannot share a socket: replies would be ambiguous.
    let m: Mapping | undefined;
    for (let slot = 0; ; slot++) {
      const key = slot === 0 ? base : `${base}#${slot}`;
      m = this.mappings.get(key);
      if (m === undefined) {
        const made = this.create(key, family, source);
        if (made instanceof DialError) return made;
        m = made;
        break;
      }
      if (m.find(s.to) === null) break;
    }
    m.add(s);
    s.mapping = m;
    if (wantLocal) s.hostLocal = endpointText(sockAddrIP(probeAddr), m.port);
    this.lru.touch(m);
    return null;
  }

  private create(key: string, family: 4 | 6, source: Uint8Array | null): Mapping | DialError {
    while (this.mappings.size >= this.maxPorts && this.lru.head !== null) {
      this.stats.limit("udp-ports");
      this.evict(this.lru.head);
    }
    const m = new Mapping(this, key);
    const sock = UdpSocket.unconnected(this.reactor, family, source, m);
    if (sock instanceof DialError) return sock;
    m.bind(sock);
    this.mappings.set(key, m);
    return m;
  }

  /** The splice's flow ended: it leaves its mapping, which closes with its last flow. */
  detach(s: UdpSplice): void {
    const m = s.mapping;
    if (m === null) return;
    s.mapping = null;
    m.remove(s);
    if (m.flowCount === 0) this.close(m);
  }

  private evict(m: Mapping): void {
    for (const s of m.splices()) s.evict("udp port limit");
    this.close(m);
  }

  private close(m: Mapping): void {
    if (!m.open) return;
    m.open = false;
    this.mappings.delete(m.key);
    this.lru.remove(m);
    m.sock.close();
  }

  /** The mapping was used: it goes to the back of the eviction order. */
  touch(m: Mapping): void {
    if (m.open) this.lru.touch(m);
  }
}

/**
 * What connect() on a socket of its own would say about `target` (no
 * route, a source address we do not have), with a throwaway socket: the
 * mapping's socket stays unconnected. With `wantLocal`, the local address
 * the kernel chose is left in probeAddr.
 */
function probe(target: DialTarget, wantLocal: boolean): DialError | null {
  const fd = udpSocket(target.ip.family);
  if (fd < 0) return new DialError("socket", -fd);
  if (target.source !== null) {
    const b = bindTo(fd, probeAddr.set(target.source.bytes, 0));
    if (b < 0) return closeWith(fd, new DialError("bind", -b));
  }
  const c = connectTo(fd, probeAddr.set(target.ip.bytes, target.port));
  if (c < 0) return closeWith(fd, new DialError("connect", -c));
  if (wantLocal) localAddress(fd, probeAddr);
  closeFd(fd);
  return null;
}
