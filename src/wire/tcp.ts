/**
 * TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                        Sequence Number                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Acknowledgment Number                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Data |       |C|E|U|A|P|R|S|F|                               |
 *   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *   |       |       |R|E|G|K|H|T|N|N|                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           Checksum            |         Urgent Pointer        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Options (0-40 bytes)                       |
 *
 * Sequence and acknowledgment numbers are uint32 numbers (`>>> 0`); the
 * stack does modular comparison on them.
 */
import { readU16, readU32, writeU32 } from "./bytes.ts";
import { WireError } from "./errors.ts";
import { IPPROTO_TCP } from "./ipv4.ts";
import { TransportView } from "./transport.ts";

export const TCP_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;
export const TCP_MAX_OPTIONS_LEN = 40;

export const TcpFlags = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  /** RFC 3168 ECN-Echo. */
  ECE: 0x40,
  /** RFC 3168 Congestion Window Reduced. */
  CWR: 0x80,
} as const;

/** Option kinds (IANA "TCP Option Kind Numbers"). */
export const TcpOptKind = {
  EOL: 0,
  NOP: 1,
  MSS: 2,
  WindowScale: 3,
  SackPermitted: 4,
  Sack: 5,
  Timestamps: 8,
} as const;

/** RFC 7323 §2.3: shifts above 14 are treated as 14. */
export const TCP_MAX_WINDOW_SCALE = 14;
/** At most 4 SACK blocks fit in 40 option bytes (2 + 4 * 8 = 34). */
export const TCP_MAX_SACK_BLOCKS = 4;

/** Reusable view over one TCP segment. */
export class TcpView extends TransportView {
  static readonly HEADER_LEN = TCP_HEADER_LEN;

  /** Segment length (header + data) as bounded by the IP layer. */
  declare len: number;

  /**
   * `len` is the IP payload length. Checks 20 bytes present (Truncated)
   * and 20 <= Data Offset * 4 <= min(60, len) (BadHeaderLen; 60 is implied
   * by the 4-bit field). Options are not parsed here: parseTcpOptions().
   */
  attach(buf: Uint8Array, off: number, len: number): WireError {
    if (!this.point(buf, off, len)) return WireError.BadBounds;
    if (len < TCP_HEADER_LEN) return WireError.Truncated;
    const hl = (buf[off + 12] >>> 4) << 2;
    if (hl < TCP_HEADER_LEN || hl > len) return WireError.BadHeaderLen;
    return WireError.Ok;
  }

  get seq(): number {
    return this.u32(4);
  }
  set seq(v: number) {
    this.w32(4, v);
  }
  get ack(): number {
    return this.u32(8);
  }
  set ack(v: number) {
    this.w32(8, v);
  }
  /** Data Offset field, in 32-bit words. */
  get dataOffset(): number {
    return this.u8(12) >>> 4;
  }
  get headerLen(): number {
    return (this.u8(12) >>> 4) << 2;
  }
  /** Sets Data Offset from a byte length (multiple of 4, 20..60); clears the reserved bits. */
  set headerLen(v: number) {
    this.w8(12, ((v >>> 2) & 15) << 4);
  }
  /** The eight flag bits of byte 13 (TcpFlags). */
  get flags(): number {
    return this.u8(13);
  }
  set flags(v: number) {
    this.w8(13, v);
  }
  hasFlags(mask: number): boolean {
    return (this.u8(13) & mask) === mask;
  }
  get fin(): boolean {
    return (this.u8(13) & TcpFlags.FIN) !== 0;
  }
  get syn(): boolean {
    return (this.u8(13) & TcpFlags.SYN) !== 0;
  }
  get rst(): boolean {
    return (this.u8(13) & TcpFlags.RST) !== 0;
  }
  /** ACK flag (named to avoid clashing with the acknowledgment number). */
  get ackFlag(): boolean {
    return (this.u8(13) & TcpFlags.ACK) !== 0;
  }
  /** Window field as sent (not scaled). */
  get window(): number {
    return this.u16(14);
  }
  set window(v: number) {
    this.w16(14, v);
  }
  get checksum(): number {
    return this.u16(16);
  }
  set checksum(v: number) {
    this.w16(16, v);
  }
  get urgentPtr(): number {
    return this.u16(18);
  }
  set urgentPtr(v: number) {
    this.w16(18, v);
  }
  get optionsOff(): number {
    return this.off + TCP_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.headerLen - TCP_HEADER_LEN;
  }
  get payloadOff(): number {
    return this.off + this.headerLen;
  }
  get payloadLen(): number {
    return this.len - this.headerLen;
  }
  /** Sequence space the segment occupies: data plus one each for SYN and FIN (RFC 9293 §3.4). */
  get segLen(): number {
    const f = this.u8(13);
    return this.len - this.headerLen + (f & TcpFlags.SYN ? 1 : 0) + (f & TcpFlags.FIN ? 1 : 0);
  }

  verifyChecksumV4(src: number, dst: number): boolean {
    return this.checksumV4(src, dst, IPPROTO_TCP) === 0;
  }

  /** Computes the checksum over `len` bytes (header and data) with the IPv4 pseudo header. */
  fillChecksumV4(src: number, dst: number): void {
    this.checksum = 0;
    this.checksum = this.checksumV4(src, dst, IPPROTO_TCP);
  }

  verifyChecksumV6(addrBuf: Uint8Array, srcOff: number, dstOff: number): boolean {
    return this.checksumV6(addrBuf, srcOff, dstOff, IPPROTO_TCP) === 0;
  }

  fillChecksumV6(addrBuf: Uint8Array, srcOff: number, dstOff: number): void {
    this.checksum = 0;
    this.checksum = this.checksumV6(addrBuf, srcOff, dstOff, IPPROTO_TCP);
  }
}

/**
 * The options we understand, in a caller-owned record reused across
 * segments (parseTcpOptions() resets it first).
 */
export class TcpOptions {
  /** Maximum Segment Size (RFC 9293 §3.7.1); 0 = absent (an MSS option of 0 also reads as absent). */
  mss = 0;
  /** Window scale shift (RFC 7323 §2), clamped to 14; -1 = absent. */
  windowScale = -1;
  /** SACK-Permitted (RFC 2018 §2). */
  sackPermitted = false;
  /** SACK blocks as [left0, right0, left1, right1, ...], uint32 sequence numbers. */
  readonly sackBlocks: Uint32Array = new Uint32Array(2 * TCP_MAX_SACK_BLOCKS);
  /** Number of valid blocks in sackBlocks (0..4). */
  sackCount = 0;
  /** Timestamps (RFC 7323 §3). */
  hasTimestamps = false;
  tsVal = 0;
  tsEcr = 0;

  reset(): this {
    this.mss = 0;
    this.windowScale = -1;
    this.sackPermitted = false;
    this.sackCount = 0;
    this.hasTimestamps = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    return this;
  }

  /** Appends a SACK block if there is room; returns false when full. */
  addSackBlock(left: number, right: number): boolean {
    if (this.sackCount >= TCP_MAX_SACK_BLOCKS) return false;
    this.sackBlocks[2 * this.sackCount] = left >>> 0;
    this.sackBlocks[2 * this.sackCount + 1] = right >>> 0;
    this.sackCount++;
    return true;
  }

  copyFrom(o: TcpOptions): this {
    this.mss = o.mss;
    this.windowScale = o.windowScale;
    this.sackPermitted = o.sackPermitted;
    this.sackBlocks.set(o.sackBlocks);
    this.sackCount = o.sackCount;
    this.hasTimestamps = o.hasTimestamps;
    this.tsVal = o.tsVal;
    this.tsEcr = o.tsEcr;
    return this;
  }
}

/**
 * Parses the option list of an attached segment into `out` (reset first).
 *
 * RFC 9293 §3.1: End of List (0) stops the walk, NOP (1) is one byte,
 * every other kind has a length byte counting kind and length. Unknown
 * kinds are skipped by their length (MUST-6/MUST-68); a known kind with
 * the wrong length is ignored and skipped, as Linux does. SACK (RFC 2018
 * §3) needs 2 + 8n bytes with n >= 1.
 *
 * An option with length < 2 or running past the header makes the rest of
 * the list unreadable (RFC 9293 MUST-7: be prepared for illegal lengths):
 * the walk stops and returns BadOption. The fields already parsed stay in
 * `out` and are trustworthy in themselves (each one was fully inside the
 * header with the right length), so a caller may keep them the way Linux
 * does, or drop the segment; the stack decides. The walk is bounded by the
 * 40 option bytes.
 */
export function parseTcpOptions(v: TcpView, out: TcpOptions): WireError {
  out.reset();
  const b = v.buf;
  let p = v.off + TCP_HEADER_LEN;
  const end = v.off + v.headerLen;
  while (p < end) {
    const kind = b[p];
    if (kind === TcpOptKind.EOL) break;
    if (kind === TcpOptKind.NOP) {
      p++;
      continue;
    }
    if (end - p < 2) return WireError.BadOption;
    const l = b[p + 1];
    if (l < 2 || l > end - p) return WireError.BadOption;
    switch (kind) {
      case TcpOptKind.MSS:
        if (l === 4) out.mss = readU16(b, p + 2);
        break;
      case TcpOptKind.WindowScale:
        if (l === 3) {
          const s = b[p + 2];
          out.windowScale = s > TCP_MAX_WINDOW_SCALE ? TCP_MAX_WINDOW_SCALE : s;
        }
        break;
      case TcpOptKind.SackPermitted:
        if (l === 2) out.sackPermitted = true;
        break;
      case TcpOptKind.Sack:
        if (l >= 10 && ((l - 2) & 7) === 0) {
          let n = (l - 2) >>> 3;
          if (n > TCP_MAX_SACK_BLOCKS) n = TCP_MAX_SACK_BLOCKS;
          for (let i = 0; i < n; i++) {
            out.sackBlocks[2 * i] = readU32(b, p + 2 + 8 * i);
            out.sackBlocks[2 * i + 1] = readU32(b, p + 6 + 8 * i);
          }
          out.sackCount = n;
        }
        break;
      case TcpOptKind.Timestamps:
        if (l === 10) {
          out.hasTimestamps = true;
          out.tsVal = readU32(b, p + 2);
          out.tsEcr = readU32(b, p + 6);
        }
        break;
      default:
        break;
    }
    p += l;
  }
  return WireError.Ok;
}

/**
 * Number of SACK blocks emitTcpOptions() will write given the other
 * options: each costs 8 bytes after a 4-byte NOP,NOP,kind,len prefix, and
 * everything must fit in 40 bytes (3 blocks with timestamps, 4 without).
 */
function sackBlocksThatFit(opts: TcpOptions, used: number): number {
  if (opts.sackCount <= 0) return 0;
  const fit = (TCP_MAX_OPTIONS_LEN - used - 4) >> 3;
  let n = opts.sackCount < fit ? opts.sackCount : fit;
  if (n > TCP_MAX_SACK_BLOCKS) n = TCP_MAX_SACK_BLOCKS;
  return n > 0 ? n : 0;
}

function fixedOptionsLen(opts: TcpOptions): number {
  let n = 0;
  if (opts.mss > 0) n += 4;
  if (opts.hasTimestamps || opts.sackPermitted) n += opts.hasTimestamps ? 12 : 4;
  if (opts.windowScale >= 0) n += 4;
  return n;
}

/** Bytes emitTcpOptions() will write for `opts` (a multiple of 4, at most 40). */
export function tcpOptionsLen(opts: TcpOptions): number {
  const used = fixedOptionsLen(opts);
  const n = sackBlocksThatFit(opts, used);
  return used + (n > 0 ? 4 + 8 * n : 0);
}

/**
 * Writes `opts` at buf[off] in the layout Linux uses, every option 4-byte
 * aligned by NOPs so the receiver can read them as words:
 *   MSS                         02 04 mm mm
 *   SACK-Permitted + Timestamps 04 02 08 0a <tsval> <tsecr>
 *     (or NOP NOP 08 0a ..., or NOP NOP 04 02 without timestamps)
 *   Window scale                01 03 03 ss
 *   SACK blocks                 01 01 05 len <left right>*
 * Fields that are absent (mss 0, windowScale -1, ...) are not written, so
 * the same record serves SYNs (MSS, SACK-Permitted, timestamps, window
 * scale) and data segments (timestamps, SACK blocks). SACK blocks beyond
 * what fits in 40 bytes are dropped, the first ones kept (RFC 2018 §4: the
 * first block should be the most recent). Returns the length written, a
 * multiple of 4.
 */
export function emitTcpOptions(buf: Uint8Array, off: number, opts: TcpOptions): number {
  let p = off;
  if (opts.mss > 0) {
    buf[p] = TcpOptKind.MSS;
    buf[p + 1] = 4;
    buf[p + 2] = opts.mss >>> 8;
    buf[p + 3] = opts.mss;
    p += 4;
  }
  if (opts.hasTimestamps) {
    if (opts.sackPermitted) {
      buf[p] = TcpOptKind.SackPermitted;
      buf[p + 1] = 2;
    } else {
      buf[p] = TcpOptKind.NOP;
      buf[p + 1] = TcpOptKind.NOP;
    }
    buf[p + 2] = TcpOptKind.Timestamps;
    buf[p + 3] = 10;
    writeU32(buf, p + 4, opts.tsVal);
    writeU32(buf, p + 8, opts.tsEcr);
    p += 12;
  } else if (opts.sackPermitted) {
    buf[p] = TcpOptKind.NOP;
    buf[p + 1] = TcpOptKind.NOP;
    buf[p + 2] = TcpOptKind.SackPermitted;
    buf[p + 3] = 2;
    p += 4;
  }
  if (opts.windowScale >= 0) {
    buf[p] = TcpOptKind.NOP;
    buf[p + 1] = TcpOptKind.WindowScale;
    buf[p + 2] = 3;
    buf[p + 3] = opts.windowScale > TCP_MAX_WINDOW_SCALE ? TCP_MAX_WINDOW_SCALE : opts.windowScale;
    p += 4;
  }
  const n = sackBlocksThatFit(opts, p - off);
  if (n > 0) {
    buf[p] = TcpOptKind.NOP;
    buf[p + 1] = TcpOptKind.NOP;
    buf[p + 2] = TcpOptKind.Sack;
    buf[p + 3] = 2 + 8 * n;
    p += 4;
    for (let i = 0; i < n; i++) {
      writeU32(buf, p, opts.sackBlocks[2 * i]);
      writeU32(buf, p + 4, opts.sackBlocks[2 * i + 1]);
      p += 8;
    }
  }
  return p - off;
}

export interface TcpInit {
  srcPort?: number;
  dstPort?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  urgentPtr?: number;
  options?: TcpOptions;
}

/**
 * Plain TCP header record. emit() writes header and options with checksum
 * 0; append the payload, then fill the checksum through a TcpView over the
 * whole segment (header + payload).
 */
export class TcpRepr {
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  window = 0;
  urgentPtr = 0;
  options: TcpOptions = new TcpOptions();

  constructor(init?: TcpInit) {
    if (init !== undefined) Object.assign(this, init);
  }

  /** 20 + padded option length. */
  get headerLen(): number {
    return TCP_HEADER_LEN + tcpOptionsLen(this.options);
  }

  /**
   * Fills the record from an attached view, options included; returns
   * parseTcpOptions()'s result (the fixed fields are set either way).
   */
  parse(v: TcpView): WireError {
    this.srcPort = v.srcPort;
    this.dstPort = v.dstPort;
    this.seq = v.seq;
    this.ack = v.ack;
    this.flags = v.flags;
    this.window = v.window;
    this.urgentPtr = v.urgentPtr;
    return parseTcpOptions(v, this.options);
  }

  /** Writes header and options at buf[off]; returns the header length. */
  emit(buf: Uint8Array, off: number): number {
    const hl = TCP_HEADER_LEN + emitTcpOptions(buf, off + TCP_HEADER_LEN, this.options);
    buf[off] = this.srcPort >>> 8;
    buf[off + 1] = this.srcPort;
    buf[off + 2] = this.dstPort >>> 8;
    buf[off + 3] = this.dstPort;
    writeU32(buf, off + 4, this.seq);
    writeU32(buf, off + 8, this.ack);
    buf[off + 12] = (hl >>> 2) << 4;
    buf[off + 13] = this.flags;
    buf[off + 14] = this.window >>> 8;
    buf[off + 15] = this.window;
    buf[off + 16] = 0;
    buf[off + 17] = 0;
    buf[off + 18] = this.urgentPtr >>> 8;
    buf[off + 19] = this.urgentPtr;
    return hl;
  }
}

const FLAG_NAMES = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

/** "SYN|ACK" style rendering for logs and test failures (cold path). */
export function formatTcpFlags(flags: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) if (flags & (1 << i)) parts.push(FLAG_NAMES[i]);
  return parts.length > 0 ? parts.join("|") : "none";
}
