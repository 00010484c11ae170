// The TCP layer: demultiplexes guest segments to connections, starts
// passive opens (a guest SYN to any address), answers segments for no
// connection with RST, builds every outgoing segment in the egress buffer,
// and runs the connections' timers.
import { TcpView, parseTcpOptions, emitTcpOptions, TcpOptions } from "../../wire/tcp.ts";
import { IPPROTO_TCP, ipv4IsLimitedBroadcast, ipv4IsMulticast } from "../../wire/ipv4.ts";
import { ipv6IsMulticast } from "../../wire/ipv6.ts";
import { WireError } from "../../wire/errors.ts";
import { writeU16, writeU32 } from "../../wire/bytes.ts";
import { FlowTable } from "../flow-key.ts";
import type { FlowSecret } from "../secret.ts";
import type { Egress } from "../egress.ts";
import type { RxMeta } from "../device.ts";
import type { Stats } from "../stats.ts";
import { IcmpErrorKind, type IcmpTcpError } from "../icmp.ts";
import { TimerHeap } from "../timer-heap.ts";
import { BufferBudget } from "./budget.ts";
import { ACK, FIN, RST, SYN, TcpSegment } from "./segment.ts";
import { TcpConnection, TcpState, type TcpConfig, type TcpHandler } from "./connection.ts";
import type { TcpOutput } from "./output.ts";
import { seqAdd, seqGe, seqGt, seqLt } from "./seq.ts";

/** What the host side must decide about a new guest connection. */
export interface TcpEvents {
  /**
   * A guest SYN for a new 4-tuple. The host connects out and answers with
   * conn.accept(now) (after setting conn.handler), or rejects with
   * layer.refuse(conn, now) / layer.unreachable(conn, now). Until then
   * retransmitted SYNs are ignored.
   */
  tcpConnectRequest(conn: TcpConnection): void;
}

/** How the TCP layer reports an unreachable destination to the guest. */
export interface TcpIcmpErrors {
  tcpUnreachable(conn: TcpConnection, now: number): void;
}

const TCP_HEADER = 20;
const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
/**
 * The smallest path MTUs an ICMP error may set: every IPv4 host takes
 * 576-byte datagrams (RFC 1122 §3.3.3; lower claims are the attack of RFC
 * 5927 §7, or a pre-RFC 1191 router giving none), every IPv6 link 1280
 * (RFC 8200 §5, RFC 8201 §4).
 */
const MIN_PMTU_V4 = 576;
const MIN_PMTU_V6 = 1280;

/** demux()'s verdicts for a well-formed segment. */
const DELIVER = 0;
const OPEN = 1;
const RESET = 2;
const DROP = 3;
/** A lone SYN while the handshake places are all taken: see overCap. */
const FULL = 4;
type Verdict = typeof DELIVER | typeof OPEN | typeof RESET | typeof DROP | typeof FULL;
/**
 * Slots of the table of SYNs refused for want of a handshake place (a
 * power of two; 1 MiB, allocated at the first refusal). Under a flood of
 * 50,000 forged SYNs a second, a refused SYN's slot survives the guest's
 * 1 s retransmission timeout with probability e^(-50000/2^18) = 0.83.
 */
const REFUSED_SYN_SLOTS = 1 << 18;
/** Connections in TIME-WAIT; the oldest is reaped early beyond this. */
export const MAX_TIME_WAIT = 4096;
/** virtio_net_hdr gso types. */
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;

export class TcpLayer implements TcpOutput {
  private readonly table: FlowTable<TcpConnection>;
  private readonly timers = new TimerHeap<TcpConnection>();
  private readonly dirty: TcpConnection[] = [];
  private readonly timeWait = new Set<TcpConnection>();
  /** Passive opens waiting for the host's connect (SYN-PENDING), oldest first. */
  private readonly synPending = new Set<TcpConnection>();
  /** Passive opens answered and waiting for the guest's ACK (SYN-RECEIVED), oldest first. */
  private readonly synReceived = new Set<TcpConnection>();
  /** Check values of SYNs refused by overCap, by a hash of their tuple; null until the first. */
  private refusedSyns: Uint32Array | null = null;
  /** The storage of every connection's buffers (TcpConfig.bufferBudget). */
  readonly budget: BufferBudget;
  private readonly view = new TcpView();
  private readonly seg = new TcpSegment();
  private readonly txOpts = new TcpOptions();
  private readonly sackScratch = new Uint32Array(8);
  private readonly fireTimer = (c: TcpConnection): void => {
    try {
      c.onTimer(this.now);
    } catch (e) {
      this.faulted(c, e);
    }
  };
  private now = 0;

  constructor(
    private readonly egress: Egress,
    private readonly stats: Stats,
    readonly cfg: TcpConfig,
    private readonly events: TcpEvents,
    private readonly icmp: TcpIcmpErrors,
    /** Keyed ISNs, timestamp offsets, ephemeral ports and the table's hash. */
    private readonly secret: FlowSecret,
  ) {
    this.table = new FlowTable(secret);
    this.budget = new BufferBudget(cfg.bufferBudget, () => stats.limit("tcp-buffer-bytes"));
  }

  /** Live connections (all states but CLOSED). */
  get connectionCount(): number {
    return this.table.size;
  }

  /** Every live connection (for /debug and tests). */
  connections(): IterableIterator<TcpConnection> {
    return this.table.values();
  }

  /** Called by a connection entering CLOSED. */
  remove(c: TcpConnection): void {
    this.table.remove(c);
    this.timers.remove(c);
    this.timeWait.delete(c);
  }

  // =====================================================================
  // Input
  // =====================================================================

  /** Fills the reused segment record from the attached view. */
  private parse(): TcpSegment {
    const v = this.view;
    const seg = this.seg;
    seg.seq = v.seq;
    seg.ack = v.ack;
    seg.flags = v.flags;
    seg.window = v.window;
    seg.badOptions = v.headerLen > TCP_HEADER && parseTcpOptions(v, seg.options) !== WireError.Ok;
    if (v.headerLen === TCP_HEADER) seg.options.reset();
    seg.buf = v.buf;
    seg.payloadOff = v.payloadOff;
    seg.payloadLen = v.payloadLen;
    return seg;
  }

  inputV4(src: number, dst: number, buf: Uint8Array, off: number, len: number, meta: RxMeta, now: number): void {
    this.now = now;
    const v = this.view;
    if (v.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("tcp-malformed");
      return;
    }
    if (!meta.checksumTrusted && !v.verifyChecksumV4(src, dst)) {
      this.stats.drop("tcp-bad-checksum");
      return;
    }
    const sport = v.srcPort;
    const dport = v.dstPort;
    const c = this.table.findV4(dst, dport, src, sport);
    const seg = this.parse();
    let verdict = this.demux(c, seg, sport, dport);
    if (verdict === FULL) verdict = this.overCap(this.secret.flowHashV4(dst, dport, src, sport), seg.seq);
    if (verdict === DELIVER) this.deliver(c!, seg, now);
    else if (verdict === RESET) this.replyRstV4(src, dst, sport, dport, seg, now);
    else if (verdict === OPEN) {
      const conn = new TcpConnection(this, {
        family: 4,
        destV4: dst,
        guestV4: src,
        destV6: null,
        guestV6: null,
        destPort: dport,
        guestPort: sport,
        passive: true,
        mss: this.maxSendMss(4),
        cfg: this.cfg,
      });
      this.passiveOpen(conn, seg, now);
    }
  }

  inputV6(buf: Uint8Array, srcOff: number, dstOff: number, off: number, len: number, meta: RxMeta, now: number): void {
    this.now = now;
    const v = this.view;
    if (v.attach(buf, off, len) !== WireError.Ok) {
      this.stats.drop("tcp-malformed");
      return;
    }
    if (!meta.checksumTrusted && !v.verifyChecksumV6(buf, srcOff, dstOff)) {
      this.stats.drop("tcp-bad-checksum");
      return;
    }
    const sport = v.srcPort;
    const dport = v.dstPort;
    const c = this.table.findV6(buf, dstOff, dport, buf, srcOff, sport);
    const seg = this.parse();
    let verdict = this.demux(c, seg, sport, dport);
    if (verdict === FULL) verdict = this.overCap(this.secret.flowHashV6(buf, dstOff, dport, buf, srcOff, sport), seg.seq);
    if (verdict === DELIVER) this.deliver(c!, seg, now);
    else if (verdict === RESET) this.replyRstV6(buf, srcOff, dstOff, sport, dport, seg, now);
    else if (verdict === OPEN) {
      const conn = new TcpConnection(this, {
        family: 6,
        destV4: 0,
        guestV4: 0,
        destV6: buf.slice(dstOff, dstOff + 16),
        guestV6: buf.slice(srcOff, srcOff + 16),
        destPort: dport,
        guestPort: sport,
        passive: true,
        mss: this.maxSendMss(6),
        cfg: this.cfg,
      });
      this.passiveOpen(conn, seg, now);
    }
  }

  /**
   * A new SYN for a tuple in TIME-WAIT may start a new connection when it
   * is beyond the old one's sequence space (RFC 9293 §3.10.7.4, RFC 6191).
   */
  private reuseTimeWait(c: TcpConnection, seg: TcpSegment): boolean {
    if (c.state !== TcpState.TimeWait || (seg.flags & (SYN | ACK | RST | FIN)) !== SYN) return false;
    if (!seqGt(seg.seq, c.rcvNxt)) return false;
    c.terminate("closed");
    return true;
  }

  /**
   * What a well-formed segment does, given the connection its tuple names
   * (if any): goes to that connection, opens a new one (a lone SYN; checked
   * here, before anything is allocated for it), is answered with a RST, or
   * is dropped. FULL: a lone SYN while every place for handshakes waiting
   * for the host, or for SYN-RECEIVED connections, is taken (overCap).
   *
   * A SYN beyond the cap on connections in all is dropped, not reset: the
   * guest retries after its SYN timeout, as when a listen queue is full.
   * (A RST would end the guest's connect() at once.)
   */
  private demux(c: TcpConnection | null, seg: TcpSegment, sport: number, dport: number): Verdict {
    if (c !== null && !this.reuseTimeWait(c, seg)) return DELIVER;
    if ((seg.flags & (SYN | ACK | RST | FIN)) !== SYN) return RESET;
    if (dport === 0 || sport === 0) {
      this.stats.drop("tcp-port-zero");
      return DROP;
    }
    const cap = this.cfg.maxSynReceived;
    if (this.synPending.size >= cap || this.synReceived.size >= cap) return FULL;
    return this.roomForNewConnection();
  }

  /**
   * A SYN while the handshake places are all taken. A SYN-flood's forged
   * SYNs are each sent once; a live guest sends its SYN again after its
   * timeout (the same tuple and ISN). So a SYN is refused (dropped, the
   * cheap answer, which holds no host connection) the first time, and
   * remembered by a keyed hash of its tuple and ISN; when it comes again
   * it is admitted by evicting the oldest half-open connection of each
   * full stage (evictHalfOpen). A flood of forged SYNs cannot lock the
   * guest's own connections out (RFC 4987 §3.4-3.5: a SYN cache that
   * drops its oldest entry), does not turn into one host connection per
   * forged SYN, and evicts nothing itself: the guest's handshake, once
   * admitted, is not pushed out by the flood while its ACK is on the way.
   */
  private overCap(flowHash: number, seq: number): Verdict {
    const slots = (this.refusedSyns ??= new Uint32Array(REFUSED_SYN_SLOTS));
    const i = flowHash & (REFUSED_SYN_SLOTS - 1);
    // The index holds bits of the tuple's hash; the check, the ISN mixed
    // with it (a forged SYN's random ISN matches with odds 2^-32). Never 0,
    // which marks a free slot.
    const check = (Math.imul(seq ^ flowHash, 0x9e3779b1) | 1) >>> 0;
    const cap = this.cfg.maxSynReceived;
    const pendingFull = this.synPending.size >= cap;
    const receivedFull = this.synReceived.size >= cap;
    if (slots[i] !== check) {
      slots[i] = check;
      this.stats.drop("tcp-handshake-limit");
      this.stats.limit(pendingFull ? "tcp-syn-pending" : "tcp-syn-received");
      return DROP;
    }
    slots[i] = 0;
    if (pendingFull) {
      this.evictHalfOpen(this.synPending);
      this.stats.limit("tcp-syn-pending");
    }
    if (receivedFull) {
      this.evictHalfOpen(this.synReceived);
      this.stats.limit("tcp-syn-received");
    }
    return this.roomForNewConnection();
  }

  /** OPEN when a new connection fits under cfg.maxConnections (roomForConnection), else DROP, counted. */
  private roomForNewConnection(): Verdict {
    if (this.roomForConnection()) return OPEN;
    this.stats.drop("tcp-connection-limit");
    return DROP;
  }

  /**
   * Whether a new connection fits under cfg.maxConnections, ending the
   * oldest TIME-WAIT connection to make room if need be (it holds no
   * host resources; see enteredTimeWait). Counts the limit when not.
   */
  private roomForConnection(): boolean {
    if (this.table.size < this.cfg.maxConnections) return true;
    const oldest = this.timeWait.values().next().value;
    if (oldest !== undefined) {
      oldest.terminate("closed");
      if (this.table.size < this.cfg.maxConnections) return true;
    }
    this.stats.limit("tcp-connections");
    return false;
  }

  /**
   * Ends the oldest handshake of `set` to make room for a new one. Nothing
   * is sent: its source is most likely forged, and a real guest that is
   * evicted hears a RST when its ACK arrives (or, still in SYN-PENDING, is
   * answered when it sends its SYN again). The host side hears "timeout",
   * as when the handshake's retries run out: it abandons the connect or
   * resets the connection it made.
   */
  private evictHalfOpen(set: Set<TcpConnection>): void {
    const oldest = set.values().next().value;
    if (oldest !== undefined) oldest.terminate("timeout");
  }

  /**
   * A passive open entered (+1) or left (-1) SYN-RECEIVED. (The handshakes
   * waiting for the host when the places filled may all be accepted: at
   * most 2 * maxSynReceived - 1 are SYN-RECEIVED.)
   */
  synReceivedChanged(conn: TcpConnection, delta: 1 | -1): void {
    if (delta > 0) this.synReceived.add(conn);
    else this.synReceived.delete(conn);
  }

  /**
   * More than half of maxSynReceived connections are SYN-RECEIVED: their
   * SYN-ACKs are retried less (timers.ts, SYNACK_TRIES_UNDER_PRESSURE).
   */
  get synReceivedPressure(): boolean {
    return this.synReceived.size > this.cfg.maxSynReceived / 2;
  }

  /** A segment to its connection; a throw there (a bug, ours or the host's) ends only that connection. */
  private deliver(c: TcpConnection, seg: TcpSegment, now: number): void {
    try {
      c.input(seg, now);
    } catch (e) {
      this.faulted(c, e);
    }
  }

  private passiveOpen(conn: TcpConnection, seg: TcpSegment, now: number): void {
    conn.tsOffset = this.secret.tcpTsOffset(conn);
    conn.initFromSyn(seg, this.secret.tcpIsn(conn, now), now);
    this.table.insert(conn);
    this.synPending.add(conn);
    try {
      this.events.tcpConnectRequest(conn);
    } catch (e) {
      this.faulted(conn, e);
    }
  }

  /**
   * Processing for `c` threw (a bug, in the engine or in the host's
   * handler): its state cannot be trusted, so it ends with a RST (a SYN
   * not answered yet is refused), the host side hears "aborted" and
   * resets its peer, and the fault is counted. Every other connection
   * goes on. Should the abort throw as well, the connection is still
   * taken out of the table and the timers.
   */
  private faulted(c: TcpConnection, error: unknown): void {
    this.stats.fault("tcp-connection", error);
    try {
      if (c.state === TcpState.SynPending) this.refuse(c, this.now);
      else c.abort(this.now, "aborted");
    } catch (e) {
      this.stats.fault("tcp-connection", e);
      this.remove(c);
    }
  }

  /** A connection left SYN-PENDING (accepted, refused or gone). */
  handshakeDone(conn: TcpConnection): void {
    this.synPending.delete(conn);
  }

  /** Host connect() refused: RST the guest's SYN (it sees ECONNREFUSED at once). */
  refuse(conn: TcpConnection, now: number): void {
    if (conn.state !== TcpState.SynPending) return;
    this.sendSegment(conn, RST | ACK, 0, 0, 0, now);
    conn.terminate("refused");
  }

  /**
   * Host unreachable (or the connect timed out): an ICMP destination
   * unreachable quoting the guest's SYN, so its connect() fails at once
   * with EHOSTUNREACH rather than after its own SYN retries.
   */
  unreachable(conn: TcpConnection, now: number): void {
    if (conn.state !== TcpState.SynPending) return;
    this.icmp.tcpUnreachable(conn, now);
    conn.terminate("refused");
  }

  /**
   * An ICMP error from the guest about one of our segments (RFC 1122
   * §4.2.3.9). Believed only when it quotes a live connection and a
   * sequence number in flight, SND.UNA =< SEG.SEQ < SND.MAX (RFC 5927
   * §4.1): blind senders cannot guess one. Then:
   *  - too big (RFC 1191, RFC 8201): smaller segments from now on, and
   *    what was in flight goes again in segments that fit;
   *  - a hard error while opening (the guest's port is closed or
   *    filtered): the connection is refused at once, as by a RST, instead
   *    of after every SYN retry;
   *  - anything else, or later: recorded only; RFC 1122 forbids aborting
   *    for soft errors, and RFC 5461 keeps established connections through
   *    hard ones, as Linux does.
   */
  icmpError(e: IcmpTcpError, now: number): void {
    this.now = now;
    const c =
      e.family === 4
        ? this.table.findV4(e.destV4, e.destPort, e.guestV4, e.guestPort)
        : this.table.findV6(e.buf, e.destOff, e.destPort, e.buf, e.guestOff, e.guestPort);
    if (c === null || !seqGe(e.seq, c.sndUna) || !seqLt(e.seq, c.sndMax)) {
      this.stats.drop("tcp-icmp-unmatched");
      return;
    }
    if (e.kind === IcmpErrorKind.TooBig) {
      const v4 = c.family === 4;
      const mtu = Math.max(e.mtu, v4 ? MIN_PMTU_V4 : MIN_PMTU_V6);
      c.lowerMss(mtu - (v4 ? IPV4_HEADER : IPV6_HEADER) - TCP_HEADER, now);
      return;
    }
    if (e.kind === IcmpErrorKind.Hard && (c.state === TcpState.SynSent || c.state === TcpState.SynReceived)) {
      this.stats.bump("tcp-icmp-refused");
      c.terminate("refused");
      return;
    }
    this.stats.bump("tcp-icmp-soft-error");
  }

  // =====================================================================
  // Active open (toward the guest, for -L)
  // =====================================================================

  /**
   * Opens a connection to the guest from destIp:destPort (0: pick a free
   * port, which must exist: a caller that can run out asks freePortV4 first).
   */
  connectV4(destIp: number, destPort: number, guestIp: number, guestPort: number, handler: TcpHandler, now: number): TcpConnection {
    const port = destPort || this.freePortV4(destIp, guestIp, guestPort);
    if (port === 0) throw new Error("no free local port toward the guest");
    const conn = new TcpConnection(this, {
      family: 4,
      destV4: destIp,
      guestV4: guestIp,
      destV6: null,
      guestV6: null,
      destPort: port,
      guestPort,
      passive: false,
      mss: this.maxSendMss(4),
      cfg: this.cfg,
    });
    return this.activeOpen(conn, handler, !ipv4IsMulticast(guestIp) && !ipv4IsLimitedBroadcast(guestIp), now);
  }

  connectV6(dest: Uint8Array, destPort: number, guest: Uint8Array, guestPort: number, handler: TcpHandler, now: number): TcpConnection {
    const port = destPort || this.freePortV6(dest, guest, guestPort);
    if (port === 0) throw new Error("no free local port toward the guest");
    const conn = new TcpConnection(this, {
      family: 6,
      destV4: 0,
      guestV4: 0,
      destV6: dest.slice(0, 16),
      guestV6: guest.slice(0, 16),
      destPort: port,
      guestPort,
      passive: false,
      mss: this.maxSendMss(6),
      cfg: this.cfg,
    });
    return this.activeOpen(conn, handler, !ipv6IsMulticast(guest), now);
  }

  /**
   * Our SYN out for a connection the host side opens toward the guest
   * (-L). Toward an address that is not unicast (`unicast` false:
   * multicast, or the limited broadcast), or beyond cfg.maxConnections,
   * the open is refused: the handler hears "refused" at the next poll.
   */
  private activeOpen(conn: TcpConnection, handler: TcpHandler, unicast: boolean, now: number): TcpConnection {
    conn.handler = handler;
    this.now = now;
    if (!unicast) {
      // RFC 9293 §3.9.1.1 (MUST-46): an OPEN toward a broadcast or
      // multicast address is an error. -L checks literal targets when
      // parsing; this catches names that resolved to such an address.
      this.stats.drop("tcp-open-not-unicast");
      conn.refuseOpen(now);
      return conn;
    }
    if (!this.roomForConnection()) {
      conn.refuseOpen(now);
      return conn;
    }
    this.table.insert(conn);
    conn.tsOffset = this.secret.tcpTsOffset(conn);
    conn.connect(this.secret.tcpIsn(conn, now), now);
    return conn;
  }

  /** A free dest port from destIp toward guestIp:guestPort (RFC 6056 algorithm 4), or 0 when all are taken. */
  freePortV4(destIp: number, guestIp: number, guestPort: number): number {
    return this.secret.ephemeralPortV4(this.table, destIp, guestIp, guestPort);
  }

  freePortV6(dest: Uint8Array, guest: Uint8Array, guestPort: number): number {
    return this.secret.ephemeralPortV6(this.table, dest, guest, guestPort);
  }

  // =====================================================================
  // Output (TcpOutput, called by connections)
  // =====================================================================

  /** Our MSS for a family: the MTU less IP and TCP headers (RFC 9293 §3.7.1). */
  private maxSendMss(family: 4 | 6): number {
    const mtu = this.egress.caps.mtu;
    return Math.min(65535, mtu - (family === 4 ? IPV4_HEADER : IPV6_HEADER) - TCP_HEADER);
  }

  /**
   * Payload of one segment we build: a TSO super-segment when the device
   * segments for us (the guest kernel receives it whole, as if coalesced),
   * else one MSS.
   */
  maxSegmentPayload(conn: TcpConnection): number {
    const per = conn.sender.segmentPayloadMax();
    const caps = this.egress.caps;
    if (!caps.txTcpSegmentation || !caps.txChecksumOffload) return per;
    const hdr = (conn.family === 4 ? IPV4_HEADER : IPV6_HEADER) + TCP_HEADER + 40;
    const max = 65535 - hdr;
    return Math.max(per, max - (max % per));
  }

  sendControl(conn: TcpConnection, flags: number, seq: number, now: number): void {
    this.sendSegment(conn, flags, seq, 0, 0, now);
  }

  sendData(conn: TcpConnection, seq: number, len: number, push: boolean, now: number): void {
    this.sendSegment(conn, ACK | (push ? 0x08 : 0), seq, len, seqDiffU(seq, conn.sndUna), now);
  }

  /**
   * Builds one segment of `conn` in the egress buffer: header, options,
   * `len` payload bytes copied from the send buffer at `bufOff`, checksum.
   */
  private sendSegment(conn: TcpConnection, flags: number, seq: number, len: number, bufOff: number, now: number): void {
    const eg = this.egress;
    const b = eg.buf;
    const v4 = conn.family === 4;
    const at = v4 ? eg.l4OffV4 : eg.l4OffV6;
    const o = this.txOpts.reset();
    if (flags & SYN) {
      o.mss = conn.rcvMss;
      // Offer everything in our SYN; a SYN-ACK (passive open, or the
      // simultaneous-open SYN-ACK of an active one) carries what was
      // negotiated from the peer's SYN and echoes its timestamp.
      const offerAll = !(flags & ACK);
      if (offerAll || conn.rcvShift > 0 || conn.sndShift > 0) o.windowScale = conn.rcvShift;
      o.sackPermitted = offerAll || conn.sackOk;
      if (offerAll || conn.tsOk) {
        o.hasTimestamps = true;
        o.tsVal = conn.tsNow(now);
        o.tsEcr = flags & ACK ? conn.tsRecentValue() : 0;
      }
    } else if (!(flags & RST)) {
      if (conn.tsOk) {
        o.hasTimestamps = true;
        o.tsVal = conn.tsNow(now);
        o.tsEcr = conn.tsRecentValue();
      }
      if (conn.sackOk && !conn.ooo.isEmpty && flags & ACK) {
        const n = conn.ooo.sackBlocks(this.sackScratch, conn.sackBlockMax);
        for (let i = 0; i < n; i++) o.addSackBlock(this.sackScratch[2 * i]!, this.sackScratch[2 * i + 1]!);
      }
    }
    const optLen = emitTcpOptions(b, at + TCP_HEADER, o);
    const hdr = TCP_HEADER + optLen;
    writeU16(b, at, conn.destPort);
    writeU16(b, at + 2, conn.guestPort);
    writeU32(b, at + 4, seq);
    writeU32(b, at + 8, flags & ACK ? conn.rcvNxt : 0);
    b[at + 12] = (hdr >>> 2) << 4;
    b[at + 13] = flags;
    writeU16(b, at + 14, flags & SYN ? conn.sender.synWindowField() : flags & RST ? 0 : conn.sender.windowField());
    writeU16(b, at + 16, 0);
    writeU16(b, at + 18, 0);
    if (len > 0) conn.sendBuf.copyOut(bufOff, b, at + hdr, len);
    const l4Len = hdr + len;
    const per = conn.sender.segmentPayloadMax();
    if (len > per) {
      const m = eg.meta;
      m.gsoType = v4 ? GSO_TCPV4 : GSO_TCPV6;
      m.gsoSize = per;
      m.hdrLen = at - eg.frameOff + hdr;
    }
    if (v4) {
      eg.checksumV4(conn.destV4, conn.guestV4, IPPROTO_TCP, at, l4Len, 16);
      eg.sendV4(conn.destV4, conn.guestV4, IPPROTO_TCP, l4Len, now);
    } else {
      eg.checksumV6(conn.destV6!, 0, conn.guestV6!, 0, IPPROTO_TCP, at, l4Len, 16);
      eg.sendV6(conn.destV6!, 0, conn.guestV6!, 0, IPPROTO_TCP, l4Len, now);
    }
    if (flags & ACK) conn.sender.noteAckSent();
  }

  /** RST for a segment that belongs to no connection (RFC 9293 §3.10.7.1). */
  private replyRstV4(src: number, dst: number, sport: number, dport: number, seg: TcpSegment, now: number): void {
    if (seg.flags & RST) return;
    this.stats.drop("tcp-no-connection");
    const eg = this.egress;
    const at = eg.l4OffV4;
    this.writeRst(eg.buf, at, dport, sport, seg);
    eg.checksumV4(dst, src, IPPROTO_TCP, at, TCP_HEADER, 16);
    eg.sendV4(dst, src, IPPROTO_TCP, TCP_HEADER, now);
  }

  private replyRstV6(buf: Uint8Array, srcOff: number, dstOff: number, sport: number, dport: number, seg: TcpSegment, now: number): void {
    if (seg.flags & RST) return;
    this.stats.drop("tcp-no-connection");
    const eg = this.egress;
    const at = eg.l4OffV6;
    // The addresses live in the frame, which stays valid during this call.
    this.writeRst(eg.buf, at, dport, sport, seg);
    eg.checksumV6(buf, dstOff, buf, srcOff, IPPROTO_TCP, at, TCP_HEADER, 16);
    eg.sendV6(buf, dstOff, buf, srcOff, IPPROTO_TCP, TCP_HEADER, now);
  }

  private writeRst(b: Uint8Array, at: number, sport: number, dport: number, seg: TcpSegment): void {
    writeU16(b, at, sport);
    writeU16(b, at + 2, dport);
    if (seg.flags & ACK) {
      writeU32(b, at + 4, seg.ack);
      writeU32(b, at + 8, 0);
      b[at + 13] = RST;
    } else {
      writeU32(b, at + 4, 0);
      writeU32(b, at + 8, seqAdd(seg.seq, seg.seqLen));
      b[at + 13] = RST | ACK;
    }
    b[at + 12] = 5 << 4;
    writeU16(b, at + 14, 0);
    writeU16(b, at + 16, 0);
    writeU16(b, at + 18, 0);
  }

  // =====================================================================
  // Timers and deferred ACKs
  // =====================================================================

  schedule(c: TcpConnection): void {
    this.timers.update(c);
  }

  markDirty(c: TcpConnection): void {
    if (c.dirty) return;
    c.dirty = true;
    this.dirty.push(c);
  }

  enteredTimeWait(c: TcpConnection): void {
    this.timeWait.add(c);
    if (this.timeWait.size > MAX_TIME_WAIT) {
      const oldest = this.timeWait.values().next().value!;
      oldest.terminate("closed");
    }
  }

  countDrop(reason: string): void {
    this.stats.drop(reason);
  }

  /** Sends the ACKs owed after a batch of input (coalescing per batch). */
  flush(now: number): void {
    this.now = now;
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) {
      const c = d[i]!;
      c.dirty = false;
      try {
        c.sender.flushAck(now);
      } catch (e) {
        this.faulted(c, e);
      }
    }
    d.length = 0;
  }

  /** Runs due timers; returns the next deadline. */
  poll(now: number): number {
    this.now = now;
    this.timers.run(now, this.fireTimer);
    return this.timers.peek();
  }
}

function seqDiffU(seq: number, base: number): number {
  return (seq - base) | 0;
}
