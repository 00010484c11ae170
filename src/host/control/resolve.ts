// Name resolution with upstream's semantics and wording (docs/compatibility.md,
// Names in forward specs, Firewall entries, DNS cache).
//
// - Plain names go to the system resolver (getaddrinfo, so /etc/hosts and
//   nsswitch apply). From the answers the first address of the preferred
//   family is used, else the first address (upstream always prefers IPv4).
// - `QUERY@srv-SERVER` sends an SRV query to SERVER, takes the best record,
//   and resolves its target: /etc/hosts first, then A/AAAA at the same
//   server, then the system resolver. A non-zero SRV port replaces the
//   spec's port.
// - Errors read as Go's: `lookup NAME: no such host`,
//   `Empty dns reponse for "LABEL"` (upstream's typo),
//   `Failed to lookup SRV "QUERY" on "SERVER"`, `Unknown dns type "X"`.
// - CachedLabel is the per-address TTL cache of -dns-ttl, with
//   upstream's "mark the time before resolving" rule.
import { lookup as systemLookup } from "node:dns/promises";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { goQuote } from "./goquote.ts";
import { formatIP, parseIP, parseIPZone, splitHostPort } from "../../wire/addr.ts";
import { DnsRcode, DnsType } from "../../wire/dns.ts";
import { answersFor, queryDns, type DnsServerAddress } from "./dns-client.ts";

export type AddressFamilyPreference = 4 | 6 | null;

export interface ResolvedLabel {
  /** Normalised IP literal (IPv4-mapped answers become IPv4). */
  ip: string;
  /** The SRV record's port for `@srv-` labels (may be 0), null for plain names. */
  port: number | null;
}

/** What the command line and the forwarders need from name resolution. */
export interface Resolver {
  /**
   * Resolves a host name (or passes an IP literal through) with the system
   * resolver. `prefer`: the first address of that family is used, else the
   * first address. Throws an Error with Go's wording.
   */
  lookupHost(name: string, prefer: AddressFamilyPreference): Promise<string>;
  /** Resolves a forward-spec label: a plain name, or QUERY@srv-SERVER. */
  resolveLabel(label: string, prefer?: 4 | 6): Promise<ResolvedLabel>;
}

export interface SystemResolverOptions {
  /** The hosts file consulted for SRV targets. Default /etc/hosts. */
  hostsPath?: string;
  /** Per-attempt timeout of queries to an `@srv-` server. Default 2000 ms. */
  dnsTimeoutMs?: number;
  /** UDP attempts of queries to an `@srv-` server. Default 2. */
  dnsAttempts?: number;
}

export function createSystemResolver(options: SystemResolverOptions = {}): Resolver {
  return new SystemResolver(options);
}

/** Go's *net.DNSError text without a server: "lookup NAME: WHY". */
export class LookupError extends Error {
  constructor(
    readonly hostName: string,
    readonly why: string,
  ) {
    super(`lookup ${hostName}: ${why}`);
    this.name = "LookupError";
  }
}

class SystemResolver implements Resolver {
  private readonly hostsPath: string;
  private readonly dnsTimeoutMs: number | undefined;
  private readonly dnsAttempts: number | undefined;

  constructor(options: SystemResolverOptions) {
    this.hostsPath = options.hostsPath ?? "/etc/hosts";
    this.dnsTimeoutMs = options.dnsTimeoutMs;
    this.dnsAttempts = options.dnsAttempts;
  }

  async lookupHost(name: string, prefer: AddressFamilyPreference): Promise<string> {
    // getaddrinfo("") is not an error in Node/Bun (and warns); Go says no such host.
    if (name === "") throw new LookupError(name, "no such host");
    let answers: { address: string; family: number }[];
    try {
      answers = await systemLookup(name, { all: true });
    } catch (error) {
      throw new LookupError(name, goResolverReason(error));
    }
    const addresses = answers.map((a) => normalizeAnswer(a.address)).filter((a): a is string => a !== null);
    const chosen = pickAddress(addresses, prefer);
    if (chosen === null) throw new Error(`Empty dns reponse for ${goQuote(name)}`);
    return chosen;
  }

  async resolveLabel(label: string, prefer: 4 | 6 = 4): Promise<ResolvedLabel> {
    const at = label.indexOf("@");
    if (at < 0) return { ip: await this.lookupHost(label, prefer), port: null };

    const query = label.slice(0, at);
    const dnsType = label.slice(at + 1);
    if (!dnsType.startsWith("srv-")) throw new Error(`Unknown dns type ${goQuote(dnsType)}`);
    // "PORT" alone means a server on 127.0.0.1, as upstream.
    let serverText = dnsType.slice("srv-".length);
    if (!serverText.includes(":")) serverText = `127.0.0.1:${serverText}`;
    const failed = () => new Error(`Failed to lookup SRV ${goQuote(query)} on ${goQuote(serverText)}`);

    let server: DnsServerAddress;
    let best: { port: number; target: string };
    try {
      server = await this.dnsServerAddress(serverText);
      const reply = await queryDns(server, query, DnsType.SRV, this.queryOptions());
      if (reply.header.rcode !== DnsRcode.NOERROR) throw failed();
      const records = answersFor(reply, query, DnsType.SRV).flatMap((r) => (r.data.kind === "srv" ? [r.data] : []));
      if (records.length === 0) throw failed();
      // RFC 2782 order: lowest priority first; among equals, the heaviest
      // (Go picks at random, weighted; we take the most likely one).
      records.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
      best = records[0]!;
    } catch {
      throw failed();
    }

    // Go gets "target." and strips one trailing dot so that /etc/hosts can
    // match; our codec already gives names without the root's dot.
    const target = best.target;
    const fromHosts = await this.lookupHostsFile(target, prefer);
    if (fromHosts !== null) return { ip: fromHosts, port: best.port };
    const fromServer = await this.lookupAtServer(server, target, prefer);
    if (fromServer !== null) return { ip: fromServer, port: best.port };
    return { ip: await this.lookupHost(target, prefer), port: best.port };
  }

  private queryOptions() {
    return {
      ...(this.dnsTimeoutMs === undefined ? {} : { timeoutMs: this.dnsTimeoutMs }),
      ...(this.dnsAttempts === undefined ? {} : { attempts: this.dnsAttempts }),
    };
  }

  /** "HOST:PORT" (HOST an IP, [IPv6] or a name) as Go's Dial would read it. */
  private async dnsServerAddress(text: string): Promise<DnsServerAddress> {
    const { host, port: portText } = splitHostPort(text);
    if (!/^[0-9]+$/.test(portText) || Number(portText) > 65535) throw new Error(`invalid port ${portText}`);
    const literal = parseIPZone(host);
    if (literal !== null) return { host: formatIP(literal.ip), port: Number(portText) };
    if (host === "") return { host: "127.0.0.1", port: Number(portText) }; // Go dials the local system
    return { host: await this.lookupHost(host, 4), port: Number(portText) };
  }

  /** A and AAAA at the SRV server, preferred family first; null when neither answers. */
  private async lookupAtServer(server: DnsServerAddress, name: string, prefer: 4 | 6): Promise<string | null> {
    const order = prefer === 6 ? [DnsType.AAAA, DnsType.A] : [DnsType.A, DnsType.AAAA];
    for (const type of order) {
      try {
        const reply = await queryDns(server, name, type, this.queryOptions());
        if (reply.header.rcode !== DnsRcode.NOERROR) continue;
        for (const record of answersFor(reply, name, type)) {
          if (record.data.kind === "a" || record.data.kind === "aaaa") {
            const ip = normalizeAnswer(record.data.address);
            if (ip !== null) return ip;
          }
        }
      } catch {
        // Upstream falls through to the system resolver on any failure here.
      }
    }
    return null;
  }

  private async lookupHostsFile(name: string, prefer: 4 | 6): Promise<string | null> {
    let text: string;
    try {
      text = await readFile(this.hostsPath, "utf8");
    } catch {
      return null;
    }
    return pickAddress(hostsFileAddresses(text, name), prefer);
  }
}

/**
 * The addresses /etc/hosts gives for `name`, in file order. Names match
 * case-insensitively, with or without a trailing dot; `#` starts a comment.
 */
export function hostsFileAddresses(hostsText: string, name: string): string[] {
  const wanted = absoluteName(name);
  const found: string[] = [];
  for (const rawLine of hostsText.split("\n")) {
    const line = rawLine.split("#", 1)[0]!;
    const fields = line.split(/[ \t\r]+/).filter((f) => f !== "");
    if (fields.length < 2) continue;
    const address = normalizeAnswer(fields[0]!);
    if (address === null) continue;
    if (fields.slice(1).some((alias) => absoluteName(alias) === wanted)) found.push(address);
  }
  return found;
}

function absoluteName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower : lower + ".";
}

/** An answer as a normalised literal (IPv4-mapped becomes IPv4; a zone is kept). */
function normalizeAnswer(address: string): string | null {
  const parsed = parseIPZone(address);
  if (parsed === null) return isIP(address) === 0 ? null : address;
  const text = formatIP(parsed.ip);
  return parsed.zone === "" ? text : `${text}%${parsed.zone}`;
}

/** First address of the preferred family, else the first address, else null. */
export function pickAddress(addresses: readonly string[], prefer: AddressFamilyPreference): string | null {
  if (prefer !== null) {
    const match = addresses.find((a) => familyOf(a) === prefer);
    if (match !== undefined) return match;
  }
  return addresses[0] ?? null;
}

function familyOf(address: string): 4 | 6 {
  return parseIP(address)?.family === 4 ? 4 : 6;
}

/** Go's words for getaddrinfo failures (glibc's gai_strerror texts). */
function goResolverReason(error: unknown): string {
  const code = (error as { code?: string } | null)?.code;
  switch (code) {
    case "ENOTFOUND":
    case "ENODATA":
    case "EAI_NONAME":
    case "EAI_NODATA":
      return "no such host";
    case "EAI_AGAIN":
    case "ETIMEOUT":
    case "ETIMEDOUT":
      return "Temporary failure in name resolution";
    case "EAI_FAIL":
      return "Non-recoverable failure in name resolution";
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

// ---------------------------------------------------------------------------
// The DNS label cache (docs/compatibility.md, DNS cache)

export interface SocketAddressValue {
  ip: string;
  port: number;
}

/**
 * One label-based address with upstream's cache rules:
 *
 * - not a label, or fetched at most `ttlMs` ago: the stored value, even if
 *   that fetch failed (then the stale address of an earlier success);
 *   but never the placeholder of a label that has not resolved yet.
 *   Upstream served the placeholder (127.0.0.1 or ::1 and the spec's
 *   port) for the rest of the TTL after a failed first lookup, sending the
 *   guest to whatever listens on the host's loopback at that port.
 * - otherwise mark "fetched now" first, then resolve: success stores the
 *   IP (and a non-zero SRV port); failure records the error and gives null.
 *
 * A TTL of 0 (or less) resolves on every use. Uses are serialised, like
 * upstream's mutex: a use that waits for a running lookup then sees its
 * fresh timestamp. Time is passed in, so tests need no sleeping.
 */
export class CachedLabel {
  private stored: SocketAddressValue;
  private fetched = Number.NEGATIVE_INFINITY;
  private failure: Error | null = null;
  /** A lookup has succeeded once: `stored` is a real address, not the placeholder. */
  private resolved = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    /** The label, or null for a static address (then no lookup ever happens). */
    readonly label: string | null,
    /** The placeholder written by the defaults (applyForwardDefaults) and the spec's port. */
    placeholder: SocketAddressValue,
    private readonly ttlMs: number,
    private readonly resolver: Resolver,
    private readonly prefer: 4 | 6 = 4,
  ) {
    this.stored = { ...placeholder };
  }

  /** The stored address: the last successful resolution, or the placeholder. */
  get value(): SocketAddressValue {
    return { ...this.stored };
  }

  /** When the last resolution started (-Infinity if never). */
  get fetchedAt(): number {
    return this.fetched;
  }

  /** The error of the last resolution, null if it succeeded (or none ran). */
  get lastError(): Error | null {
    return this.failure;
  }

  /** The address to use now, or null when this use's resolution failed. */
  retrieve(now: number): Promise<SocketAddressValue | null> {
    const result = this.queue.then(() => this.retrieveInOrder(now));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async retrieveInOrder(now: number): Promise<SocketAddressValue | null> {
    if (this.label === null) return this.value;
    if (this.ttlMs > 0 && now - this.fetched <= this.ttlMs) return this.resolved ? this.value : null;
    this.fetched = now;
    try {
      const resolved = await this.resolver.resolveLabel(this.label, this.prefer);
      this.stored = {
        ip: resolved.ip,
        port: resolved.port !== null && resolved.port !== 0 ? resolved.port : this.stored.port,
      };
      this.failure = null;
      this.resolved = true;
      return this.value;
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
      return null;
    }
  }
}
