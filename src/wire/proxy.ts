// Client-address headers for -L forwards:
//  - the PROXY protocol (HAProxy's proxy-protocol.txt), version 1 (text)
//    as upstream's tcppp reads it, and beyond upstream version 2 (binary),
//    auto-detected by its 12-byte signature (docs/compatibility.md, PROXY
//    protocol for tcppp);
//  - Cloudflare's Simple Proxy Protocol for UDP (udpspp; docs/compatibility.md,
//    SPP for udpspp): a 38-byte big-endian header in front of each datagram.
// Pure functions over bytes: results or an error text, never a throw.
import { ipv4Text, parseIP, v6IPText } from "./addr.ts";
import { readU32 } from "./bytes.ts";

/** Where a proxied client came from and what it connected to. */
export interface ProxyAddresses {
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
}

export type ProxyParse =
  /** `addrs` null: a v2 LOCAL command (health check): use the real peer. */
  | { ok: true; addrs: ProxyAddresses | null; headerLen: number }
  | { ok: false; error: string };

/** Upstream's error texts (docs/compatibility.md, Client address headers). */
export const ERR_BAD_MAGIC = "spp: bad magic number";
export const ERR_UNEXPECTED_EOF = "unexpected EOF";

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/**
 * Parses a PROXY header at the start of `buf` (the connection's first
 * read). Version 2 when the binary signature is there, else version 1.
 */
export function parseProxyHeader(buf: Uint8Array): ProxyParse {
  if (buf.length >= 12 && V2_SIGNATURE.every((b, i) => buf[i] === b)) return parseV2(buf);
  return parseV1(buf);
}

/**
 * Version 1, as upstream reads it: the header must be in the first read
 * and contain "\n"; the line must start with "PROXY TCP4 " or "PROXY TCP6 "
 * and end with "\r\n"; then exactly four space-separated fields: source
 * and destination IP (either family: the TCP4/TCP6 word is not checked
 * against them) and decimal ports.
 */
function parseV1(buf: Uint8Array): ProxyParse {
  const nl = buf.indexOf(0x0a);
  if (nl < 0) return { ok: false, error: ERR_UNEXPECTED_EOF };
  const line = new TextDecoder("latin1").decode(buf.subarray(0, nl + 1));
  if (!(line.startsWith("PROXY TCP4 ") || line.startsWith("PROXY TCP6 ")) || !line.endsWith("\r\n")) {
    return { ok: false, error: ERR_BAD_MAGIC };
  }
  const parts = line.slice(11, -2).split(" ");
  if (parts.length !== 4) return { ok: false, error: ERR_BAD_MAGIC };
  const [srcIp, dstIp, sp, dp] = parts as [string, string, string, string];
  const srcPort = parsePortText(sp);
  const dstPort = parsePortText(dp);
  if (parseIP(srcIp) === null || parseIP(dstIp) === null || srcPort < 0 || dstPort < 0) return { ok: false, error: ERR_BAD_MAGIC };
  return { ok: true, addrs: { srcIp, dstIp, srcPort, dstPort }, headerLen: nl + 1 };
}

/**
 * Version 2 (proxy-protocol.txt §2.2): signature, version/command byte,
 * family/transport byte, 16-bit length, then the addresses. LOCAL (0x20)
 * carries no addresses we use; PROXY (0x21) over TCP/UDP on IPv4 (0x11,
 * 0x12) or IPv6 (0x21, 0x22) does. TLVs after the addresses are skipped.
 */
function parseV2(buf: Uint8Array): ProxyParse {
  if (buf.length < 16) return { ok: false, error: ERR_UNEXPECTED_EOF };
  const verCmd = buf[12]!;
  const fam = buf[13]!;
  const len = (buf[14]! << 8) | buf[15]!;
  const headerLen = 16 + len;
  if (buf.length < headerLen) return { ok: false, error: ERR_UNEXPECTED_EOF };
  if (verCmd >> 4 !== 2) return { ok: false, error: ERR_BAD_MAGIC };
  const cmd = verCmd & 0x0f;
  if (cmd === 0) return { ok: true, addrs: null, headerLen };
  if (cmd !== 1) return { ok: false, error: ERR_BAD_MAGIC };
  const af = fam >> 4;
  if (af === 1 && len >= 12) {
    return {
      ok: true,
      headerLen,
      addrs: {
        srcIp: ipv4Text(readU32(buf, 16)),
        dstIp: ipv4Text(readU32(buf, 20)),
        srcPort: (buf[24]! << 8) | buf[25]!,
        dstPort: (buf[26]! << 8) | buf[27]!,
      },
    };
  }
  if (af === 2 && len >= 36) {
    return {
      ok: true,
      headerLen,
      addrs: {
        srcIp: v6IPText(buf, 16),
        dstIp: v6IPText(buf, 32),
        srcPort: (buf[48]! << 8) | buf[49]!,
        dstPort: (buf[50]! << 8) | buf[51]!,
      },
    };
  }
  // AF_UNSPEC or AF_UNIX: nothing to spoof with; treat like LOCAL.
  return { ok: true, addrs: null, headerLen };
}

export const SPP_HEADER_LEN = 38;

/**
 * Cloudflare SPP: magic 0x56EC, client IP (16, IPv4 as ::ffff:a.b.c.d),
 * proxy IP (16), client port, proxy port. IPv4-mapped addresses are
 * returned as plain IPv4, as upstream treats them.
 */
export function parseSppHeader(buf: Uint8Array): ProxyParse {
  if (buf.length < SPP_HEADER_LEN) return { ok: false, error: ERR_UNEXPECTED_EOF };
  if (buf[0] !== 0x56 || buf[1] !== 0xec) return { ok: false, error: ERR_BAD_MAGIC };
  return {
    ok: true,
    headerLen: SPP_HEADER_LEN,
    addrs: {
      srcIp: v6IPText(buf, 2),
      dstIp: v6IPText(buf, 18),
      srcPort: (buf[34]! << 8) | buf[35]!,
      dstPort: (buf[36]! << 8) | buf[37]!,
    },
  };
}

function parsePortText(s: string): number {
  if (!/^[0-9]{1,5}$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}
