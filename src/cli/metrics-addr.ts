// The `-m NET://ADDR` value (docs/compatibility.md, Metrics address).
//
// NET is tcp, unix or udp; anything else (or no "://") is the parse error
// `Address must be in form net://address, where net is one of unix/tcp/udp`.
// tcp and udp addresses are resolved now, as Go's net.ResolveTCPAddr /
// ResolveUDPAddr do while the flag is parsed: HOST:PORT with Go's
// SplitHostPort errors, a port number or service name, and a host name
// resolved with IPv4 preferred. udp passes here and fails later (exit 254).
import { readFileSync } from "node:fs";
import type { MetricsAddress } from "../host/control/metrics.ts";
import type { Resolver } from "../host/control/resolve.ts";
import { formatIP, GoAddrError, joinHostPort, parseIPZone, splitHostPort } from "../wire/addr.ts";

const FORM_ERROR = "Address must be in form net://address, where net is one of unix/tcp/udp";

export async function parseMetricsAddress(value: string, resolver: Resolver): Promise<MetricsAddress> {
  const at = value.indexOf("://");
  if (at < 0) throw new Error(FORM_ERROR);
  const network = value.slice(0, at);
  const rest = value.slice(at + 3);
  if (network === "unix") return { network, address: rest, ip: null, port: null };
  if (network !== "tcp" && network !== "udp") throw new Error(FORM_ERROR);

  const { host, port: service } = splitHostPort(rest);
  const port = lookupPort(network, service);
  let ip: string | null = null;
  let zone = "";
  if (host !== "") {
    const literal = parseIPZone(host);
    if (literal !== null) {
      ip = formatIP(literal.ip);
      zone = literal.zone;
    } else {
      ip = await resolver.lookupHost(host, 4);
    }
  }
  const hostText = ip === null ? "" : zone === "" ? ip : `${ip}%${zone}`;
  return { network, address: joinHostPort(hostText, String(port)), ip: hostText === "" ? null : hostText, port };
}

/** Go net.LookupPort: a number (Go's saturating parse) or a service name. */
function lookupPort(network: "tcp" | "udp", service: string): number {
  const numeric = parseServiceNumber(service);
  const port = numeric ?? lookupServiceName(network, service);
  if (port < 0 || port > 65535) throw new GoAddrError("invalid port", service);
  return port;
}

/** Go's parsePort: null when a name lookup is needed; "" is port 0. */
function parseServiceNumber(service: string): number | null {
  if (service === "") return 0;
  let digits = service;
  let negative = false;
  if (digits[0] === "+") digits = digits.slice(1);
  else if (digits[0] === "-") {
    negative = true;
    digits = digits.slice(1);
  }
  if (!/^[0-9]*$/.test(digits)) return null;
  const cutoff = 1 << 30;
  let n = 0;
  for (const c of digits) {
    n = n * 10 + (c.charCodeAt(0) - 0x30);
    if (n >= cutoff) break; // saturate: anything this big is out of range anyway
  }
  if (!negative && n >= cutoff) n = cutoff - 1;
  if (negative && n > cutoff) n = cutoff;
  return negative ? -n : n;
}

/** Go's fallback table, used when /etc/services does not know the name. */
const BUILTIN_SERVICES: Readonly<Record<"tcp" | "udp", Readonly<Record<string, number>>>> = {
  udp: { domain: 53 },
  tcp: {
    ftp: 21,
    ftps: 990,
    gopher: 70,
    http: 80,
    https: 443,
    imap2: 143,
    imap3: 220,
    imaps: 993,
    pop3: 110,
    pop3s: 995,
    smtp: 25,
    ssh: 22,
    telnet: 23,
  },
};

function lookupServiceName(network: "tcp" | "udp", service: string): number {
  const wanted = service.toLowerCase();
  try {
    for (const rawLine of readFileSync("/etc/services", "utf8").split("\n")) {
      const fields = rawLine.split("#", 1)[0]!.split(/\s+/).filter((f) => f !== "");
      if (fields.length < 2) continue;
      const [portText, protocol] = fields[1]!.split("/");
      if (protocol !== network || portText === undefined || !/^[0-9]+$/.test(portText)) continue;
      const names = [fields[0]!, ...fields.slice(2)].map((n) => n.toLowerCase());
      if (names.includes(wanted)) return Number(portText);
    }
  } catch {
    // No services file: only the built-in table.
  }
  const builtin = BUILTIN_SERVICES[network][wanted];
  if (builtin !== undefined) return builtin;
  throw new GoAddrError("unknown port", `${network}/${service}`);
}
