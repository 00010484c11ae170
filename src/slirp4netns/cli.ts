// The command line of slirp4netns 1.2: `[OPTION]... PID|PATH [TAPNAME]`,
// GNU getopt_long style. citty reads the values; the scan before it gives
// getopt's own complaints (unknown option, missing argument), which citty
// accepts silently. Every refusal prints slirp4netns's message on stderr,
// its usage on stdout and exits 1, as slirp4netns does.
import { parseArgs, type ArgsDef } from "citty";
import { parseMac } from "../wire/ethernet.ts";
import { ipv4FromText } from "../wire/addr.ts";

/** The network slirp4netns and this mode run by default. */
export const DEFAULT_CIDR = "10.0.2.0/24";
const MAX_MTU = 65521;
/** The smallest IPv4 MTU (RFC 791); slirp4netns refuses less without a message. */
const MIN_MTU = 68;
/** libslirp needs room in the guest subnet for its fixed host numbers. */
const MAX_PREFIX = 25;

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
  | { kind: "run"; config: Slirp4netnsConfig };

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

/** getopt_long's complaint about `args`, or null when every option is known and has its value. */
function getoptError(args: string[], argv0: string): string | null {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return null;
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const opt = OPTIONS[name];
      if (!opt) return `${argv0}: unrecognized option '${a}'`;
      if (opt[1] && eq < 0) {
        if (i + 1 >= args.length) return `${argv0}: option '--${name}' requires an argument`;
        i++;
      }
    } else if (a.startsWith("-") && a.length > 1) {
      // A cluster of short options; one taking a value ends it.
      for (let j = 1; j < a.length; j++) {
        const opt = SHORT.get(a[j]!);
        if (!opt) return `${argv0}: invalid option -- '${a[j]}'`;
        if (opt[1]) {
          if (j + 1 === a.length) {
            if (i + 1 >= args.length) return `${argv0}: option requires an argument -- '${a[j]}'`;
            i++;
          }
          break;
        }
      }
    }
  }
  return null;
}

/** A decimal integer in full, as strtol with its end pointer checked; NaN otherwise. */
function integer(s: string): number {
  return /^[+-]?\d+$/.test(s.trim()) ? Number(s) : NaN;
}

/** An IPv4 network in CIDR notation with a usable prefix (the address may have host bits, as slirp4netns allows). */
function validCidr(s: string): boolean {
  const m = /^([^/]+)\/(\d+)$/.exec(s);
  return m !== null && ipv4FromText(m[1]!) !== null && Number(m[2]) >= 1 && Number(m[2]) <= MAX_PREFIX;
}

/** The network part of an IPv4 CIDR as a number, and its prefix. */
function network(cidr: string): { net: number; prefix: number } {
  const [addr, len] = cidr.split("/") as [string, string];
  const prefix = Number(len);
  const value = ipv4FromText(addr)!;
  return { net: (value & (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0)) >>> 0, prefix };
}

/**
 * The first option of a valid command line that this mode does not carry
 * out, as the message that refuses it; null when it carries out them all.
 * A supervisor passes these only when its user asks for them, so refusing
 * is honest where ignoring would not be (a sandbox that is not there, an
 * outbound address not used).
 */
export function unsupportedOption(c: Slirp4netnsConfig): string | null {
  const def = network(DEFAULT_CIDR);
  const want = network(c.cidr);
  if (want.net !== def.net || want.prefix !== def.prefix) return `--cidr=${c.cidr} is not supported yet (only ${DEFAULT_CIDR})`;
  if (c.outboundAddr !== "") return "--outbound-addr is not supported yet";
  if (c.outboundAddr6 !== "") return "--outbound-addr6 is not supported yet";
  if (c.macAddress !== "") return "--macaddress is not supported yet";
  if (c.targetType === "bess") return "--target-type=bess is not supported";
  return null;
}

export function parseSlirp4netnsArgs(args: string[], argv0: string): Slirp4netnsOutcome {
  const refuse = (message: string | null): Slirp4netnsOutcome => ({ kind: "exit", code: 1, stdout: usage(argv0), stderr: message === null ? "" : `${message}\n` });
  const getopt = getoptError(args, argv0);
  if (getopt !== null) return refuse(getopt);
  // citty reads --no-NAME as NAME=false; slirp4netns's --no-host-loopback is its own alias.
  const end = args.indexOf("--");
  const v = parseArgs(args.map((a, i) => (a === "--no-host-loopback" && (end < 0 || i < end) ? "--disable-host-loopback" : a)), CITTY_ARGS) as Record<string, string | boolean | undefined> & { _: string[] };
  const str = (name: string) => (typeof v[name] === "string" ? (v[name] as string) : undefined);
  const flag = (name: string) => v[name] === true;

  if (flag("help")) return { kind: "exit", code: 0, stdout: usage(argv0), stderr: "" };
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
  const targetType = str("target-type") ?? "netns";
  if (targetType !== "netns" && targetType !== "bess") return refuse('--target-type must be either "netns" or "bess"');
  const netnsType = str("netns-type") ?? "pid";
  if (netnsType !== "pid" && netnsType !== "path") return refuse(null);
  const cidr = str("cidr") ?? DEFAULT_CIDR;
  if (!validCidr(cidr)) return refuse(null);
  const macAddress = str("macaddress") ?? "";
  if (macAddress !== "" && parseMac(macAddress) === null) return refuse(null);

  const positional = v._;
  if (positional.length === 0) return refuse(null);
  const target = positional[0]!;
  if (netnsType === "pid" && !(integer(target) > 0)) return refuse(null);

  return {
    kind: "run",
    config: {
      configure: flag("configure"),
      exitFd,
      readyFd,
      mtu,
      enableIpv6: flag("enable-ipv6"),
      apiSocket: str("api-socket") ?? "",
      cidr,
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
