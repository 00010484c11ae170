// The slirpnetstack command line: upstream's flag table plus our additions
// (docs/compatibility.md, Flags), parsed into one Config.
//
// Upstream runs Go's flag.Parse on the default FlagSet: any error prints
// the message line and the usage to stderr and exits 2, and so does -h
// (startup step 3, Parsing rules). Values of -L/-R are checked here, -allow,
// -deny, -m and -source-ipv4/6 are even resolved here (see Parsing rules),
// before main gets to -version. Forward specs leave with their default IPs
// filled in (Default addresses).
import type { ForwardSpec } from "../host/flows/forward-spec.ts";
import type { MetricsAddress } from "../host/control/metrics.ts";
import type { FirewallRule } from "../host/control/policy.ts";
import type { Resolver } from "../host/control/resolve.ts";
import { parseFirewallList } from "./firewall.ts";
import { applyForwardDefaults, parseForwardSpec } from "./forward.ts";
import { FlagSet, type ParsedFlags } from "./goflag.ts";
import { formatIP, parseIP } from "../wire/addr.ts";
import { parseMetricsAddress } from "./metrics-addr.ts";

export interface Config {
  version: boolean;
  /** -fd: inherited datagram socket carrying Ethernet frames; -1 when not given. */
  fd: number;
  netns: string;
  ifname: string;
  /** 0 means: 1500 with -fd, the device's MTU otherwise (docs/compatibility.md, Devices and MTU). */
  mtu: number;
  localForwards: ForwardSpec[];
  remoteForwards: ForwardSpec[];
  /** -max-local-clients: live clients per -L TCP listener (0: no cap). */
  maxLocalClients: number;
  /** -proxy-header-timeout in milliseconds: how long a tcppp client may take to send its PROXY header (0: no limit). */
  proxyHeaderTimeoutMs: number;
  quiet: boolean;
  /** Whether -quiet appeared on the command line (run mode defaults to quiet). */
  quietSet: boolean;
  metrics: MetricsAddress | null;
  maxprocs: number;
  pcap: string;
  exitWithParent: boolean;
  enableHost: boolean;
  enableRouting: boolean;
  /** Whether -enable-routing appeared on the command line (its default differs in run mode). */
  enableRoutingSet: boolean;
  enableDns: boolean;
  /** Whether -enable-dns appeared on the command line (its default differs in run mode). */
  enableDnsSet: boolean;
  /** -dhcp: the DHCPv4 server on the guest link. */
  dhcp: boolean;
  /** Whether -dhcp appeared on the command line (its default differs in run mode). */
  dhcpSet: boolean;
  /** -ra: router advertisements and stateless DHCPv6 on the guest link. */
  ra: boolean;
  /** Whether -ra appeared on the command line (its default differs in run mode). */
  raSet: boolean;
  sourceIpv4: string | null;
  sourceIpv6: string | null;
  allow: FirewallRule[];
  deny: FirewallRule[];
  /** -dns-ttl in milliseconds (docs/compatibility.md, DNS cache). */
  dnsTtlMs: number;
  readyFd: number;
  exitFd: number;
  /** -api-socket: the JSON control API's unix socket path; "" when not given. */
  apiSocket: string;
  disableOffload: boolean;
  /** -enable-sandbox: after setup, an empty read-only root and capabilities dropped (src/sandbox/sandbox.ts). */
  enableSandbox: boolean;
  /** -enable-seccomp: once set up, the syscalls the stack never makes fail with EPERM (src/sandbox/seccomp.ts). */
  enableSeccomp: boolean;
  /** -exit-grace in milliseconds: how long data in flight may drain at exit. */
  exitGraceMs: number;
  /** -max-tcp-connections, -max-syn-received, -max-buffer-bytes: caps on guest TCP (see README). */
  maxTcpConnections: number;
  maxSynReceived: number;
  maxBufferBytes: number;
  /** -max-udp-flows, -max-udp-ports, -max-dns-queries: caps on guest UDP (see README). */
  maxUdpFlows: number;
  maxUdpPorts: number;
  maxDnsQueries: number;
  /** -max-neighbors: guest addresses in the neighbour table, resolved or not. */
  maxNeighbors: number;
  /** -icmp: guest pings to other hosts sent out for real ("forward") or answered by the stack ("local"). */
  icmp: IcmpMode;
  /** Whether -icmp appeared on the command line (its default differs in run mode). */
  icmpSet: boolean;
}

export type IcmpMode = "forward" | "local";

export type ParseOutcome =
  | { kind: "run"; config: Config; positional: string[] }
  | { kind: "exit"; code: 2; stderr: string };

export interface ParseDependencies {
  resolver: Resolver;
}

const DEFAULT_DNS_TTL_MS = 5000;
/** -L TCP: clients per listener, and the wait for a PROXY header (slowloris). */
const DEFAULT_MAX_LOCAL_CLIENTS = 4096;
const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 10_000;
const DEFAULT_EXIT_GRACE_MS = 5000;
/** Guest UDP caps: room for a heavy real workload (a resolver storm, a P2P client), far below the host's 28k ephemeral ports. */
const DEFAULT_MAX_TCP_CONNECTIONS = 16384;
const DEFAULT_MAX_SYN_RECEIVED = 1024;
const DEFAULT_MAX_BUFFER_BYTES = 256 * 1024 * 1024;
const DEFAULT_MAX_UDP_FLOWS = 16384;
const DEFAULT_MAX_UDP_PORTS = 4096;
const DEFAULT_MAX_DNS_QUERIES = 256;
/** A guest has a few addresses per family; the cap only stops a guest that forges thousands. */
const DEFAULT_MAX_NEIGHBORS = 1024;

/** The flag table. `argv0` is what the usage header names ("Usage of ARGV0:"). */
export function buildFlagSet(argv0: string, deps: ParseDependencies): FlagSet {
  const { resolver } = deps;
  const set = new FlagSet(argv0);
  set
    .define({ name: "version", kind: "bool", usage: "Print slirpnetstack version and exit" })
    .define({ name: "fd", kind: "int", default: -1, usage: "Unix datagram socket file descriptor" })
    .define({ name: "netns", kind: "string", usage: "path to network namespace" })
    .define({ name: "interface", kind: "string", default: "tun0", usage: "interface name within netns" })
    .define({ name: "mtu", kind: "uint", usage: "MTU (default: 1500 for -fd, auto for -netns)" })
    .define({
      name: "L",
      kind: "value",
      repeatable: true,
      usage: "Connections to local side forwarded remote",
      parse: (text) => parseForwardSpec(text, "local"),
    })
    .define({
      name: "R",
      kind: "value",
      repeatable: true,
      usage: "Connections to remote side forwarded local",
      parse: (text) => parseForwardSpec(text, "remote"),
    })
    .define({ name: "quiet", kind: "bool", usage: "Print less stuff on screen" })
    .define({
      name: "m",
      kind: "value",
      usage: "Metrics addr",
      parse: (text) => parseMetricsAddress(text, resolver),
    })
    .define({ name: "maxprocs", kind: "int", usage: "set GOMAXPROCS variable to limit cpu" })
    .define({ name: "pcap", kind: "string", usage: "path to PCAP file" })
    .define({ name: "exit-with-parent", kind: "bool", usage: "Exit with parent process" })
    .define({
      name: "enable-host",
      kind: "bool",
      usage: "Allow guest to connecting to IP's that are in the host main and local routing tables",
    })
    .define({
      name: "enable-routing",
      kind: "bool",
      usage: "Allow guest connecting to non-local IP's that are likley to be routed to the internet",
    })
    .define({
      name: "source-ipv4",
      kind: "value",
      usage: "When connecting, use the selected Source IP for ipv4",
      // Go's IPFlag prints "<nil>" for no address, so the default is the zero value.
      defaultText: "<nil>",
      zeroText: "<nil>",
      parse: (text) => parseSourceIP(text, 4, resolver),
    })
    .define({
      name: "source-ipv6",
      kind: "value",
      usage: "When connecting, use the selected Source IP for ipv6",
      defaultText: "<nil>",
      zeroText: "<nil>",
      parse: (text) => parseSourceIP(text, 6, resolver),
    })
    .define({
      name: "allow",
      kind: "value",
      repeatable: true,
      usage: "When routing, allow specified IP prefix and port range",
      parse: (text) => parseFirewallList(text, resolver),
    })
    .define({
      name: "deny",
      kind: "value",
      repeatable: true,
      usage: "When routing, deny specified IP prefix and port range",
      parse: (text) => parseFirewallList(text, resolver),
    })
    .define({
      name: "dns-ttl",
      kind: "duration",
      default: DEFAULT_DNS_TTL_MS,
      usage: "For how long to cache DNS in case of dns labels passed to forward target.",
    })
    // Our additions (they come on top and change no upstream flag).
    .define({
      name: "ready-fd",
      kind: "int",
      default: -1,
      usage: 'Write "1" to this fd once the stack is ready (slirp4netns --ready-fd)',
    })
    .define({
      name: "exit-fd",
      kind: "int",
      default: -1,
      usage: "Exit when this fd is closed or readable (slirp4netns --exit-fd)",
    })
    .define({
      name: "api-socket",
      kind: "string",
      usage: "Serve the JSON control API (slirp4netns --api-socket: add_hostfwd, list_hostfwd, remove_hostfwd; and list_flows) on this unix socket, created 0600",
    })
    .define({
      name: "enable-dns",
      kind: "bool",
      usage: "Serve DNS at 10.0.2.3 and fd00::3, relaying to the host's resolvers (default on in run mode)",
    })
    .define({
      name: "dhcp",
      kind: "bool",
      usage: "Serve DHCPv4 to the guest: 10.0.2.100/24, router 10.0.2.2, DNS, MTU (default on in run mode)",
    })
    .define({
      name: "ra",
      kind: "bool",
      usage: "Send IPv6 router advertisements (fd00::/64 for SLAAC, MTU, DNS) and answer stateless DHCPv6 (default on in run mode)",
    })
    .define({
      name: "disable-offload",
      kind: "bool",
      usage: "Do not negotiate tap checksum/segmentation offloads",
    })
    .define({
      name: "enable-sandbox",
      kind: "bool",
      usage: "Once set up, run in a mount namespace of its own whose root is an empty read-only tmpfs holding only /etc (read-only), and drop all capabilities but CAP_NET_BIND_SERVICE (slirp4netns --enable-sandbox; not in run mode)",
    })
    .define({
      name: "enable-seccomp",
      kind: "bool",
      usage: "Once set up, make the syscalls the stack never needs (exec, ptrace, mount, namespaces, prctl, modules, reboot, ...) fail with EPERM in every thread (slirp4netns --enable-seccomp)",
    })
    .define({
      name: "max-local-clients",
      kind: "uint",
      default: DEFAULT_MAX_LOCAL_CLIENTS,
      usage: "Most clients at a time per -L TCP listener; beyond it new clients are reset (0: no limit)",
    })
    .define({
      name: "proxy-header-timeout",
      kind: "duration",
      default: DEFAULT_PROXY_HEADER_TIMEOUT_MS,
      usage: "How long a -L tcppp client may take to send its PROXY header before it is reset (0: no limit)",
    })
    .define({
      name: "exit-grace",
      kind: "duration",
      default: DEFAULT_EXIT_GRACE_MS,
      usage: "At exit, how long data in flight may drain before unfinished connections are reset",
    })
    .define({
      name: "max-tcp-connections",
      kind: "uint",
      default: DEFAULT_MAX_TCP_CONNECTIONS,
      usage: "Most TCP connections in any state; beyond it a guest SYN is dropped (the guest retries) and a -L connection is refused",
    })
    .define({
      name: "max-syn-received",
      kind: "uint",
      default: DEFAULT_MAX_SYN_RECEIVED,
      usage: "Most guest TCP handshakes waiting for the host's connect, and as many answered but not completed; beyond it new SYNs are dropped",
    })
    .define({
      name: "max-buffer-bytes",
      kind: "value",
      typeWord: "size",
      default: DEFAULT_MAX_BUFFER_BYTES,
      defaultText: "256MiB",
      zeroText: "0",
      usage: "Most bytes in TCP buffers (send, receive, out-of-order) of all connections together, beyond 16 KiB each; near it windows shrink and host reads pause",
      parse: parseByteSize,
    })
    .define({
      name: "max-udp-flows",
      kind: "uint",
      default: DEFAULT_MAX_UDP_FLOWS,
      usage: "Most guest UDP flows at a time; beyond it the least recently active one is ended",
    })
    .define({
      name: "max-udp-ports",
      kind: "uint",
      default: DEFAULT_MAX_UDP_PORTS,
      usage: "Most host UDP ports held for guest flows (one per guest address and port); beyond it the least recently used is freed",
    })
    .define({
      name: "max-dns-queries",
      kind: "uint",
      default: DEFAULT_MAX_DNS_QUERIES,
      usage: "Most DNS forwarder queries in flight; beyond it the oldest is dropped",
    })
    .define({
      name: "max-neighbors",
      kind: "uint",
      default: DEFAULT_MAX_NEIGHBORS,
      usage: "Most guest addresses with a known or sought MAC (2 at least); beyond it the least recently used is forgotten",
    })
    .define({
      name: "icmp",
      kind: "value",
      typeWord: "mode",
      default: "local",
      defaultText: "local",
      zeroText: "",
      usage: "Guest pings to other hosts: forward (through the host's ICMP sockets: real replies, real round-trip times) or local (answered by the stack); forward in run mode",
      parse: parseIcmpMode,
    });
  return set;
}

/**
 * -source-ipv4/-source-ipv6: an IP literal, or a name (SRV syntax allowed)
 * resolved now. Upstream prefers IPv4 for both flags; we prefer the flag's
 * own family, since an IPv4 source can never serve IPv6 destinations.
 */
async function parseSourceIP(text: string, family: 4 | 6, resolver: Resolver): Promise<string> {
  const literal = parseIP(text);
  if (literal !== null) return formatIP(literal);
  return (await resolver.resolveLabel(text, family)).ip;
}

/** -icmp's two values. */
function parseIcmpMode(text: string): IcmpMode {
  if (text === "forward" || text === "local") return text;
  throw new Error("want forward or local");
}

/** A byte count: digits, optionally followed by K, M or G (KiB, MiB, GiB; powers of 1024). */
export function parseByteSize(text: string): number {
  const m = /^(\d+)([KMG](?:iB)?)?$/i.exec(text);
  if (m === null) throw new Error("want bytes, optionally with a K, M or G suffix (e.g. 64MiB)");
  const unit = m[2] === undefined ? 1 : 1024 ** ("KMG".indexOf(m[2][0]!.toUpperCase()) + 1);
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) throw new Error("value out of range");
  return n;
}

/**
 * What -h adds after Go's flag list: the two ways to run us, each with an
 * example (run mode is ours; upstream only attaches).
 */
export function usageForms(argv0: string): string {
  return [
    "",
    "Run a command in a new network namespace with networking (run mode):",
    `  ${argv0} [flags] [-- COMMAND [ARGS...]]`,
    `  e.g. ${argv0} -L 8080 -- python3 -m http.server 8080`,
    "Attach to a tap or tun device in an existing network namespace:",
    `  ${argv0} -netns /proc/PID/ns/net [-interface tun0] [flags]`,
    `  e.g. ${argv0} -netns /proc/1234/ns/net -enable-routing`,
    "",
  ].join("\n");
}

/** Parses argv (without the program name). */
export async function parseCommandLine(
  argv: readonly string[],
  argv0: string,
  deps: ParseDependencies,
): Promise<ParseOutcome> {
  const set = buildFlagSet(argv0, deps);
  const result = await set.parse(argv);
  const usage = set.usage() + usageForms(argv0);
  if (result.kind === "help") return { kind: "exit", code: 2, stderr: usage };
  if (result.kind === "error") return { kind: "exit", code: 2, stderr: `${result.message}\n${usage}` };
  return { kind: "run", config: toConfig(result.values), positional: result.positional };
}

function toConfig(flags: ParsedFlags): Config {
  return {
    version: flags.get<boolean>("version"),
    fd: flags.get<number>("fd"),
    netns: flags.get<string>("netns"),
    ifname: flags.get<string>("interface"),
    mtu: flags.get<number>("mtu"),
    localForwards: flags.get<ForwardSpec[]>("L").map((spec) => applyForwardDefaults(spec, "local")),
    remoteForwards: flags.get<ForwardSpec[]>("R").map((spec) => applyForwardDefaults(spec, "remote")),
    maxLocalClients: flags.get<number>("max-local-clients"),
    proxyHeaderTimeoutMs: flags.get<number>("proxy-header-timeout"),
    quiet: flags.get<boolean>("quiet"),
    quietSet: flags.isSet("quiet"),
    metrics: flags.get<MetricsAddress | null>("m"),
    maxprocs: flags.get<number>("maxprocs"),
    pcap: flags.get<string>("pcap"),
    exitWithParent: flags.get<boolean>("exit-with-parent"),
    enableHost: flags.get<boolean>("enable-host"),
    enableRouting: flags.get<boolean>("enable-routing"),
    enableRoutingSet: flags.isSet("enable-routing"),
    enableDns: flags.get<boolean>("enable-dns"),
    enableDnsSet: flags.isSet("enable-dns"),
    dhcp: flags.get<boolean>("dhcp"),
    dhcpSet: flags.isSet("dhcp"),
    ra: flags.get<boolean>("ra"),
    raSet: flags.isSet("ra"),
    sourceIpv4: flags.get<string | null>("source-ipv4"),
    sourceIpv6: flags.get<string | null>("source-ipv6"),
    allow: flags.get<FirewallRule[][]>("allow").flat(),
    deny: flags.get<FirewallRule[][]>("deny").flat(),
    dnsTtlMs: flags.get<number>("dns-ttl"),
    readyFd: flags.get<number>("ready-fd"),
    exitFd: flags.get<number>("exit-fd"),
    apiSocket: flags.get<string>("api-socket"),
    disableOffload: flags.get<boolean>("disable-offload"),
    enableSandbox: flags.get<boolean>("enable-sandbox"),
    enableSeccomp: flags.get<boolean>("enable-seccomp"),
    exitGraceMs: flags.get<number>("exit-grace"),
    maxTcpConnections: flags.get<number>("max-tcp-connections"),
    maxSynReceived: flags.get<number>("max-syn-received"),
    maxBufferBytes: flags.get<number>("max-buffer-bytes"),
    maxUdpFlows: flags.get<number>("max-udp-flows"),
    maxUdpPorts: flags.get<number>("max-udp-ports"),
    maxDnsQueries: flags.get<number>("max-dns-queries"),
    maxNeighbors: flags.get<number>("max-neighbors"),
    icmp: flags.get<IcmpMode>("icmp"),
    icmpSet: flags.isSet("icmp"),
  };
}
