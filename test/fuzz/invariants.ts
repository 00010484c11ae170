// The properties a fuzz run checks, one function per property. Each throws
// a FuzzFailure naming itself; the runner reports the step that broke it.
//
// Three kinds: checks of every frame the engine transmits (it parses, its
// checksums hold, it fits the link, it carries no stale bytes), checks
// of the engine's state after every step (tables within their caps,
// buffer accounting consistent and non-negative), and a bound on the
// time one step takes.
import type { Stack } from "../../src/stack/stack.ts";
import type { TxMeta } from "../../src/stack/device.ts";
import { MAX_TIME_WAIT } from "../../src/stack/tcp/layer.ts";
import { TcpState } from "../../src/stack/tcp/connection.ts";
import { MAX_PIECES as ASSEMBLER_MAX_PIECES } from "../../src/stack/tcp/assembler.ts";
import { MAX_DATAGRAMS } from "../../src/stack/reassembly.ts";
import {
  ETH_ARP,
  ETH_IPV4,
  ETH_IPV6,
  EXT_FRAGMENT,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  finish,
  fold,
  get16,
  get32,
  pseudoV4,
  pseudoV6,
  sum16,
} from "./packets.ts";

export class FuzzFailure extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

function fail(invariant: string, detail: string): never {
  throw new FuzzFailure(invariant, detail);
}

// =====================================================================
// Stale bytes
// =====================================================================

/**
 * The taint marker: the priming phase fills the engine's buffers with it,
 * the main phase never sends it, so seeing it again means the engine
 * handed out bytes left over from earlier traffic. 8 bytes, so that any
 * 8-aligned piece of a primed buffer is exactly one copy.
 */
export const TAINT = Buffer.from("STALE!!!", "latin1");

export function containsTaint(b: Uint8Array, off: number, len: number): boolean {
  if (len < TAINT.length) return false;
  return Buffer.from(b.buffer, b.byteOffset + off, len).indexOf(TAINT) >= 0;
}

/** No output frame, and nothing delivered to the host, holds the taint marker. */
export function noStaleBytes(where: string, b: Uint8Array, off: number, len: number): void {
  if (containsTaint(b, off, len)) {
    const at = Buffer.from(b.buffer, b.byteOffset + off, len).indexOf(TAINT);
    fail("no-stale-bytes", `${where}: ${len} bytes hold the taint marker at ${at}`);
  }
}

// =====================================================================
// Output frames
// =====================================================================

/** What the guest model learns from one output frame (parsed, checked). */
export interface OutFrame {
  dev: number;
  kind: "arp" | "ip";
  family: 4 | 6;
  proto: number;
  /** Offsets into `buf` (valid only during the transmit call). */
  buf: Uint8Array;
  l3: number;
  l4: number;
  l4Len: number;
  /** Unfragmented (or GSO) packet: the L4 header is at l4. */
  whole: boolean;
}

export interface LinkSpec {
  ethernet: boolean;
  mtu: number;
  csumOffload: boolean;
  tso: boolean;
  mac: Uint8Array;
}

/**
 * Parses one transmitted frame and runs every per-frame invariant on it
 * (the stale-byte check once `armed`, after the priming phase).
 * Fragments are collected in `frags` and their datagram's L4 checksum is
 * verified once the last one is seen.
 */
export function checkOutputFrame(
  dev: number,
  link: LinkSpec,
  buf: Uint8Array,
  off: number,
  len: number,
  meta: TxMeta | null,
  frags: OutputFragments,
  armed: boolean,
): OutFrame {
  const linkHdr = link.ethernet ? 14 : 0;
  const gso = meta !== null && meta.gsoType !== 0;
  frameFitsLink(link, len, meta);
  if (armed) noStaleBytes("output frame", buf, off, len);
  let type: number;
  if (link.ethernet) {
    if (len < 14) fail("frame-parses", `ethernet frame of ${len} bytes`);
    for (let i = 0; i < 6; i++) if (buf[off + 6 + i] !== link.mac[i]) fail("frame-parses", "source MAC is not ours");
    type = get16(buf, off + 12);
  } else {
    type = len > 0 && buf[off]! >>> 4 === 6 ? ETH_IPV6 : ETH_IPV4;
  }
  const l3 = off + linkHdr;
  const ipLen = len - linkHdr;
  if (type === ETH_ARP) {
    arpParses(link, buf, l3, ipLen, meta);
    return { dev, kind: "arp", family: 4, proto: 0, buf, l3, l4: l3, l4Len: ipLen, whole: true };
  }
  if (type === ETH_IPV4) return checkIpv4(dev, link, buf, l3, ipLen, meta, gso, frags);
  if (type === ETH_IPV6) return checkIpv6(dev, link, buf, l3, ipLen, meta, gso, frags);
  return fail("frame-parses", `ethertype 0x${type.toString(16)}`);
}

/** Non-GSO frames fit the MTU; GSO frames cut into segments that do. */
export function frameFitsLink(link: LinkSpec, len: number, meta: TxMeta | null): void {
  const linkHdr = link.ethernet ? 14 : 0;
  if (meta === null || meta.gsoType === 0) {
    if (len > link.mtu + linkHdr) fail("frame-fits-mtu", `${len}-byte frame on MTU ${link.mtu} (+${linkHdr})`);
    return;
  }
  if (!link.tso) fail("frame-fits-mtu", "GSO frame on a device without segmentation offload");
  if (meta.gsoSize <= 0) fail("frame-fits-mtu", `GSO size ${meta.gsoSize}`);
  if (meta.hdrLen + meta.gsoSize > link.mtu + linkHdr) {
    fail("frame-fits-mtu", `GSO segment ${meta.hdrLen}+${meta.gsoSize} on MTU ${link.mtu} (+${linkHdr})`);
  }
  if (len - linkHdr > 65535 + 40) fail("frame-fits-mtu", `GSO frame of ${len} bytes`);
}

function arpParses(link: LinkSpec, b: Uint8Array, at: number, len: number, meta: TxMeta | null): void {
  if (!link.ethernet) fail("frame-parses", "ARP on a raw-IP device");
  if (meta !== null) fail("frame-parses", "offload metadata on an ARP frame");
  if (len !== 28) fail("frame-parses", `ARP of ${len} bytes`);
  if (get16(b, at) !== 1 || get16(b, at + 2) !== ETH_IPV4 || b[at + 4] !== 6 || b[at + 5] !== 4) fail("frame-parses", "ARP header");
  const op = get16(b, at + 6);
  if (op !== 1 && op !== 2) fail("frame-parses", `ARP op ${op}`);
}

function checkIpv4(dev: number, link: LinkSpec, b: Uint8Array, ip: number, len: number, meta: TxMeta | null, gso: boolean, frags: OutputFragments): OutFrame {
  if (len < 20 || b[ip]! >>> 4 !== 4) fail("frame-parses", `IPv4 packet of ${len} bytes`);
  const hl = (b[ip]! & 15) * 4;
  if (hl < 20 || hl > len) fail("frame-parses", `IPv4 header length ${hl}`);
  if (get16(b, ip + 2) !== len) fail("frame-parses", `IPv4 total length ${get16(b, ip + 2)} in a ${len}-byte packet`);
  if (finish(sum16(b, ip, hl)) !== 0) fail("checksums-correct", "IPv4 header checksum");
  const proto = b[ip + 9]!;
  const ff = get16(b, ip + 6);
  const more = (ff & 0x2000) !== 0;
  const fragOff = (ff & 0x1fff) * 8;
  const l4 = ip + hl;
  const l4Len = len - hl;
  const src = get32(b, ip + 12);
  const dst = get32(b, ip + 16);
  if (more || fragOff !== 0) {
    if (meta !== null) fail("frame-parses", "offload metadata on an IPv4 fragment");
    if (more && l4Len % 8 !== 0) fail("frame-parses", `IPv4 fragment of ${l4Len} bytes with MF`);
    const whole = frags.add(`4/${get16(b, ip + 4)}/${src}/${dst}/${proto}`, fragOff, more, b, l4, l4Len);
    if (whole !== null) l4ChecksumOk(proto, whole, 0, whole.length, pseudoV4(src, dst, proto, whole.length), null, 0, false);
    return { dev, kind: "ip", family: 4, proto, buf: b, l3: ip, l4, l4Len, whole: false };
  }
  if (proto !== PROTO_TCP && proto !== PROTO_UDP && proto !== PROTO_ICMP) fail("frame-parses", `IPv4 protocol ${proto}`);
  l4ChecksumOk(proto, b, l4, l4Len, pseudoV4(src, dst, proto, l4Len), meta, l4 - ip + (link.ethernet ? 14 : 0), gso);
  return { dev, kind: "ip", family: 4, proto, buf: b, l3: ip, l4, l4Len, whole: true };
}

function checkIpv6(dev: number, link: LinkSpec, b: Uint8Array, ip: number, len: number, meta: TxMeta | null, gso: boolean, frags: OutputFragments): OutFrame {
  if (len < 40 || b[ip]! >>> 4 !== 6) fail("frame-parses", `IPv6 packet of ${len} bytes`);
  if (get16(b, ip + 4) !== len - 40) fail("frame-parses", `IPv6 payload length ${get16(b, ip + 4)} in a ${len}-byte packet`);
  let proto = b[ip + 6]!;
  let l4 = ip + 40;
  let l4Len = len - 40;
  if (proto === EXT_FRAGMENT) {
    if (meta !== null) fail("frame-parses", "offload metadata on an IPv6 fragment");
    if (l4Len < 8) fail("frame-parses", "truncated Fragment header");
    const w = get16(b, l4 + 2);
    const more = (w & 1) !== 0;
    const fragOff = w & 0xfff8;
    proto = b[l4]!;
    const key = `6/${get32(b, l4 + 4)}/${proto}`;
    l4 += 8;
    l4Len -= 8;
    if (more && l4Len % 8 !== 0) fail("frame-parses", `IPv6 fragment of ${l4Len} bytes with M`);
    const whole = frags.add(key, fragOff, more, b, l4, l4Len);
    if (whole !== null) l4ChecksumOk(proto, whole, 0, whole.length, pseudoV6(b, ip + 8, b, ip + 24, proto, whole.length), null, 0, false);
    return { dev, kind: "ip", family: 6, proto, buf: b, l3: ip, l4, l4Len, whole: false };
  }
  if (proto !== PROTO_TCP && proto !== PROTO_UDP && proto !== PROTO_ICMPV6) fail("frame-parses", `IPv6 next header ${proto}`);
  l4ChecksumOk(proto, b, l4, l4Len, pseudoV6(b, ip + 8, b, ip + 24, proto, l4Len), meta, l4 - ip + (link.ethernet ? 14 : 0), gso);
  return { dev, kind: "ip", family: 6, proto, buf: b, l3: ip, l4, l4Len, whole: true };
}

const csumScratch = new Uint8Array(65536 + 64);

/**
 * The L4 header parses and its checksum holds. With a partial checksum
 * (TxMeta.csumStart) the field holds the pseudo-header seed: finish it
 * the way the device does (sum from csumStart to the end, complement)
 * and check the result.
 */
function l4ChecksumOk(proto: number, b: Uint8Array, l4: number, l4Len: number, ph: number, meta: TxMeta | null, l4FromFrame: number, gso: boolean): void {
  const csumRel = proto === PROTO_TCP ? 16 : proto === PROTO_UDP ? 6 : 2;
  const minLen = proto === PROTO_TCP ? 20 : proto === PROTO_UDP ? 8 : proto === PROTO_ICMP ? 8 : 4;
  if (l4Len < minLen) fail("frame-parses", `protocol ${proto} segment of ${l4Len} bytes`);
  if (proto === PROTO_TCP) {
    const hl = (b[l4 + 12]! >>> 4) * 4;
    if (hl < 20 || hl > l4Len) fail("frame-parses", `TCP data offset ${hl} in ${l4Len} bytes`);
    if (gso && meta!.hdrLen !== l4FromFrame + hl) fail("frame-parses", `GSO hdrLen ${meta!.hdrLen}, headers end at ${l4FromFrame + hl}`);
  } else if (gso) {
    fail("frame-parses", `GSO metadata on protocol ${proto}`);
  }
  if (proto === PROTO_UDP && get16(b, l4 + 4) !== l4Len) fail("frame-parses", `UDP length ${get16(b, l4 + 4)} in ${l4Len} bytes`);
  if (proto === PROTO_ICMP) {
    if (meta !== null && meta.csumStart !== 0) fail("checksums-correct", "partial checksum on ICMPv4 (no pseudo-header)");
    if (finish(sum16(b, l4, l4Len)) !== 0) fail("checksums-correct", "ICMPv4 checksum");
    return;
  }
  const field = get16(b, l4 + csumRel);
  if (meta !== null && meta.csumStart !== 0) {
    if (meta.csumStart !== l4FromFrame || meta.csumOffset !== csumRel) {
      fail("checksums-correct", `partial checksum at ${meta.csumStart}+${meta.csumOffset}, L4 header at ${l4FromFrame}`);
    }
    // The device: sum from csumStart (seed included), store the complement.
    csumScratch.set(b.subarray(l4, l4 + l4Len), 0);
    let c = finish(sum16(csumScratch, 0, l4Len));
    if (c === 0) c = 0xffff;
    csumScratch[csumRel] = c >>> 8;
    csumScratch[csumRel + 1] = c;
    if (finish(sum16(csumScratch, 0, l4Len, ph)) !== 0) {
      fail("checksums-correct", `protocol ${proto} partial checksum seed 0x${field.toString(16)}, pseudo-header 0x${fold(ph).toString(16)}`);
    }
    return;
  }
  if (gso) fail("checksums-correct", "GSO frame without a partial checksum");
  if (proto === PROTO_UDP && field === 0) fail("checksums-correct", "UDP checksum 0 (we always send one)");
  if (finish(sum16(b, l4, l4Len, ph)) !== 0) fail("checksums-correct", `protocol ${proto} checksum`);
}

/** The engine's own fragments, put back together to check their L4 checksum. */
export class OutputFragments {
  private readonly pending = new Map<string, { data: Uint8Array; have: number; total: number }>();

  /** Returns the whole L4 datagram once every byte of it has been seen. */
  add(key: string, off: number, more: boolean, b: Uint8Array, at: number, len: number): Uint8Array | null {
    let p = this.pending.get(key);
    if (p === undefined) {
      if (this.pending.size >= 64) this.pending.clear();
      p = { data: new Uint8Array(65536), have: 0, total: -1 };
      this.pending.set(key, p);
    }
    if (off + len > 65535) fail("frame-parses", `fragment ends at ${off + len}`);
    p.data.set(b.subarray(at, at + len), off);
    p.have += len;
    if (!more) p.total = off + len;
    if (p.total < 0 || p.have < p.total) return null;
    this.pending.delete(key);
    if (p.have !== p.total) fail("frame-parses", `fragments of ${p.have} bytes for a ${p.total}-byte datagram`);
    return p.data.subarray(0, p.total);
  }
}

// =====================================================================
// Engine state
// =====================================================================

/**
 * TCP: pending handshakes, TIME-WAIT and the connection table agree with
 * the connections' states and stay within their caps. (The table of live
 * connections itself has no cap.)
 */
export function tcpTablesWithinCaps(stack: Stack): void {
  const layer = stack.tcp;
  let pending = 0;
  let synReceived = 0;
  let timeWait = 0;
  let live = 0;
  for (const c of layer.connections()) {
    live++;
    if (c.state === TcpState.SynPending) pending++;
    else if (c.state === TcpState.SynReceived && c.passive) synReceived++;
    else if (c.state === TcpState.TimeWait) timeWait++;
    else if (c.state === TcpState.Closed) fail("tables-within-caps", "a CLOSED connection is still in the TCP table");
  }
  if (live !== layer.connectionCount) fail("tables-within-caps", `TCP table size ${layer.connectionCount}, ${live} connections in it`);
  const counted = layer["synPending"].size;
  if (counted !== pending) fail("tables-within-caps", `SYN-PENDING set holds ${counted}, ${pending} connections in SYN-PENDING`);
  if (pending > layer.cfg.maxSynReceived) fail("tables-within-caps", `${pending} pending handshakes (cap ${layer.cfg.maxSynReceived})`);
  const answered = layer["synReceived"].size;
  if (answered !== synReceived) fail("tables-within-caps", `SYN-RECEIVED set holds ${answered}, ${synReceived} passive opens in SYN-RECEIVED`);
  if (answered >= 2 * layer.cfg.maxSynReceived) fail("tables-within-caps", `${answered} SYN-RECEIVED connections (cap ${layer.cfg.maxSynReceived}, and as many waiting for the host)`);
  const tw = layer["timeWait"].size;
  if (tw !== timeWait) fail("tables-within-caps", `TIME-WAIT set holds ${tw}, ${timeWait} connections in TIME-WAIT`);
  if (tw > MAX_TIME_WAIT) fail("tables-within-caps", `${tw} connections in TIME-WAIT (cap ${MAX_TIME_WAIT})`);
}

/** UDP: the flow table holds exactly the open flows. (It has no cap.) */
export function udpTableConsistent(stack: Stack): void {
  let n = 0;
  for (const f of stack.udp.flows()) {
    n++;
    if (!f.open) fail("tables-within-caps", "a closed UDP flow is still in the table");
  }
  if (n !== stack.udp.flowCount) fail("tables-within-caps", `UDP table size ${stack.udp.flowCount}, ${n} flows in it`);
}

/** Neighbour table and the queue of frames waiting for a MAC: within caps, counter consistent. */
export function neighborsWithinCaps(stack: Stack): void {
  const nb = stack.egress.neighbors;
  // Caps of src/stack/neighbors.ts (not exported): MAX_ENTRIES, MAX_QUEUED, MAX_QUEUED_PER_ADDR.
  const maxEntries = 1024;
  const maxQueued = 64;
  const maxPerAddr = 8;
  if (nb["v4"].size > maxEntries || nb["v6"].size > maxEntries) {
    fail("tables-within-caps", `neighbour table ${nb["v4"].size} v4 / ${nb["v6"].size} v6 entries (cap ${maxEntries})`);
  }
  let queued = 0;
  for (const u of nb["unresolved"].values()) {
    if (u.frames.length > maxPerAddr) fail("tables-within-caps", `${u.frames.length} frames queued for one address (cap ${maxPerAddr})`);
    queued += u.frames.length;
  }
  const counted = nb["queued"];
  if (counted < 0 || counted !== queued) fail("buffers-accounted", `neighbour queue counter ${counted}, ${queued} frames queued`);
  if (queued > maxQueued) fail("tables-within-caps", `${queued} frames wait for a neighbour (cap ${maxQueued})`);
}

/**
 * Reassembly: at most MAX_DATAGRAMS in progress; each one's ranges sorted,
 * disjoint and inside the datagram: none past the end its last fragment
 * set (a datagram counted whole with such a range has a hole).
 */
export function reassemblyAccounted(stack: Stack): void {
  const r = stack["reassembler"];
  const pending = r["pending"];
  if (pending.size > MAX_DATAGRAMS) fail("tables-within-caps", `${pending.size} datagrams in reassembly (cap ${MAX_DATAGRAMS})`);
  for (const p of pending.values()) {
    const rg = p.ranges;
    if (rg.length > 2 * 128) fail("tables-within-caps", `${rg.length / 2} ranges in one datagram (cap 128)`);
    let prevEnd = -1;
    for (let i = 0; i < rg.length; i += 2) {
      const s = rg[i]!;
      const e = rg[i + 1]!;
      if (s <= prevEnd || e <= s || s < 0 || e > 65535) fail("buffers-accounted", `reassembly ranges [${rg.join(",")}]`);
      if (p.total >= 0 && e > p.total) fail("buffers-accounted", `reassembly holds bytes ${s}..${e} past the datagram's end ${p.total}`);
      prevEnd = e;
    }
    if (p.headerLen > 1024) fail("buffers-accounted", `reassembly header of ${p.headerLen} bytes`);
  }
}

/**
 * Per connection: send and receive buffers and the out-of-order queue
 * non-negative, within their storage, consistent with sequence numbers;
 * a finite deadline means a place in the timer heap.
 */
export function tcpBuffersAccounted(stack: Stack): void {
  for (const c of stack.tcp.connections()) {
    const s = c.sendBuf;
    const r = c.rcvBuf;
    if (s.length < 0 || s.length > s.capacity) fail("buffers-accounted", `send buffer length ${s.length}, capacity ${s.capacity}`);
    if (r.length < 0 || r.length > r.capacity) fail("buffers-accounted", `receive buffer length ${r.length}, capacity ${r.capacity}`);
    const ooo = c.ooo;
    let held = 0;
    for (const p of ooo["pieces"]) {
      if (p.len <= 0 || p.len > p.data.length) fail("buffers-accounted", `out-of-order piece of ${p.len} bytes in ${p.data.length}`);
      held += p.len;
    }
    if (ooo.bytes !== held) fail("buffers-accounted", `assembler counts ${ooo.bytes} bytes, its pieces hold ${held}`);
    if (ooo.pieceCount > ASSEMBLER_MAX_PIECES) fail("tables-within-caps", `${ooo.pieceCount} out-of-order pieces (cap ${ASSEMBLER_MAX_PIECES})`);
    // SYN and FIN take a sequence number each but no buffer byte.
    const inFlight = c.inFlight;
    if (c.state !== TcpState.SynPending && (inFlight < 0 || inFlight > s.length + 2)) {
      fail("buffers-accounted", `${c.stateName}: ${inFlight} in flight with ${s.length} bytes in the send buffer`);
    }
    if (c.deadline !== Infinity && c.heapIndex < 0) fail("buffers-accounted", `${c.stateName}: deadline ${c.deadline} but not in the timer heap`);
  }
}

/** poll() returns a time (or Infinity), never NaN. */
export function pollDeadlineSane(next: number): void {
  if (Number.isNaN(next)) fail("poll-deadline", "poll() returned NaN");
}

// =====================================================================
// Time
// =====================================================================

/**
 * No step takes more than `boundMs`: the engine does a bounded amount of
 * work per frame, host event or clock jump, however far the clock moves.
 * `ms` is the step's wall time in the run; `againCpuMs` is the CPU time
 * the same step took when a fresh run from the same seed got to it
 * again (with the code already compiled). Only both over the bound is a
 * failure: a step that was slow once, because the machine stalled the
 * process (other work, memory reclaim) or the JIT was compiling, is not
 * the engine's doing.
 */
export function stepTimeBounded(ms: number, againCpuMs: number, boundMs: number): void {
  if (ms > boundMs && againCpuMs > boundMs) {
    fail("step-time-bounded", `the step took ${ms.toFixed(1)} ms, and ${againCpuMs.toFixed(1)} ms of CPU time again in a fresh run (bound ${boundMs} ms, --step-ms)`);
  }
}

/** Every state invariant of one stack. */
export function checkState(stack: Stack): void {
  tcpTablesWithinCaps(stack);
  udpTableConsistent(stack);
  neighborsWithinCaps(stack);
  reassemblyAccounted(stack);
  tcpBuffersAccounted(stack);
}
