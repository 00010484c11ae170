// The command line of slirp4netns 1.2: `[OPTION]... PID|PATH [TAPNAME]`,
// GNU getopt_long style. citty reads the values; the scan before it gives
// getopt's own complaints (unknown option, missing argument), which citty
// accepts silently. Every refusal prints slirp4netns's message on stderr,
// its usage on stdout and exits 1, as slirp4netns does.
import { parseArgs, type ArgsDef } from "citty";
import { ipFromV4, ipv4FromText, ipv6FromText, type IP } from "../wire/addr.ts";
import { guestNetV4, MAX_GUEST_PREFIX_V4, type GuestNetV4 } from "../wire/guest-net.ts";

/** The network slirp4netns and this mode run by default. */
export const DEFAULT_CIDR = "10.0.2.0/24";
const MAX_MTU = 65521;
/** The smallest IPv4 MTU (RFC 791); slirp4netns refuses less without a message. */
const MIN_MTU = 68;
/** The options slirp4netns calls experimental; it prints a warning on stdout for each. */
const EXPERIMENTAL = new Set(["outbound-addr", "outbound-addr6"]);

export interface Slirp4netnsConfig {
  configure: boolean;
  exitFd: number;
  readyFd: number;
  mtu: number;
  enableIpv6: boolean;
  apiSocket: string;
  cidr: string;
  disableHostLoopback: boolean;
  netnsType: "pid" | "path";
  usernsPath: string;
  enableSandbox: boolean;
  enableSeccomp: boolean;
  outboundAddr: string;
  outboundAddr6: string;
  disableDns: boolean;
  macAddress: string;
  targetType: "netns" | "bess";
  /** PID or PATH. */
  target: string;
  tapName: string;
}

export type Slirp4netnsOutcome =
  | { kind: "exit"; code: number; stdout: string; stderr: string }
  | { kind: "version" }
  /** `stdout`: the warnings slirp4netns prints for experimental options. */
  | { kind: "run"; config: Slirp4netnsConfig; stdout: string };

/** Long options: name -> [short letter or "", takes a value]. Aliases as slirp4netns has them. */
const OPTIONS: Record<string, readonly [string, boolean]> = {
  configure: ["c", false],
  "exit-fd": ["e", true],
  "ready-fd": ["r", true],
  mtu: ["m", true],
  "enable-ipv6": ["6", false],
  "api-socket": ["a", true],
  cidr: ["", true],
  "disable-host-loopback": ["", false],
  "no-host-loopback": ["", false],
  "netns-type": ["", true],
  "userns-path": ["", true],
  "enable-sandbox": ["", false],
  "create-sandbox": ["", false],
  "enable-seccomp": ["", false],
  "outbound-addr": ["", true],
  "outbound-addr6": ["", true],
  "disable-dns": ["", false],
  macaddress: ["", true],
  "target-type": ["", true],
  help: ["h", false],
  version: ["v", false],
};

const SHORT = new Map(Object.entries(OPTIONS).flatMap(([name, [short, arg]]) => (short ? [[short, [name, arg] as const]] : [])));

const CITTY_ARGS: ArgsDef = Object.fromEntries(
  Object.entries(OPTIONS).map(([name, [short, arg]]) => [name, { type: arg ? "string" : "boolean", ...(short ? { alias: short } : {}) }]),
);

/** slirp4netns's --help, laid out like its own. */
export function usage(argv0: string): string {
  return `Usage: ${argv0} [OPTION]... PID|PATH [TAPNAME]
User-mode networking for unprivileged network namespaces.

-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default=1500, max=65521)
-6, --enable-ipv6        enable IPv6 (experimental)
-a, --api-socket=PATH    specify API socket path
--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE 	 specify network namespace type ([path|pid], default=pid)
--userns-path=PATH	 specify user namespace path
--enable-sandbox         create a new mount namespace (and drop all caps except CAP_NET_BIND_SERVICE if running as the root)
--enable-seccomp         enable seccomp to limit syscalls (experimental)
--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)
--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect (experimental)
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
--target-type=TYPE       specify the target type ([netns|bess], default=netns)
-h, --help               show this help and exit
-v, --version            show version and exit
`;
}

/**
 * What getopt_long sees in `args`: its complaint (null when every option is
 * known and has its value), and the warnings slirp4netns prints on stdout
 * as it meets each experimental option, up to a complaint, -h or -v.
 */
function scan(args: string[], argv0: string): { error: string | null; warnings: string } {
  let warnings = "";
  const done = (error: string | null) => ({ error, warnings });
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") break;
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const opt = OPTIONS[name];
      if (!opt) return done(`${argv0}: unrecognized option '${a}'`);
      if (opt[1] && eq < 0) {
        if (i + 1 >= args.length) return done(`${argv0}: option '--${name}' requires an argument`);
        i++;
      }
      if (name === "help" || name === "version") break;
      if (EXPERIMENTAL.has(name)) warnings += `WARNING: Support for --${name} is experimental\n`;
    } else if (a.startsWith("-") && a.length > 1) {
      // A cluster of short options; one taking a value ends it.
      for (let j = 1; j < a.length; j++) {
        const opt = SHORT.get(a[j]!);
        if (!opt) return done(`${argv0}: invalid option -- '${a[j]}'`);
        if (opt[0] === "help" || opt[0] === "version") return done(null);
        if (opt[1]) {
          if (j + 1 === a.length) {
            if (i + 1 >= args.length) return done(`${argv0}: option requires an argument -- '${a[j]}'`);
            i++;
          }
          break;
        }
      }
    }
  }
  return done(null);
}

/** A decimal integer in full, as strtol with its end pointer checked; NaN otherwise. */
function integer(s: string): number {
  return /^[+-]?\d+$/.test(s.trim()) ? Number(s) : NaN;
}

/**
 * --cidr as slirp4netns reads it: four 1-3 digit numbers and a 1-2 digit
 * prefix, a valid address, a prefix of 1..MAX_GUEST_PREFIX_V4, no host
 * bits. The plan, or slirp4netns's message.
 */
export function parseCidr(cidr: string): GuestNetV4 | string {
  const m = /^((?:[0-9]{1,3}\.){3}[0-9]{1,3})\/([0-9]{1,2})$/.exec(cidr);
  if (m === null) return `invalid CIDR: ${cidr}\n`;
  const network = ipv4FromText(m[1]!);
  if (network === null) return `invalid network address: ${m[1]}\n`;
  const prefix = Number(m[2]);
  if (prefix < 1 || prefix > MAX_GUEST_PREFIX_V4) return `prefix length needs to be 1-${MAX_GUEST_PREFIX_V4}\n`;
  return guestNetV4(network, prefix) ?? "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24\n";
}

/**
 * --macaddress as slirp4netns reads it: up to six ':'-separated parts,
 * each what scanf's %x takes at its start (blanks, a sign, 0x, hex
 * digits) and 0..255; fewer parts leave the last bytes zero. The MAC, or
 * slirp4netns's two lines.
 */
export function parseMacAddress(text: string): Uint8Array | string {
  const reason = "macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by a ':').";
  const parts = text.split(":");
  const mac = new Uint8Array(6);
  for (let i = 0; i < Math.min(parts.length, 6); i++) {
    const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX])?([0-9a-fA-F]*)/.exec(parts[i]!)!;
    const digits = m[3]!.replace(/^0+/, "");
    const value = digits.length > 2 ? 256 : digits === "" ? 0 : parseInt(digits, 16);
    if ((m[2] === undefined && m[3] === "") || value > 255 || (m[1] === "-" && value !== 0)) return `"${text}" is an invalid MAC address.\n${reason}`;
    mac[i] = value;
  }
  if (parts.length > 6) return `"${text}" is an invalid MAC address.  Is it too long?\n${reason}`;
  return mac;
}

/** The guest network, the tap's MAC, and the host addresses outbound sockets bind to. */
export interface Slirp4netnsNetwork {
  net: GuestNetV4;
  /** --macaddress; null: the kernel's random one. */
  mac: Uint8Array | null;
  outboundV4: IP | null;
  outboundV6: IP | null;
}

/**
 * The addresses of a command line that parsed, checked in slirp4netns's
 * order (--cidr, --outbound-addr, --outbound-addr6, --macaddress). An
 * outbound value that is no address of its family names an interface,
 * whose first address of that family `interfaceAddress` gives. The
 * network, or what slirp4netns prints on stderr before it exits 1 (its
 * outbound messages end without a newline, the "iterface" is its).
 */
export function slirp4netnsNetwork(c: Slirp4netnsConfig, interfaceAddress: (name: string, family: 4 | 6) => IP | null): Slirp4netnsNetwork | string {
  const net = parseCidr(c.cidr);
  if (typeof net === "string") return net;
  let outboundV4: IP | null = null;
  if (c.outboundAddr !== "") {
    const literal = ipv4FromText(c.outboundAddr);
    outboundV4 = literal !== null ? ipFromV4(literal) : interfaceAddress(c.outboundAddr, 4);
    if (outboundV4 === null) return "outbound-addr has to be valid ipv4 address or interface name.";
  }
  let outboundV6: IP | null = null;
  if (c.outboundAddr6 !== "") {
    const literal = ipv6FromText(c.outboundAddr6);
    outboundV6 = literal !== null ? { family: 6, bytes: literal } : interfaceAddress(c.outboundAddr6, 6);
    if (outboundV6 === null) return "outbound-addr has to be valid ipv4 address or iterface name.";
  }
  let mac: Uint8Array | null = null;
  if (c.macAddress !== "") {
    const parsed = parseMacAddress(c.macAddress);
    if (typeof parsed === "string") return parsed;
    mac = parsed;
  }
  return { net, mac, outboundV4, outboundV6 };
}

/**
 * The first option of a valid command line that this mode does not carry
 * out, as the message that refuses it; null when it carries out them all.
 * A supervisor passes these only when its user asks for them, so refusing
 * is honest where ignoring would not be (a sandbox that is not there, an
 * outbound address not used).
 */
export function unsupportedOption(c: Slirp4netnsConfig): string | null {
  if (c.targetType === "bess") return "--target-type=bess is not supported";
  return null;
}

export function parseSlirp4netnsArgs(args: string[], argv0: string): Slirp4netnsOutcome {
  const { error, warnings } = scan(args, argv0);
  const refuse = (message: string | null): Slirp4netnsOutcome => ({ kind: "exit", code: 1, stdout: warnings + usage(argv0), stderr: message === null ? "" : `${message}\n` });
  if (error !== null) return refuse(error);
  // citty reads --no-NAME as NAME=false; slirp4netns's --no-host-loopback is its own alias.
  const end = args.indexOf("--");
  const v = parseArgs(args.map((a, i) => (a === "--no-host-loopback" && (end < 0 || i < end) ? "--disable-host-loopback" : a)), CITTY_ARGS) as Record<string, string | boolean | undefined> & { _: string[] };
  const str = (name: string) => (typeof v[name] === "string" ? (v[name] as string) : undefined);
  const flag = (name: string) => v[name] === true;

  if (flag("help")) return { kind: "exit", code: 0, stdout: warnings + usage(argv0), stderr: "" };
  if (flag("version")) return { kind: "version" };

  const fd = (name: string): number | null => {
    const s = str(name);
    if (s === undefined) return -1;
    const n = integer(s);
    return Number.isInteger(n) && n >= 0 ? n : null;
  };
  const exitFd = fd("exit-fd");
  if (exitFd === null) return refuse("exit-fd must be a non-negative integer");
  const readyFd = fd("ready-fd");
  if (readyFd === null) return refuse("ready-fd must be a non-negative integer");
  let mtu = 1500;
  if (str("mtu") !== undefined) {
    mtu = integer(str("mtu")!);
    if (!(mtu > 0 && mtu <= MAX_MTU)) return refuse(`MTU must be a positive integer (< ${MAX_MTU + 1})`);
    if (mtu < MIN_MTU) return refuse(null);
  }
  const macAddress = str("macaddress") ?? "";
  if (macAddress !== "" && !flag("configure")) return refuse("--macaddr cannot be specified when --configure or -c is not specified");
  const targetType = str("target-type") ?? "netns";
  if (targetType !== "netns" && targetType !== "bess") return refuse('--target-type must be either "netns" or "bess"');
  const netnsType = str("netns-type") ?? "pid";
  if (netnsType !== "pid" && netnsType !== "path") return refuse(null);

  const positional = v._;
  if (positional.length === 0) return refuse(null);
  const target = positional[0]!;
  if (netnsType === "pid" && !(integer(target) > 0)) return refuse(null);

  return {
    kind: "run",
    stdout: warnings,
    config: {
      configure: flag("configure"),
      exitFd,
      readyFd,
      mtu,
      enableIpv6: flag("enable-ipv6"),
      apiSocket: str("api-socket") ?? "",
      cidr: str("cidr") ?? DEFAULT_CIDR,
      disableHostLoopback: flag("disable-host-loopback"),
      netnsType,
      usernsPath: str("userns-path") ?? "",
      enableSandbox: flag("enable-sandbox") || flag("create-sandbox"),
      enableSeccomp: flag("enable-seccomp"),
      outboundAddr: str("outbound-addr") ?? "",
      outboundAddr6: str("outbound-addr6") ?? "",
      disableDns: flag("disable-dns"),
      macAddress,
      targetType,
      target,
      tapName: positional[1] ?? "tap0",
    },
  };
}
