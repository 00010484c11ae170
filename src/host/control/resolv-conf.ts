// The host's nameservers, from /etc/resolv.conf, for the guest's DNS
// forwarder. The file is re-read when its mtime changes (a laptop moving
// between networks). A read that fails (EMFILE, the file replaced under
// us) is never taken as the new truth, and neither is a file without a
// nameserver line that was modified in the last SETTLE_MS (caught
// half-written): the last good list stays in use and the file is tried
// again after RETRY_MS, so one bad moment cannot pin the forwarder to the
// 127.0.0.1 fallback until the file changes again. A settled file that
// names no server means glibc's default, 127.0.0.1. The search domains
// (for the guest's DHCP and router advertisements) come from the same read.
import { readFileSync, statSync } from "node:fs";
import { parseIP, type IP } from "../../wire/addr.ts";

/** glibc's default when resolv.conf names no server (resolv.conf(5)). */
const LOCAL_RESOLVER: readonly IP[] = [parseIP("127.0.0.1")!];
/** How often an unusable file is tried again (a DNS flood must not mean a read per flow). */
export const RETRY_MS = 1000;
/** A file without nameservers counts once it is this old (wall clock); younger, it may be mid-rewrite. */
export const SETTLE_MS = 2000;

/** Nameserver addresses of a resolv.conf text (resolv.conf(5)); zone suffixes dropped. */
export function parseResolvConf(text: string): IP[] {
  const out: IP[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (m === null) continue;
    const ip = parseIP(m[1]!.replace(/%.*$/, ""));
    if (ip !== null) out.push(ip);
  }
  return out;
}

/**
 * The search domains of a resolv.conf text: the last `search` or `domain`
 * line wins (resolv.conf(5): the two are mutually exclusive); trailing
 * dots dropped, the root and duplicates left out.
 */
export function parseResolvSearch(text: string): string[] {
  let out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const m = /^(search|domain)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const names = m[2]!.split(/\s+/).map((d) => d.replace(/\.$/, "").toLowerCase());
    out = [...new Set(names.filter((d) => d !== ""))];
    if (m[1] === "domain") out = out.slice(0, 1);
  }
  return out;
}

export class ResolvConf {
  /** The last trustworthy list; empty means glibc's default. */
  private good: readonly IP[] = [];
  /** The search domains read with `good`; a new array only when the file was read again. */
  private goodSearch: readonly string[] = [];
  /** mtime of the file the good list came from; -1 until one was read. */
  private goodMtimeMs = -1;
  /** When an unusable file may be tried again. */
  private retryAt = -Infinity;

  constructor(private readonly path = "/etc/resolv.conf") {}

  /** The nameservers to use now (never empty). `now` is the caller's clock in ms. */
  servers(now: number): readonly IP[] {
    if (now >= this.retryAt) this.refresh(now);
    return this.good.length > 0 ? this.good : LOCAL_RESOLVER;
  }

  /** The search domains to use now (possibly empty); the same array until the file changes. */
  search(now: number): readonly string[] {
    if (now >= this.retryAt) this.refresh(now);
    return this.goodSearch;
  }

  private refresh(now: number): void {
    let found: IP[];
    let search: string[] = [];
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.path).mtimeMs;
      if (mtimeMs === this.goodMtimeMs) return;
      const text = readFileSync(this.path, "utf8");
      found = parseResolvConf(text);
      search = parseResolvSearch(text);
    } catch {
      found = [];
      mtimeMs = -1;
    }
    const unsettled = mtimeMs < 0 || (found.length === 0 && Date.now() - mtimeMs < SETTLE_MS);
    if (unsettled) {
      this.retryAt = now + RETRY_MS;
      return;
    }
    this.good = found;
    this.goodSearch = search;
    this.goodMtimeMs = mtimeMs;
    this.retryAt = -Infinity;
  }
}
