// The slirpnetstack command line (docs/compatibility.md, Flags).
import { describe, expect, test } from "bun:test";
import { parseCommandLine, usageForms, type Config, type ParseOutcome } from "../../../src/cli/options.ts";
import { createSystemResolver } from "../../../src/host/control/resolve.ts";
import { formatIP } from "../../../src/wire/addr.ts";

const ARGV0 = "./slirpnetstack";
const resolver = createSystemResolver({ dnsTimeoutMs: 300, dnsAttempts: 1 });

async function parse(args: string[]): Promise<ParseOutcome> {
  return await parseCommandLine(args, ARGV0, { resolver });
}

async function run(args: string[]): Promise<{ config: Config; positional: string[] }> {
  const outcome = await parse(args);
  if (outcome.kind !== "run") throw new Error(`expected run, got: ${outcome.stderr.split("\n")[0]}`);
  return outcome;
}

async function firstErrorLine(args: string[]): Promise<string> {
  const outcome = await parse(args);
  if (outcome.kind !== "exit") throw new Error(`expected an error for ${JSON.stringify(args)}`);
  expect(outcome.code).toBe(2);
  return outcome.stderr.split("\n")[0]!;
}

// The usage of the upstream flags, verbatim (docs/compatibility.md, Usage text).
const UPSTREAM_USAGE = `Usage of ARGV0:
  -L value
    \tConnections to local side forwarded remote
  -R value
    \tConnections to remote side forwarded local
  -allow value
    \tWhen routing, allow specified IP prefix and port range
  -deny value
    \tWhen routing, deny specified IP prefix and port range
  -dns-ttl duration
    \tFor how long to cache DNS in case of dns labels passed to forward target. (default 5s)
  -enable-host
    \tAllow guest to connecting to IP's that are in the host main and local routing tables
  -enable-routing
    \tAllow guest connecting to non-local IP's that are likley to be routed to the internet
  -exit-with-parent
    \tExit with parent process
  -fd int
    \tUnix datagram socket file descriptor (default -1)
  -interface string
    \tinterface name within netns (default "tun0")
  -m value
    \tMetrics addr
  -maxprocs int
    \tset GOMAXPROCS variable to limit cpu
  -mtu uint
    \tMTU (default: 1500 for -fd, auto for -netns)
  -netns string
    \tpath to network namespace
  -pcap string
    \tpath to PCAP file
  -quiet
    \tPrint less stuff on screen
  -source-ipv4 value
    \tWhen connecting, use the selected Source IP for ipv4
  -source-ipv6 value
    \tWhen connecting, use the selected Source IP for ipv6
  -version
    \tPrint slirpnetstack version and exit
`.replace("ARGV0", ARGV0);

const OUR_ADDITIONS: Record<string, string> = {
  "api-socket":
    "  -api-socket string\n    \tServe the JSON control API (slirp4netns --api-socket: add_hostfwd, list_hostfwd, remove_hostfwd; and list_flows) on this unix socket, created 0600\n",
  dhcp: "  -dhcp\n    \tServe DHCPv4 to the guest: 10.0.2.100/24, router 10.0.2.2, DNS, MTU (default on in run mode)\n",
  "disable-offload": "  -disable-offload\n    \tDo not negotiate tap checksum/segmentation offloads\n",
  "enable-sandbox":
    "  -enable-sandbox\n    \tOnce set up, run in a mount namespace of its own whose root is an empty read-only tmpfs holding only /etc (read-only), and drop all capabilities but CAP_NET_BIND_SERVICE (slirp4netns --enable-sandbox; not in run mode)\n",
  "enable-seccomp":
    "  -enable-seccomp\n    \tOnce set up, make the syscalls the stack never needs (exec, ptrace, mount, namespaces, prctl, modules, reboot, ...) fail with EPERM in every thread (slirp4netns --enable-seccomp)\n",
  icmp: "  -icmp mode\n    \tGuest pings to other hosts: forward (through the host's ICMP sockets: real replies, real round-trip times) or local (answered by the stack); forward in run mode (default local)\n",
  "enable-dns":
    "  -enable-dns\n    \tServe DNS at 10.0.2.3 and fd00::3, relaying to the host's resolvers (default on in run mode)\n",
  "exit-grace":
    "  -exit-grace duration\n    \tAt exit, how long data in flight may drain before unfinished connections are reset (default 5s)\n",
  "exit-fd": "  -exit-fd int\n    \tExit when this fd is closed or readable (slirp4netns --exit-fd) (default -1)\n",
  "max-local-clients":
    "  -max-local-clients uint\n    \tMost clients at a time per -L TCP listener; beyond it new clients are reset (0: no limit) (default 4096)\n",
  ra: "  -ra\n    \tSend IPv6 router advertisements (fd00::/64 for SLAAC, MTU, DNS) and answer stateless DHCPv6 (default on in run mode)\n",
  "proxy-header-timeout":
    "  -proxy-header-timeout duration\n    \tHow long a -L tcppp client may take to send its PROXY header before it is reset (0: no limit) (default 10s)\n",
  "max-dns-queries": "  -max-dns-queries uint\n    \tMost DNS forwarder queries in flight; beyond it the oldest is dropped (default 256)\n",
  "max-neighbors":
    "  -max-neighbors uint\n    \tMost guest addresses with a known or sought MAC (2 at least); beyond it the least recently used is forgotten (default 1024)\n",
  "max-buffer-bytes":
    "  -max-buffer-bytes size\n    \tMost bytes in TCP buffers (send, receive, out-of-order) of all connections together, beyond 16 KiB each; near it windows shrink and host reads pause (default 256MiB)\n",
  "max-syn-received":
    "  -max-syn-received uint\n    \tMost guest TCP handshakes waiting for the host's connect, and as many answered but not completed; beyond it new SYNs are dropped (default 1024)\n",
  "max-tcp-connections":
    "  -max-tcp-connections uint\n    \tMost TCP connections in any state; beyond it a guest SYN is dropped (the guest retries) and a -L connection is refused (default 16384)\n",
  "max-udp-flows":
    "  -max-udp-flows uint\n    \tMost guest UDP flows at a time; beyond it the least recently active one is ended (default 16384)\n",
  "max-udp-ports":
    "  -max-udp-ports uint\n    \tMost host UDP ports held for guest flows (one per guest address and port); beyond it the least recently used is freed (default 4096)\n",
  "ready-fd":
    '  -ready-fd int\n    \tWrite "1" to this fd once the stack is ready (slirp4netns --ready-fd) (default -1)\n',
};

async function usageText(): Promise<string> {
  const outcome = await parse(["-h"]);
  if (outcome.kind !== "exit") throw new Error("-h did not exit");
  return outcome.stderr;
}

describe("usage text", () => {
  test("the upstream flags' usage is byte for byte upstream's, then the two forms", async () => {
    let usage = await usageText();
    expect(usage.endsWith(usageForms(ARGV0))).toBe(true);
    usage = usage.slice(0, -usageForms(ARGV0).length);
    for (const block of Object.values(OUR_ADDITIONS)) {
      expect(usage).toContain(block);
      usage = usage.replace(block, "");
    }
    expect(usage).toBe(UPSTREAM_USAGE);
  });

  test("our additions are sorted in with the others", async () => {
    const names = (await usageText())
      .split("\n")
      .filter((line) => line.startsWith("  -"))
      .map((line) => line.slice(3).split(" ")[0]);
    expect(names).toEqual([
      "L",
      "R",
      "allow",
      "api-socket",
      "deny",
      "dhcp",
      "disable-offload",
      "dns-ttl",
      "enable-dns",
      "enable-host",
      "enable-routing",
      "enable-sandbox",
      "enable-seccomp",
      "exit-fd",
      "exit-grace",
      "exit-with-parent",
      "fd",
      "icmp",
      "interface",
      "m",
      "max-buffer-bytes",
      "max-dns-queries",
      "max-local-clients",
      "max-neighbors",
      "max-syn-received",
      "max-tcp-connections",
      "max-udp-flows",
      "max-udp-ports",
      "maxprocs",
      "mtu",
      "netns",
      "pcap",
      "proxy-header-timeout",
      "quiet",
      "ra",
      "ready-fd",
      "source-ipv4",
      "source-ipv6",
      "version",
    ]);
  });

  test.each([["-h"], ["-help"], ["--help"], ["--h"]])("%s prints only the usage, exit 2", async (arg) => {
    const outcome = await parse(["-quiet", arg, "-fd", "3"]);
    expect(outcome).toEqual({ kind: "exit", code: 2, stderr: await usageText() });
    expect((outcome as { stderr: string }).stderr.startsWith(`Usage of ${ARGV0}:\n`)).toBe(true);
  });

  test("an error prints one message line, then the whole usage", async () => {
    const outcome = await parse(["-nope"]);
    expect(outcome).toEqual({
      kind: "exit",
      code: 2,
      stderr: "flag provided but not defined: -nope\n" + (await usageText()),
    });
  });
});

describe("defaults of the upstream flags", () => {
  test("no flags", async () => {
    const { config, positional } = await run([]);
    expect(positional).toEqual([]);
    expect(config).toEqual({
      version: false,
      fd: -1,
      netns: "",
      ifname: "tun0",
      mtu: 0,
      localForwards: [],
      remoteForwards: [],
      maxLocalClients: 4096,
      proxyHeaderTimeoutMs: 10_000,
      quiet: false,
      quietSet: false,
      metrics: null,
      maxprocs: 0,
      pcap: "",
      exitWithParent: false,
      enableHost: false,
      enableRouting: false,
      enableRoutingSet: false,
      enableDns: false,
      enableDnsSet: false,
      ra: false,
      raSet: false,
      dhcp: false,
      dhcpSet: false,
      sourceIpv4: null,
      sourceIpv6: null,
      allow: [],
      deny: [],
      dnsTtlMs: 5000,
      readyFd: -1,
      exitFd: -1,
      apiSocket: "",
      disableOffload: false,
      enableSandbox: false,
      enableSeccomp: false,
      exitGraceMs: 5000,
      maxTcpConnections: 16384,
      maxSynReceived: 1024,
      maxBufferBytes: 256 * 1024 * 1024,
      maxUdpFlows: 16384,
      maxUdpPorts: 4096,
      maxDnsQueries: 256,
      maxNeighbors: 1024,
      icmp: "local",
      icmpSet: false,
    });
  });
});

describe("-max-buffer-bytes", () => {
  test("bytes, or K, M, G (KiB, MiB, GiB) in powers of 1024", async () => {
    expect((await run(["-max-buffer-bytes", "65536"])).config.maxBufferBytes).toBe(65536);
    expect((await run(["-max-buffer-bytes", "64MiB"])).config.maxBufferBytes).toBe(64 << 20);
    expect((await run(["-max-buffer-bytes=2g"])).config.maxBufferBytes).toBe(2 * 1024 ** 3);
    expect((await run(["-max-buffer-bytes", "512K"])).config.maxBufferBytes).toBe(512 << 10);
    const bad = await parse(["-max-buffer-bytes", "64MB"]);
    expect(bad.kind).toBe("exit");
    if (bad.kind === "exit") expect(bad.stderr.split("\n")[0]).toBe('invalid value "64MB" for flag -max-buffer-bytes: want bytes, optionally with a K, M or G suffix (e.g. 64MiB)');
  });
});

describe("-icmp", () => {
  test("forward or local; anything else is a flag error naming the value (exit 2)", async () => {
    expect((await run(["-icmp", "forward"])).config).toMatchObject({ icmp: "forward", icmpSet: true });
    expect((await run(["-icmp=local"])).config).toMatchObject({ icmp: "local", icmpSet: true });
    const bad = await parse(["-icmp", "raw"]);
    expect(bad.kind === "exit" && bad.code).toBe(2);
    if (bad.kind === "exit") expect(bad.stderr.split("\n")[0]).toBe('invalid value "raw" for flag -icmp: want forward or local');
  });
});

describe("parsing rules", () => {
  test("-quiet false -netns X: false is positional, netns stays unset", async () => {
    const { config, positional } = await run(["-quiet", "false", "-netns", "X"]);
    expect(config.quiet).toBe(true);
    expect(config.netns).toBe("");
    expect(positional).toEqual(["false", "-netns", "X"]);
  });

  test("-quiet=false", async () => {
    expect((await run(["-quiet=true", "-quiet=false"])).config.quiet).toBe(false);
  });

  test("single and double dashes, = or a separate value", async () => {
    const { config } = await run(["--netns=/proc/1/ns/net", "-interface", "tap0", "--mtu", "9000", "-pcap=x.pcap"]);
    expect(config).toMatchObject({ netns: "/proc/1/ns/net", ifname: "tap0", mtu: 9000, pcap: "x.pcap" });
  });

  test("a non-boolean flag takes the next argument even if it begins with -", async () => {
    expect((await run(["-fd", "-5"])).config.fd).toBe(-5);
    expect((await run(["-netns", "-quiet"])).config).toMatchObject({ netns: "-quiet", quiet: false });
  });

  test("flags after the first positional, a lone - or -- are ignored", async () => {
    expect(await run(["-fd", "3", "cmd", "-quiet"])).toMatchObject({
      config: { fd: 3, quiet: false },
      positional: ["cmd", "-quiet"],
    });
    expect((await run(["-", "-quiet"])).positional).toEqual(["-", "-quiet"]);
    expect((await run(["--", "-quiet"])).positional).toEqual(["-quiet"]);
    expect((await run(["-quiet", "--", "--", "x"])).positional).toEqual(["--", "x"]);
  });

  test("int flags accept Go's base prefixes", async () => {
    expect((await run(["-fd", "0x10", "-maxprocs", "010", "-mtu", "0b1"])).config).toMatchObject({
      fd: 16,
      maxprocs: 8,
      mtu: 1,
    });
  });

  test("other flags keep the last value", async () => {
    expect((await run(["-fd", "3", "-fd", "4"])).config.fd).toBe(4);
  });

  test("-version is an ordinary boolean", async () => {
    expect((await run(["-version"])).config.version).toBe(true);
  });

  test("explicitly set booleans are recorded (their default differs in run mode)", async () => {
    expect((await run(["-enable-routing=false", "-enable-dns"])).config).toMatchObject({
      enableRouting: false,
      enableRoutingSet: true,
      enableDns: true,
      enableDnsSet: true,
    });
    expect((await run(["-ra=false"])).config).toMatchObject({ ra: false, raSet: true });
    expect((await run(["-ra"])).config).toMatchObject({ ra: true, raSet: true });
    expect((await run(["-dhcp=false"])).config).toMatchObject({ dhcp: false, dhcpSet: true });
    expect((await run(["-dhcp"])).config).toMatchObject({ dhcp: true, dhcpSet: true });
  });

  test("our additions", async () => {
    expect(
      (await run(["-ready-fd", "5", "--exit-fd=6", "-disable-offload", "-exit-with-parent", "-enable-host"])).config,
    ).toMatchObject({ readyFd: 5, exitFd: 6, disableOffload: true, exitWithParent: true, enableHost: true });
  });

  test("-api-socket takes the socket path", async () => {
    expect((await run(["-api-socket", "/run/x/api.sock"])).config.apiSocket).toBe("/run/x/api.sock");
  });

  test("-exit-grace is a Go duration in milliseconds, 5 s by default", async () => {
    expect((await run([])).config.exitGraceMs).toBe(5000);
    expect((await run(["-exit-grace", "250ms"])).config.exitGraceMs).toBe(250);
    expect((await run(["-exit-grace=0"])).config.exitGraceMs).toBe(0);
  });

  test("-dns-ttl is a Go duration in milliseconds", async () => {
    expect((await run(["-dns-ttl", "300ms"])).config.dnsTtlMs).toBe(300);
    expect((await run(["-dns-ttl=0"])).config.dnsTtlMs).toBe(0);
    expect((await run(["-dns-ttl", "1m30s"])).config.dnsTtlMs).toBe(90000);
  });
});

describe("-L and -R", () => {
  test("repeated, in order, one spec per flag (no comma split), defaults applied", async () => {
    const { config } = await run(["-L", "1236", "-L", "udp://[::1]:0::53", "-R", "1234", "--R=1.2.3.4:1235"]);
    expect(config.localForwards.map((s) => [s.transport, s.bind, s.host])).toEqual([
      ["tcp", { ip: "127.0.0.1", label: null, port: 1236 }, { ip: "10.0.2.100", label: null, port: 1236 }],
      ["udp", { ip: "::1", label: null, port: 0 }, { ip: "fd00::100", label: null, port: 53 }],
    ]);
    expect(config.remoteForwards.map((s) => [s.bind, s.host])).toEqual([
      [{ ip: "10.0.2.2", label: null, port: 1234 }, { ip: "127.0.0.1", label: null, port: 1234 }],
      [{ ip: "1.2.3.4", label: null, port: 1235 }, { ip: "127.0.0.1", label: null, port: 1235 }],
    ]);
  });

  test("labels are not resolved while parsing", async () => {
    const { config } = await run(["-R=tcp://:2222:tcp.echo.server@srv-1:0", "-L", "nohost.invalid:0:10.0.2.100:22"]);
    expect(config.remoteForwards[0]!.host).toEqual({ ip: "127.0.0.1", label: "tcp.echo.server@srv-1", port: 0 });
    expect(config.localForwards[0]!.bind).toEqual({ ip: "127.0.0.1", label: "nohost.invalid", port: 0 });
  });

  test("a comma is just part of the spec", async () => {
    expect(await firstErrorLine(["-L", "1,2"])).toBe(
      'invalid value "1,2" for flag -L: strconv.ParseUint: parsing "1,2": invalid syntax',
    );
  });
});

describe("-allow and -deny", () => {
  test("comma lists and repeats add up in order", async () => {
    const { config } = await run(["-allow", "10.0.0.0/8,udp://[::1]:53", "-allow", "1.2.3.4", "-deny", "0.0.0.0/0"]);
    expect(config.allow.map((r) => `${r.network} ${formatIP(r.prefix)}/${r.prefix.bits}`)).toEqual([
      "tcp 10.0.0.0/8",
      "udp ::1/128",
      "tcp 1.2.3.4/32",
    ]);
    expect(config.deny.map((r) => `${formatIP(r.prefix)}/${r.prefix.bits}`)).toEqual(["0.0.0.0/0"]);
  });
});

describe("-m", () => {
  test.each([
    ["tcp://127.0.0.1:0", { network: "tcp", address: "127.0.0.1:0", ip: "127.0.0.1", port: 0 }],
    ["tcp://localhost:8080", { network: "tcp", address: "127.0.0.1:8080", ip: "127.0.0.1", port: 8080 }],
    ["tcp://[::1]:80", { network: "tcp", address: "[::1]:80", ip: "::1", port: 80 }],
    ["tcp://:9090", { network: "tcp", address: ":9090", ip: null, port: 9090 }],
    ["tcp://[::ffff:127.0.0.1]:http", { network: "tcp", address: "127.0.0.1:80", ip: "127.0.0.1", port: 80 }],
    ["udp://127.0.0.1:53", { network: "udp", address: "127.0.0.1:53", ip: "127.0.0.1", port: 53 }],
    ["unix:///tmp/metrics.sock", { network: "unix", address: "/tmp/metrics.sock", ip: null, port: null }],
  ])("%s", async (value, metrics) => {
    expect((await run(["-m", value])).config.metrics).toEqual(metrics as Config["metrics"]);
  });

  test.each([
    ["127.0.0.1:80", "Address must be in form net://address, where net is one of unix/tcp/udp"],
    ["http://127.0.0.1:80", "Address must be in form net://address, where net is one of unix/tcp/udp"],
    ["tcp://127.0.0.1", "address 127.0.0.1: missing port in address"],
    ["tcp://[::1", "address [::1: missing ']' in address"],
    ["tcp://127.0.0.1:99999", "address 99999: invalid port"],
    ["tcp://127.0.0.1:nosuchservice", "address tcp/nosuchservice: unknown port"],
    ["tcp://nohost.invalid:80", "lookup nohost.invalid: no such host"],
  ])("%s fails", async (value, reason) => {
    expect(await firstErrorLine(["-m", value])).toBe(`invalid value "${value}" for flag -m: ${reason}`);
  });
});

describe("-source-ipv4 / -source-ipv6", () => {
  test("literals are normalised, names resolved now", async () => {
    expect((await run(["-source-ipv4", "localhost", "-source-ipv6", "FD00::0005"])).config).toMatchObject({
      sourceIpv4: "127.0.0.1",
      sourceIpv6: "fd00::5",
    });
    expect((await run(["-source-ipv4", "::ffff:10.0.0.1"])).config.sourceIpv4).toBe("10.0.0.1");
  });

  test("a name that does not resolve is the flag error", async () => {
    expect(await firstErrorLine(["-source-ipv4", "nohost.invalid"])).toBe(
      'invalid value "nohost.invalid" for flag -source-ipv4: lookup nohost.invalid: no such host',
    );
  });
});

describe("error messages", () => {
  test.each([
    [["---x"], "bad flag syntax: ---x"],
    [["-=x"], "bad flag syntax: -=x"],
    [["-fd"], "flag needs an argument: -fd"],
    [["-L"], "flag needs an argument: -L"],
    [["--disable-routing"], "flag provided but not defined: -disable-routing"],
    [["--disable-host-networks"], "flag provided but not defined: -disable-host-networks"],
    [["-quiet=no"], 'invalid boolean value "no" for -quiet: parse error'],
    [["--fd", "three"], 'invalid value "three" for flag -fd: parse error'],
    [["-fd", "99999999999999999999"], 'invalid value "99999999999999999999" for flag -fd: value out of range'],
    [["-mtu", "-1"], 'invalid value "-1" for flag -mtu: parse error'],
    [["-dns-ttl", "5"], 'invalid value "5" for flag -dns-ttl: parse error'],
    [["--L", "udppp://1"], 'invalid value "udppp://1" for flag -L: unknown network type "udppp"'],
    [["-R", "a"], 'invalid value "a" for flag -R: strconv.ParseUint: parsing "a": invalid syntax'],
    [["-allow", "notahostó"], 'invalid value "notahostó" for flag -allow: lookup notahostó: no such host'],
    [["-deny", "1.2.3.4:5-1"], 'invalid value "1.2.3.4:5-1" for flag -deny: min port must be smaller equal than max'],
    [["-allow", "1.2.3.4:0-b"], 'invalid value "1.2.3.4:0-b" for flag -allow: strconv.ParseUint: parsing "b": invalid syntax'],
  ])("%j", async (args, message) => {
    expect(await firstErrorLine(args)).toBe(message);
  });

  test("the first error stops parsing: later flags are never looked at", async () => {
    expect(await firstErrorLine(["-fd", "x", "-allow", "notahostó"])).toBe('invalid value "x" for flag -fd: parse error');
    expect(await firstErrorLine(["-allow", "nohost.invalid", "-nope"])).toBe(
      'invalid value "nohost.invalid" for flag -allow: lookup nohost.invalid: no such host',
    );
  });

  test("flags after a positional are not checked at all", async () => {
    expect((await run(["x", "-nope", "-fd", "bad"])).positional).toEqual(["x", "-nope", "-fd", "bad"]);
  });
});

describe("-h ends with the two ways to run", () => {
  test("run mode and attach, each with an example, after the flags", async () => {
    const usage = await usageText();
    expect(usage.startsWith(`Usage of ${ARGV0}:\n`)).toBe(true);
    const tail = usage.slice(usage.lastIndexOf("  -version"));
    expect(tail).toContain(`\nRun a command in a new network namespace with networking (run mode):\n  ${ARGV0} [flags] [-- COMMAND [ARGS...]]\n`);
    expect(tail).toContain(`\nAttach to a tap or tun device in an existing network namespace:\n  ${ARGV0} -netns /proc/PID/ns/net`);
    expect(tail.match(/\n {2}e\.g\. /g)).toHaveLength(2);
  });
});
