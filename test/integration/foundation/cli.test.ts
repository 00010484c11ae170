// Foundation: the command-line interface of the built binary
// (docs/compatibility.md: Flags, Log lines, Exit codes, Startup and
// shutdown, Version, signals and supervision): usage, version, flag errors,
// exit codes and the exact startup lines that scripts match.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DgramPair } from "../../support/fdpair.ts";
import { GuestNs, HostNs } from "../../support/netns.ts";
import { withRig } from "../../support/rig.ts";
import { BINARY, StackProcess } from "../../support/stack.ts";

interface Outcome {
  code: number;
  stdout: string[];
  stderr: string[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function hostNs(): Promise<HostNs> {
  const h = await HostNs.create();
  cleanups.push(() => h.destroy());
  return h;
}

/** Runs the binary to completion inside a private host namespace. */
async function run(args: string[], opts: { extraFds?: number[]; host?: HostNs } = {}): Promise<Outcome> {
  const host = opts.host ?? (await hostNs());
  const s = StackProcess.spawn(args, { host, extraFds: opts.extraFds });
  const code = await s.exitCode(15_000);
  return { code, stdout: s.stdout.lines, stderr: s.stderr.lines };
}

// The upstream flags' usage entries (docs/compatibility.md, Usage text), in
// the order they must appear; our own flags may be interleaved, in byte
// order.
const UPSTREAM_USAGE: [string, string][] = [
  ["  -L value", "    \tConnections to local side forwarded remote"],
  ["  -R value", "    \tConnections to remote side forwarded local"],
  ["  -allow value", "    \tWhen routing, allow specified IP prefix and port range"],
  ["  -deny value", "    \tWhen routing, deny specified IP prefix and port range"],
  ["  -dns-ttl duration", "    \tFor how long to cache DNS in case of dns labels passed to forward target. (default 5s)"],
  ["  -enable-host", "    \tAllow guest to connecting to IP's that are in the host main and local routing tables"],
  ["  -enable-routing", "    \tAllow guest connecting to non-local IP's that are likley to be routed to the internet"],
  ["  -exit-with-parent", "    \tExit with parent process"],
  ["  -fd int", "    \tUnix datagram socket file descriptor (default -1)"],
  ["  -interface string", '    \tinterface name within netns (default "tun0")'],
  ["  -m value", "    \tMetrics addr"],
  ["  -maxprocs int", "    \tset GOMAXPROCS variable to limit cpu"],
  ["  -mtu uint", "    \tMTU (default: 1500 for -fd, auto for -netns)"],
  ["  -netns string", "    \tpath to network namespace"],
  ["  -pcap string", "    \tpath to PCAP file"],
  ["  -quiet", "    \tPrint less stuff on screen"],
  ["  -source-ipv4 value", "    \tWhen connecting, use the selected Source IP for ipv4"],
  ["  -source-ipv6 value", "    \tWhen connecting, use the selected Source IP for ipv6"],
  ["  -version", "    \tPrint slirpnetstack version and exit"],
];

function expectUsage(lines: string[], from: number): void {
  expect(lines[from]).toBe(`Usage of ${BINARY}:`);
  // The flag list ends at the blank line before the two forms (run mode, attach).
  const end = lines.indexOf("", from + 1);
  expect(lines[end + 1]).toStartWith("Run a command in a new network namespace");
  const body = lines.slice(from + 1, end);
  // Every entry is two lines: "  -name[ type]" then four spaces, a TAB, the help.
  // The type word is the kind (value, int, ...) or, as Go does, a word the usage names.
  expect(body.length % 2).toBe(0);
  const names: string[] = [];
  for (let i = 0; i < body.length; i += 2) {
    expect(body[i]).toMatch(/^ {2}-[A-Za-z0-9-]+( [a-z]+)?$/);
    expect(body[i + 1]).toMatch(/^ {4}\t\S/);
    names.push(body[i]!.trim().split(" ")[0]!.slice(1));
  }
  // Byte order of names (capitals first).
  expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  let at = 0;
  for (const [head, help] of UPSTREAM_USAGE) {
    const i = body.indexOf(head, at);
    expect({ head, found: i >= 0 }).toEqual({ head, found: true });
    expect(body[i + 1]).toBe(help);
    at = i + 2;
  }
}

/**
 * What the halving search of startup step 2 (docs/compatibility.md) ends
 * at for a child of this process: with CAP_SYS_RESOURCE the hard limit may
 * go up to fs.nr_open, without it only down from the inherited hard limit.
 */
function expectedNoFile(): number {
  const status = readFileSync("/proc/self/status", "utf8");
  const capEff = BigInt("0x" + /^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]);
  const CAP_SYS_RESOURCE = 24n;
  const nrOpen = Number(readFileSync("/proc/sys/fs/nr_open", "utf8"));
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"))![1]!;
  const ceiling = (capEff >> CAP_SYS_RESOURCE) & 1n ? nrOpen : hard === "unlimited" ? Infinity : Number(hard);
  let n = 1048576;
  while (n > ceiling) n /= 2;
  return n;
}

describe("usage and version", () => {
  test("-h: usage on stderr, nothing on stdout, exit 2", async () => {
    for (const flag of ["-h", "-help", "--help"]) {
      const r = await run([flag]);
      expect(r.code).toBe(2);
      expect(r.stdout).toEqual([]);
      expect(r.stderr[0]!.startsWith("Usage of ")).toBe(true);
      expectUsage(r.stderr, 0);
    }
  });

  test("-version: two stdout lines, stamped version and UTC build time, exit 0", async () => {
    const r = await run(["-version"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toEqual([]);
    expect(r.stdout.length).toBe(2);
    const [v, t] = r.stdout as [string, string];
    expect(v).toMatch(/^slirpnetstack version \S+$/);
    expect(v).not.toContain("DEV");
    expect(t).toMatch(/^build time \d{4}-\d\d-\d\d-\d\d:\d\dUTC$/);
    expect(t).not.toContain("unknown");
  });

  test("-version after other checked flags still works; a bad flag before it wins", async () => {
    expect((await run(["-quiet", "-mtu", "9000", "-version"])).code).toBe(0);
    expect((await run(["-mtu", "x", "-version"])).code).toBe(2);
  });
});

describe("flag errors: message line, usage, exit 2", () => {
  const cases: [string[], string][] = [
    [["-nope"], "flag provided but not defined: -nope"],
    [["--nope"], "flag provided but not defined: -nope"],
    [["-fd", "x"], 'invalid value "x" for flag -fd: parse error'],
    [["-mtu", "-1"], 'invalid value "-1" for flag -mtu: parse error'],
    [["-dns-ttl", "5x"], 'invalid value "5x" for flag -dns-ttl: parse error'],
    [["-L", "udp://:bad"], 'invalid value "udp://:bad" for flag -L: strconv.ParseUint: parsing "bad": invalid syntax'],
    [["-allow", "1.2.3.4:0-b"], 'invalid value "1.2.3.4:0-b" for flag -allow: strconv.ParseUint: parsing "b": invalid syntax'],
    [["-fd"], "flag needs an argument: -fd"],
    [["-quiet=maybe"], 'invalid boolean value "maybe" for -quiet: parse error'],
  ];
  for (const [args, message] of cases) {
    test(args.join(" "), async () => {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toEqual([]);
      expect(r.stderr[0]).toBe(message);
      expectUsage(r.stderr, 1);
    });
  }
});

describe("startup failures", () => {
  test("-fd with -netns: exit 252", async () => {
    const r = await run(["-fd", "3", "-netns", "X"]);
    expect(r.code).toBe(252);
    expect(r.stderr).toEqual(["Please specify either -fd or -netns"]);
    expect(r.stdout).toEqual([]);
  });

  test("a missing netns path: exit 253", async () => {
    const path = "/nonexistent/netns";
    const r = await run(["-netns", path]);
    expect(r.code).toBe(253);
    expect(r.stderr[0]).toBe(`[.] Joininig netns ${path}`);
    expect(r.stderr[1]).toBe(`[!] Can't join netns ${path}: joining net namespace "${path}": no such file or directory`);
    expect(r.stderr[2]).toStartWith("Failed to open TUN/TAP: ");
    expect(r.stderr.length).toBe(3);
  });

  test("a missing interface: GetMTU fails, exit 253", async () => {
    const guest = await GuestNs.create();
    cleanups.push(() => guest.destroy());
    const r = await run(["-netns", guest.netnsPath, "-interface", "nope0"]);
    expect(r.code).toBe(253);
    expect(r.stderr[0]).toBe(`[.] Joininig netns ${guest.netnsPath}`);
    expect(r.stderr[1]).toBe("[.] Opening tun interface nope0");
    expect(r.stderr[2]).toBe("[!] GetMTU(nope0) = no such device");
    expect(r.stderr[3]).toBe("Failed to open TUN/TAP: no such device");
    expect(r.stderr.length).toBe(4);
  });

  test("a busy interface (attached twice): open fails, exit 253", async () => {
    await withRig({}, async ({ guest, host, stack }) => {
      const r = await run(["-netns", guest.netnsPath], { host });
      expect(r.code).toBe(253);
      expect(r.stderr[1]).toBe("[.] Opening tun interface tun0");
      expect(r.stderr[2]).toStartWith("[!] open(tun0) = ");
      expect(r.stderr[2]).toContain("busy");
      expect(r.stderr[3]).toStartWith("Failed to open TUN/TAP: ");
      // The first stack is unharmed.
      expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
      expect(await stack.stop()).toBe(0);
    });
  });

  test("-fd naming a closed descriptor: the link endpoint fails, exit 251", async () => {
    const r = await run(["-fd", "9"]);
    expect(r.code).toBe(251);
    expect(r.stderr.length).toBe(1);
    expect(r.stderr[0]).toStartWith("[!] Failed to create linkEP: ");
    expect(r.stdout).toEqual([]);
  });

  test("-pcap in a missing directory: exit 250 (device mode)", async () => {
    const guest = await GuestNs.create();
    cleanups.push(() => guest.destroy());
    const r = await run(["-netns", guest.netnsPath, "-pcap", "/nonexistent/dir/x"]);
    expect(r.code).toBe(250);
    expect(r.stderr.at(-1)).toBe("[!] Failed to open PCAP file: open /nonexistent/dir/x: no such file or directory");
    expect(r.stderr.some((l) => l.includes("Slirpnetstack started"))).toBe(false);
  });

  test("-pcap at a symlink: exit 250, the link's target untouched (O_NOFOLLOW)", async () => {
    const guest = await GuestNs.create();
    cleanups.push(() => guest.destroy());
    const dir = mkdtempSync(join(tmpdir(), "slirp-pcap-link-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const target = join(dir, "target");
    writeFileSync(target, "precious");
    const link = join(dir, "link.pcap");
    symlinkSync(target, link);
    const r = await run(["-netns", guest.netnsPath, "-pcap", link]);
    expect(r.code).toBe(250);
    expect(r.stderr.at(-1)).toBe(`[!] Failed to open PCAP file: open ${link}: too many levels of symbolic links`);
    expect(readFileSync(target, "utf8")).toBe("precious");
  });

  test("-pcap in a missing directory: exit 250 (-fd mode)", async () => {
    const pair = DgramPair.create();
    cleanups.push(() => pair.destroy());
    const r = await run(["-fd", "3", "-pcap", "/nonexistent/dir/x"], { extraFds: [pair.remote] });
    expect(r.code).toBe(250);
    expect(r.stderr).toEqual(["[!] Failed to open PCAP file: open /nonexistent/dir/x: no such file or directory"]);
  });
});

describe("startup lines", () => {
  test("device mode: Joininig, Opening, started, and nothing else before started", async () => {
    await withRig({}, async ({ guest, stack }) => {
      expect(stack.stderr.lines).toEqual([
        `[.] Joininig netns ${guest.netnsPath}`,
        "[.] Opening tun interface tun0",
        `[+] #${stack.pid} Slirpnetstack started`,
      ]);
      expect(stack.stdout.lines).toEqual([]);
      // RLIMIT_NOFILE was raised (startup step 2): soft = hard = the
      // first of 2^20, 2^19, ... that the kernel accepts.
      const n = expectedNoFile();
      const limits = readFileSync(`/proc/${stack.pid}/limits`, "utf8");
      expect(limits).toMatch(new RegExp(`^Max open files\\s+${n}\\s+${n}\\s+files`, "m"));
      expect(await stack.stop()).toBe(0);
      expect(stack.stderr.lines.slice(3)).toEqual([`[-] #${stack.pid} Slirpnetstack closing`]);
      expect(stack.stdout.lines).toEqual([]);
    });
  });

  test("-interface picks another device name", async () => {
    await withRig({ guest: { name: "eth7" }, args: ["-interface", "eth7"] }, async ({ guest, stack }) => {
      expect(stack.stderr.lines[1]).toBe("[.] Opening tun interface eth7");
      expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
    });
  });

  test("positional arguments stop flag parsing and are ignored", async () => {
    // "-quiet false" makes "false" positional: the later -nope is never seen.
    // (-netns selects attach mode; without it the positional arguments would
    // be run mode's command.) Our own namespace, the private, empty host
    // one, has no tun0.
    const r = await run(["-netns", "/proc/self/ns/net", "-quiet", "false", "-nope", "-version"]);
    expect(r.code).toBe(253);
    expect(r.stderr[0]).toBe("[.] Joininig netns /proc/self/ns/net");
    expect(r.stderr[1]).toBe("[.] Opening tun interface tun0");
  });
});
