// The guest-side neighbour table: which MAC address to put on frames for
// a guest IP (IPv4 via ARP, IPv6 via NDP), learnt from what the guest
// sends. Frames for a guest address we have not heard from yet wait in a
// small queue while we ask (ARP request / Neighbor Solicitation), as a
// kernel's neighbour layer does; this matters for -L, where we may be the
// first to speak.
//
// The common case (one guest, one address per family) is a single
// comparison against the last entry used, with no allocation.
import type { Stats } from "./stats.ts";

/** Queued frames in total, and per unresolved address. */
const MAX_QUEUED = 64;
const MAX_QUEUED_PER_ADDR = 8;
/** Entries kept; beyond this the oldest are forgotten. */
const MAX_ENTRIES = 1024;
export const SOLICIT_INTERVAL_MS = 1000;
export const SOLICIT_TRIES = 3;

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
  key: string;
  family: 4 | 6;
  v4: number;
  v6: Uint8Array | null;
  frames: QueuedFrame[];
  tries: number;
  nextSolicit: number;
}

/** Text key of an IPv6 address (cold path only: misses and learning). */
export function v6Key(buf: Uint8Array, off: number): string {
  let s = "";
  for (let i = 0; i < 16; i++) s += (buf[off + i]! + 0x100).toString(16).slice(1);
  return s;
}

export class Neighbors {
  private readonly v4 = new Map<number, Uint8Array>();
  private readonly v6 = new Map<string, Uint8Array>();
  private lastV4 = -1;
  private lastV4Mac: Uint8Array | null = null;
  private readonly lastV6 = new Uint8Array(16);
  private lastV6Mac: Uint8Array | null = null;
  private readonly unresolved = new Map<string, Unresolved>();
  private queued = 0;

  constructor(private readonly stats: Stats) {}

  lookupV4(ip: number): Uint8Array | null {
    if (ip === this.lastV4) return this.lastV4Mac;
    const mac = this.v4.get(ip) ?? null;
    if (mac !== null) {
      this.lastV4 = ip;
      this.lastV4Mac = mac;
    }
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
    const mac = this.v6.get(v6Key(buf, off)) ?? null;
    if (mac !== null) {
      last.set(buf.subarray(off, off + 16));
      this.lastV6Mac = mac;
    }
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
    if (known === null && this.v4.size >= MAX_ENTRIES) this.v4.delete(this.v4.keys().next().value!);
    this.v4.set(ip, mac);
    this.lastV4 = ip;
    this.lastV4Mac = mac;
    return this.release(`4:${ip}`, mac);
  }

  learnV6(addr: Uint8Array, addrOff: number, buf: Uint8Array, macOff: number): QueuedFrame[] | null {
    const known = this.lookupV6(addr, addrOff);
    if (known !== null && macMatches(known, buf, macOff)) return null;
    const key = v6Key(addr, addrOff);
    const mac = buf.slice(macOff, macOff + 6);
    if (known === null && this.v6.size >= MAX_ENTRIES) this.v6.delete(this.v6.keys().next().value!);
    this.v6.set(key, mac);
    this.lastV6.set(addr.subarray(addrOff, addrOff + 16));
    this.lastV6Mac = mac;
    return this.release(`6:${key}`, mac);
  }

  private release(key: string, mac: Uint8Array): QueuedFrame[] | null {
    const u = this.unresolved.get(key);
    if (u === undefined) return null;
    this.unresolved.delete(key);
    this.queued -= u.frames.length;
    for (const f of u.frames) f.frame.set(mac, f.macOff);
    return u.frames;
  }

  /**
   * Queues a frame for an address without a MAC. Returns true when the
   * caller should send a solicitation now (first frame for the address).
   */
  enqueue(family: 4 | 6, v4: number, v6: Uint8Array | null, v6Off: number, frame: QueuedFrame, now: number): boolean {
    const key = family === 4 ? `4:${v4}` : `6:${v6Key(v6!, v6Off)}`;
    let u = this.unresolved.get(key);
    const fresh = u === undefined;
    if (u === undefined) {
      u = {
        key,
        family,
        v4,
        v6: family === 6 ? v6!.slice(v6Off, v6Off + 16) : null,
        frames: [],
        tries: 1,
        nextSolicit: now + SOLICIT_INTERVAL_MS,
      };
      this.unresolved.set(key, u);
    }
    if (this.queued >= MAX_QUEUED || u.frames.length >= MAX_QUEUED_PER_ADDR) {
      this.stats.drop("neighbor-queue-full");
    } else {
      u.frames.push(frame);
      this.queued++;
    }
    return fresh;
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
      if (u.nextSolicit <= now) {
        if (u.tries >= SOLICIT_TRIES) {
          for (let i = 0; i < u.frames.length; i++) this.stats.drop("neighbor-unresolved");
          this.queued -= u.frames.length;
          this.unresolved.delete(u.key);
          continue;
        }
        u.tries++;
        u.nextSolicit = now + SOLICIT_INTERVAL_MS;
        solicit(u.family, u.v4, u.v6);
      }
      if (u.nextSolicit < next) next = u.nextSolicit;
    }
    return next;
  }
}

function macMatches(mac: Uint8Array, buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 6; i++) if (mac[i] !== buf[off + i]) return false;
  return true;
}
