// The guest-side neighbour table: which MAC address to put on frames for
// a guest IP (IPv4 via ARP, IPv6 via NDP), learnt from what the guest
// sends. Frames for a guest address we have not heard from yet wait in a
// small queue while we ask (ARP request / Neighbor Solicitation), as a
// kernel's neighbour layer does; this matters for -L, where we may be the
// first to speak.
//
// Everything here is capped, because the guest chooses the addresses: the
// entries of both families, resolved or not, together (-max-neighbors);
// the unresolved ones among them; the frames waiting, in all and per
// address; and the solicitations we broadcast, per address (RFC 1122
// §2.3.2.1: at most one per second) and in all (a token bucket), so that
// no flood of distinct destinations turns into a broadcast per packet.
//
// The common case (one guest, one address per family) is a single
// comparison against the last entry used, with no allocation.
import type { Stats } from "./stats.ts";

/** Default of -max-neighbors: entries of both families, resolved or not. */
export const DEFAULT_MAX_NEIGHBORS = 1024;
/** Unresolved entries at most (never more than half of -max-neighbors). */
export const MAX_UNRESOLVED = 64;
/** Queued frames in total, and per unresolved address. */
export const MAX_QUEUED = 64;
export const MAX_QUEUED_PER_ADDR = 8;
export const SOLICIT_INTERVAL_MS = 1000;
export const SOLICIT_TRIES = 3;
/** Solicitations per second for all addresses together, and the burst allowed. */
export const SOLICIT_RATE = 32;

export interface QueuedFrame {
  frame: Uint8Array;
  /** Offset of the Ethernet destination address inside `frame`. */
  macOff: number;
  csumStart: number;
  csumOffset: number;
  gsoType: number;
  gsoSize: number;
  hdrLen: number;
}

interface Unresolved {
  /** The IPv4 address (a number) or the IPv6 address's text key. */
  key: number | string;
  family: 4 | 6;
  v4: number;
  v6: Uint8Array | null;
  frames: QueuedFrame[];
  /** Solicitations sent so far. */
  tries: number;
  /** When the next one is due. */
  nextSolicit: number;
  /** When we give up on the address and drop its frames. */
  expires: number;
}

/** Text key of an IPv6 address (cold path only: misses and learning). */
export function v6Key(buf: Uint8Array, off: number): string {
  let s = "";
  for (let i = 0; i < 16; i++) s += (buf[off + i]! + 0x100).toString(16).slice(1);
  return s;
}

export class Neighbors {
  // Resolved entries; a Map iterates in insertion order, and a lookup that
  // misses the last-used cache moves its entry to the end, so the first
  // entry is the least recently used.
  private readonly v4 = new Map<number, Uint8Array>();
  private readonly v6 = new Map<string, Uint8Array>();
  private lastV4 = -1;
  private lastV4Mac: Uint8Array | null = null;
  private readonly lastV6 = new Uint8Array(16);
  private lastV6Mac: Uint8Array | null = null;
  /** Unresolved entries, IPv4 by address, IPv6 by text key; oldest first. */
  private readonly unresolved = new Map<number | string, Unresolved>();
  private queued = 0;
  /** Entries at most, resolved or not, both families (-max-neighbors; 2 at least). */
  private readonly maxEntries: number;
  private readonly maxUnresolved: number;
  /** Solicitations that may be sent now (fractional while refilling), and when it was last refilled. */
  private tokens = SOLICIT_RATE;
  private refilled = -Infinity;

  constructor(
    private readonly stats: Stats,
    maxEntries: number,
  ) {
    // One resolved and one unresolved entry at least: the guest, and an
    // address asked for.
    this.maxEntries = Math.max(2, maxEntries);
    this.maxUnresolved = Math.min(MAX_UNRESOLVED, this.maxEntries >>> 1);
  }

  /** Entries held, resolved or not. */
  get size(): number {
    return this.v4.size + this.v6.size + this.unresolved.size;
  }

  /** Addresses we are asking for. */
  get pending(): number {
    return this.unresolved.size;
  }

  lookupV4(ip: number): Uint8Array | null {
    if (ip === this.lastV4) return this.lastV4Mac;
    const mac = this.v4.get(ip);
    if (mac === undefined) return null;
    this.v4.delete(ip);
    this.v4.set(ip, mac);
    this.lastV4 = ip;
    this.lastV4Mac = mac;
    return mac;
  }

  lookupV6(buf: Uint8Array, off: number): Uint8Array | null {
    const last = this.lastV6;
    if (this.lastV6Mac !== null) {
      let same = true;
      for (let i = 0; i < 16; i++) {
        if (last[i] !== buf[off + i]) {
          same = false;
          break;
        }
      }
      if (same) return this.lastV6Mac;
    }
    const key = v6Key(buf, off);
    const mac = this.v6.get(key);
    if (mac === undefined) return null;
    this.v6.delete(key);
    this.v6.set(key, mac);
    for (let i = 0; i < 16; i++) last[i] = buf[off + i]!;
    this.lastV6Mac = mac;
    return mac;
  }

  /**
   * Records ip -> mac. Returns the frames that were waiting for it, if any
   * (the caller transmits them with the MAC filled in).
   */
  learnV4(ip: number, buf: Uint8Array, macOff: number): QueuedFrame[] | null {
    const known = this.lookupV4(ip);
    if (known !== null && macMatches(known, buf, macOff)) return null;
    const mac = buf.slice(macOff, macOff + 6);
    const waiting = this.release(ip, mac);
    if (known === null && waiting === null) this.makeRoom();
    this.v4.set(ip, mac);
    this.lastV4 = ip;
    this.lastV4Mac = mac;
    return waiting;
  }

  learnV6(addr: Uint8Array, addrOff: number, buf: Uint8Array, macOff: number): QueuedFrame[] | null {
    const known = this.lookupV6(addr, addrOff);
    if (known !== null && macMatches(known, buf, macOff)) return null;
    const key = v6Key(addr, addrOff);
    const mac = buf.slice(macOff, macOff + 6);
    const waiting = this.release(key, mac);
    if (known === null && waiting === null) this.makeRoom();
    this.v6.set(key, mac);
    for (let i = 0; i < 16; i++) this.lastV6[i] = addr[addrOff + i]!;
    this.lastV6Mac = mac;
    return waiting;
  }

  /** Ends the wait for an address that answered: its frames get the MAC. */
  private release(key: number | string, mac: Uint8Array): QueuedFrame[] | null {
    const u = this.unresolved.get(key);
    if (u === undefined) return null;
    this.unresolved.delete(key);
    this.queued -= u.frames.length;
    for (const f of u.frames) f.frame.set(mac, f.macOff);
    return u.frames;
  }

  /**
   * Frees one entry when the table is full for a new one: the least
   * recently used resolved entry (of the larger family), else the oldest
   * unresolved one.
   */
  private makeRoom(): void {
    if (this.size < this.maxEntries) return;
    this.stats.limit("neighbors");
    if (this.v4.size > 0 && this.v4.size >= this.v6.size) {
      const ip = this.v4.keys().next().value!;
      this.v4.delete(ip);
      if (ip === this.lastV4) {
        this.lastV4 = -1;
        this.lastV4Mac = null;
      }
    } else if (this.v6.size > 0) {
      const key = this.v6.keys().next().value!;
      this.v6.delete(key);
      if (this.lastV6Mac !== null && v6Key(this.lastV6, 0) === key) this.lastV6Mac = null;
    } else {
      this.forget(this.unresolved.values().next().value!);
    }
  }

  /** Gives up on an unresolved address: its frames are dropped. */
  private forget(u: Unresolved): void {
    for (let i = 0; i < u.frames.length; i++) this.stats.drop("neighbor-unresolved");
    this.queued -= u.frames.length;
    this.unresolved.delete(u.key);
  }

  /**
   * Queues a frame for an address without a MAC. Returns true when the
   * caller should send a solicitation now (the first frame for the
   * address, and the global rate allows it; otherwise poll() asks later).
   * When the unresolved entries are at their cap, the frame is dropped
   * and nothing is asked.
   */
  enqueue(family: 4 | 6, v4: number, v6: Uint8Array | null, v6Off: number, frame: QueuedFrame, now: number): boolean {
    const key = family === 4 ? v4 : v6Key(v6!, v6Off);
    let u = this.unresolved.get(key);
    if (u === undefined) {
      if (this.unresolved.size >= this.maxUnresolved) {
        this.stats.limit("neighbors-unresolved");
        return false;
      }
      this.makeRoom();
      u = {
        key,
        family,
        v4,
        v6: family === 6 ? v6!.slice(v6Off, v6Off + 16) : null,
        frames: [],
        tries: 0,
        nextSolicit: now,
        expires: now + SOLICIT_TRIES * SOLICIT_INTERVAL_MS,
      };
      this.unresolved.set(key, u);
    }
    if (this.queued >= MAX_QUEUED || u.frames.length >= MAX_QUEUED_PER_ADDR) {
      this.stats.limit("neighbor-queue");
    } else {
      u.frames.push(frame);
      this.queued++;
    }
    return u.tries === 0 && u.nextSolicit <= now && this.solicitNow(u, now);
  }

  /**
   * Whether a solicitation for `u` may go out now: takes a token of the
   * global bucket and schedules the next one a second later (RFC 1122
   * §2.3.2.1). Without a token, the attempt moves to when one is due.
   */
  private solicitNow(u: Unresolved, now: number): boolean {
    if (now > this.refilled) {
      this.tokens = Math.min(SOLICIT_RATE, this.tokens + ((now - this.refilled) * SOLICIT_RATE) / 1000);
      this.refilled = now;
    }
    if (this.tokens < 1) {
      this.stats.limit("neighbor-solicit-rate");
      u.nextSolicit = now + Math.ceil(((1 - this.tokens) * 1000) / SOLICIT_RATE);
      return false;
    }
    this.tokens -= 1;
    u.tries++;
    u.nextSolicit = now + SOLICIT_INTERVAL_MS;
    return true;
  }

  /**
   * Retries solicitations and gives up on silent addresses. `solicit` is
   * called for each address to ask again. Returns the next deadline.
   */
  poll(now: number, solicit: (family: 4 | 6, v4: number, v6: Uint8Array | null) => void): number {
    // Called on every poll: no iterator object when nothing waits.
    if (this.unresolved.size === 0) return Infinity;
    let next = Infinity;
    for (const u of this.unresolved.values()) {
      if (u.expires <= now) {
        this.forget(u);
        continue;
      }
      if (u.tries < SOLICIT_TRIES) {
        if (u.nextSolicit <= now && this.solicitNow(u, now)) solicit(u.family, u.v4, u.v6);
        if (u.nextSolicit < next) next = u.nextSolicit;
      }
      if (u.expires < next) next = u.expires;
    }
    return next;
  }
}

function macMatches(mac: Uint8Array, buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 6; i++) if (mac[i] !== buf[off + i]) return false;
  return true;
}
