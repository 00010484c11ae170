// Forward specs for `-L` and `-R` (docs/compatibility.md, Forward specs).
//
// Parsing is pure: the scheme, the field split and the port numbers are
// checked here, while flags are parsed, as upstream does; a host that is
// not an IP literal is kept as a label and resolved later by
// src/host/control/resolve.ts through its TTL cache (docs/compatibility.md, DNS
// cache). The spec's type and printed forms are src/host/flows/forward-spec.ts.
import type { ForwardScheme, ForwardSpec, HostSide } from "../host/flows/forward-spec.ts";
import { parseGoUint } from "./gostrconv.ts";
import { goQuote } from "../host/control/goquote.ts";
import { formatIP, ipv4Text, parseIP, type IP } from "../wire/addr.ts";
import { DEFAULT_GUEST_NET_V4 } from "../wire/guest-net.ts";

export type ForwardSide = "local" | "remote";

const SCHEMES: Readonly<Record<ForwardScheme, { transport: "tcp" | "udp"; rpc: boolean; proxyProtocol: boolean }>> = {
  tcp: { transport: "tcp", rpc: false, proxyProtocol: false },
  udp: { transport: "udp", rpc: false, proxyProtocol: false },
  udprpc: { transport: "udp", rpc: true, proxyProtocol: false },
  tcppp: { transport: "tcp", rpc: false, proxyProtocol: true },
  udpspp: { transport: "udp", rpc: false, proxyProtocol: true },
};

/**
 * The bracket-aware field splitter of forward specs (also used by
 * -allow/-deny; docs/compatibility.md, Spec grammar): `[` and `]` nest,
 * only the outermost pair is dropped, and `:` splits only at depth 0.
 * "" gives [""]; "[::1]" gives ["::1"]; "[a@srv-[::1]:53]" gives
 * ["a@srv-[::1]:53"].
 */
export function splitBracketFields(text: string): string[] {
  const fields: string[] = [];
  let field = "";
  let depth = 0;
  for (const c of text) {
    if (c === "[") {
      if (depth > 0) field += c;
      depth++;
    } else if (c === "]") {
      if (depth > 1) field += c;
      depth--;
    } else if (c === ":" && depth === 0) {
      fields.push(field);
      field = "";
    } else {
      field += c;
    }
  }
  fields.push(field);
  return fields;
}

/** Splits "NET://REST"; without "://" the network is the given default. */
export function splitScheme(text: string, defaultNetwork: string): { network: string; rest: string } {
  const at = text.indexOf("://");
  if (at < 0) return { network: defaultNetwork, rest: text };
  return { network: text.slice(0, at), rest: text.slice(at + 3) };
}

/**
 * A port in 0..65535, decimal, with Go's strconv error text
 * (`strconv.ParseUint: parsing "X": invalid syntax` / `value out of range`).
 */
export function parsePort(text: string): number {
  return Number(parseGoUint(text, 10, 16));
}

/** Parses one -L or -R value. Throws an Error carrying upstream's message. */
export function parseForwardSpec(text: string, side: ForwardSide): ForwardSpec {
  const { network, rest } = splitScheme(text, "tcp");
  if (!Object.hasOwn(SCHEMES, network)) {
    throw new Error(`unknown network type ${goQuote(network)}`);
  }
  const scheme = network as ForwardScheme;

  let bindIP = "";
  let bindPort = "";
  let hostIP = "";
  let hostPort = "";
  const fields = splitBracketFields(rest);
  switch (fields.length) {
    case 1:
      [bindPort] = fields as [string];
      break;
    case 2:
      [bindIP, bindPort] = fields as [string, string];
      break;
    case 3:
      [bindPort, hostIP, hostPort] = fields as [string, string, string];
      break;
    case 4:
      [bindIP, bindPort, hostIP, hostPort] = fields as [string, string, string, string];
      break;
    default:
      break; // five or more fields: everything defaults, ports 0 (as upstream)
  }

  const bind = parseSide(bindIP, bindPort);
  // "Copied": a lone bind port is also the host port.
  if (bindPort !== "" && hostPort === "") hostPort = bindPort;
  const host = parseSide(hostIP, hostPort);
  const kind = SCHEMES[scheme].transport === "tcp" && side === "local" && host.ip !== null ? nonUnicastKind(parseIP(host.ip)!) : null;
  if (kind !== null) {
    // A TCP open toward a broadcast or multicast address is an error
    // (RFC 9293 §3.9.1.1, MUST-46): a connection has one peer.
    throw new Error(`TCP target ${host.ip} is a ${kind} address`);
  }

  return { scheme, ...SCHEMES[scheme], bind, host };
}

/** "broadcast" for 255.255.255.255, "multicast" for 224.0.0.0/4 and ff00::/8, else null. */
function nonUnicastKind(ip: IP): "broadcast" | "multicast" | null {
  const b = ip.bytes;
  if (ip.family === 6) return b[0] === 0xff ? "multicast" : null;
  if (b[0] === 255 && b[1] === 255 && b[2] === 255 && b[3] === 255) return "broadcast";
  return b[0]! >>> 4 === 14 ? "multicast" : null;
}

function parseSide(ipText: string, portText: string): HostSide {
  const side: HostSide = { ip: null, label: null, port: 0 };
  if (ipText !== "") {
    const literal = parseIP(ipText);
    if (literal !== null) side.ip = formatIP(literal);
    else side.label = ipText;
  }
  if (portText !== "") side.port = parsePort(portText);
  return side;
}

/** Default IPs (docs/compatibility.md, Default addresses): the guest and the gateway of the default guest network. */
export const FORWARD_DEFAULTS: Readonly<Record<ForwardSide, { bind4: string; bind6: string; host4: string; host6: string }>> = {
  local: { bind4: "127.0.0.1", bind6: "::1", host4: ipv4Text(DEFAULT_GUEST_NET_V4.guest), host6: "fd00::100" },
  remote: { bind4: ipv4Text(DEFAULT_GUEST_NET_V4.gateway), bind6: "fd00::2", host4: "127.0.0.1", host6: "::1" },
};

/**
 * A spec is IPv6 when either side is a static IPv6 literal (labels and
 * omitted IPs do not count); missing IPs, and the placeholder of a label
 * side, take that family's defaults.
 */
export function applyForwardDefaults(spec: ForwardSpec, side: ForwardSide): ForwardSpec {
  const defaults = FORWARD_DEFAULTS[side];
  const ipv6 = isStaticIPv6(spec.bind) || isStaticIPv6(spec.host);
  return {
    ...spec,
    bind: { ...spec.bind, ip: spec.bind.ip ?? (ipv6 ? defaults.bind6 : defaults.bind4) },
    host: { ...spec.host, ip: spec.host.ip ?? (ipv6 ? defaults.host6 : defaults.host4) },
  };
}

function isStaticIPv6(side: HostSide): boolean {
  return side.label === null && side.ip !== null && side.ip.includes(":");
}
