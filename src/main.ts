// slirpnetstack: wiring only. The process lifecycle follows the startup
// steps of docs/compatibility.md ("Startup and shutdown") one by one (the
// numbers in the comments); each piece lives elsewhere.
import { closeSync, mkdtempSync, read, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseCommandLine, type Config, type ParseOutcome } from "./cli/options.ts";
import { passedFds } from "./cli/passed-fds.ts";
import type { Resolver } from "./host/control/resolve.ts";
import type { Logger } from "./host/control/log.ts";
import type { TunAttachment } from "../ffi/tun.ts";
import type { RunModeSession } from "./ns/index.ts";
import type { TapCreation } from "./ns/tap-setup.ts";
import { HIDDEN_COMMAND } from "./ns/args.ts";
import type { DeviceCaps, FrameReceiver, FrameSink } from "./stack/device.ts";
import type { FaultInjector } from "./link/fault.ts";
import type { PcapWriter } from "./link/pcap.ts";
import type { FdDevice } from "./link/fd-device.ts";
import type { StackClock } from "./host/clock.ts";
import type { Host, HostControl } from "./host/host.ts";
import type { ApiSocket } from "./host/control/api-socket.ts";
import type { Reactor } from "./io/reactor.ts";
import type { StackConfig } from "./stack/stack.ts";
import { ipFromV4, ipFromV6, ipv4Text, ipv6FromText, type IP } from "./wire/addr.ts";
import { DEFAULT_GUEST_NET_V4, type GuestNetV4 } from "./wire/guest-net.ts";
import { parseMac } from "./wire/ethernet.ts";

declare const BUILD_VERSION: string;
declare const BUILD_TIME: string;

/** docs/compatibility.md, Fixed addresses (IPv4: the guest network's plan, DEFAULT_GUEST_NET_V4 unless slirp4netns's --cidr) */
const GATEWAY_V6 = ipv6FromText("fd00::2")!;
const MAC = parseMac("70:71:aa:4b:29:aa")!;

/**
 * Exit codes (docs/compatibility.md, Exit codes; Go's os.Exit(-n) is
 * 256-n). The device's failures exit with DeviceError's code (253,
 * src/ns/errors.ts); upstream's 248 (creating the NIC) has no step here.
 */
export const Exit = {
  Ok: 0,
  Usage: 2,
  /** -enable-seccomp could not be installed (slirp4netns mode: 1, as slirp4netns). */
  Seccomp: 244,
  /** -enable-sandbox could not be set up (slirp4netns mode: 1, as slirp4netns). */
  Sandbox: 245,
  RemoteBind: 246,
  LocalListen: 247,
  PcapSniff: 249,
  PcapOpen: 250,
  LinkEndpoint: 251,
  FdAndNetns: 252,
  Metrics: 254,
} as const;

function version(): { version: string; time: string } {
  return {
    version: typeof BUILD_VERSION === "string" ? BUILD_VERSION : "DEV",
    time: typeof BUILD_TIME === "string" ? BUILD_TIME : "unknown",
  };
}

/** A uniform number in [0, 1) from the system CSPRNG (the RA interval's jitter), like every random number here. */
function uniformRandom(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! / 0x100000000;
}

/** How often the exit drain looks whether data is still in flight. */
const DRAIN_CHECK_MS = 10;

function die(log: Logger, code: number, ...lines: string[]): never {
  for (const l of lines) log.err(l);
  process.exit(code);
}

/**
 * -h and flag errors (usage on stderr, exit 2) and -version (exit 0);
 * otherwise the flags the stack runs with.
 * Bun.write rather than process.stdout/stderr: setting up those streams
 * costs more than the rest of this path.
 */
async function exitEarly(parsed: ParseOutcome): Promise<Extract<ParseOutcome, { kind: "run" }>> {
  if (parsed.kind === "exit") {
    await Bun.write(Bun.stderr, parsed.stderr);
    process.exit(parsed.code);
  }
  // 4.
  if (parsed.config.version) {
    const v = version();
    await Bun.write(Bun.stdout, `slirpnetstack version ${v.version}\nbuild time ${v.time}\n`);
    process.exit(Exit.Ok);
  }
  return parsed;
}

/** The system resolver, loaded when a name is first resolved (most command lines have none). */
function lazySystemResolver(): Resolver {
  let loaded: Promise<Resolver> | null = null;
  const get = () => (loaded ??= import("./host/control/resolve.ts").then((m) => m.createSystemResolver()));
  return {
    lookupHost: async (name, prefer) => (await get()).lookupHost(name, prefer),
    resolveLabel: async (label, prefer) => (await get()).resolveLabel(label, prefer),
  };
}

/**
 * 3. Flags (values are checked, some resolved, while parsing). Start-up
 * loads only the flag parser until the flags are known: -h, -version and a
 * flag error exit from here without the runtime settings' re-exec
 * (src/runtime-env.ts) and without loading the stack. The process that
 * will re-execute defers resolving names to the process after it, so that
 * no name is resolved twice.
 */
async function readFlags(args: string[], argv0: string): Promise<{ parsed: Extract<ParseOutcome, { kind: "run" }>; resolver: Resolver }> {
  const runtimeEnv = await import("./runtime-env.ts");
  let needsDns = false;
  const deferDns: Resolver = {
    lookupHost: () => {
      needsDns = true;
      throw new Error("resolved after the re-exec");
    },
    resolveLabel: () => {
      needsDns = true;
      throw new Error("resolved after the re-exec");
    },
  };
  const resolver = lazySystemResolver();
  let outcome = await parseCommandLine(args, argv0, { resolver: runtimeEnv.willReexec() ? deferDns : resolver });
  if (!needsDns) await exitEarly(outcome);
  await runtimeEnv.ensureRuntimeEnv(passedFds(args));
  // Still here with names to resolve: the re-exec failed, this process is the stack.
  if (needsDns) outcome = await parseCommandLine(args, argv0, { resolver });
  return { parsed: await exitEarly(outcome), resolver };
}

/**
 * Run mode (neither -netns nor -fd) changes some defaults: routing, DNS and
 * DHCP on (a dev shell wants the internet), per-flow lines off (they would
 * land in the middle of the user's shell).
 */
function runModeDefaults(c: Config): Config {
  return {
    ...c,
    enableRouting: c.enableRoutingSet ? c.enableRouting : true,
    enableDns: c.enableDnsSet ? c.enableDns : true,
    icmp: c.icmpSet ? c.icmp : "forward",
    ra: c.raSet ? c.ra : true,
    dhcp: c.dhcpSet ? c.dhcp : true,
    quiet: c.quietSet ? c.quiet : true,
  };
}

/** The device, what it can do, and in run mode the session that holds the guest's namespace and command. */
interface OpenedDevice {
  fd: number;
  caps: DeviceCaps;
  /** Frames carry a virtio_net_hdr (the tap's offloads are on). */
  vnetHdr: boolean;
  session: RunModeSession | null;
}

/**
 * 9. The device, one of three ways: -fd (a unix datagram socket or a
 * character device handed to us), attach (-netns: a tap or tun opened in
 * that namespace) or run mode (a new namespace around `command`); then what
 * it offloads. A failure prints its lines and exits with its code.
 */
async function openDevice(cfg: Config, runMode: boolean, command: string[], log: Logger, create: TapCreation | null, userns: string | null): Promise<OpenedDevice> {
  const [{ setNonBlocking, setCloseOnExec }, { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO4, TUN_F_USO6 }, { acquireDevice, startRunMode, DeviceError }, { isFrameFd }] = await Promise.all([
    import("../ffi/sys.ts"),
    import("../ffi/tun.ts"),
    import("./ns/index.ts"),
    import("./link/fd-device.ts"),
  ]);
  if (cfg.fd >= 0) {
    if (cfg.netns !== "") die(log, Exit.FdAndNetns, "Please specify either -fd or -netns");
    if (!isFrameFd(cfg.fd)) die(log, Exit.LinkEndpoint, `[!] Failed to create linkEP: bad file descriptor`);
    setNonBlocking(cfg.fd);
    setCloseOnExec(cfg.fd);
    return { fd: cfg.fd, caps: { medium: "ethernet", mtu: cfg.mtu || 1500, txChecksumOffload: false, txTcpSegmentation: false }, vnetHdr: false, session: null };
  }
  const offloads = cfg.disableOffload ? 0 : TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
  let dev: TunAttachment;
  let session: RunModeSession | null = null;
  try {
    if (runMode) {
      const [{ DNS_V6 }, { tmpdir }] = await Promise.all([import("./host/flows/dns-forwarder.ts"), import("node:os")]);
      session = await startRunMode({
        command,
        ifname: cfg.ifname,
        offloads,
        ...(cfg.mtu > 0 ? { mtu: cfg.mtu } : {}),
        resolvConf: cfg.enableDns ? writeGuestResolvConf(process.env.XDG_RUNTIME_DIR ?? tmpdir(), [ipv4Text(DEFAULT_GUEST_NET_V4.dns), DNS_V6]) : null,
      });
      dev = session.device;
    } else {
      log.err(`[.] Joininig netns ${cfg.netns}`);
      dev = await acquireDevice({ netns: cfg.netns, ifname: cfg.ifname, offloads, ...(create !== null ? { create } : {}), userns, onOpening: () => log.err(`[.] Opening tun interface ${cfg.ifname}`) });
    }
  } catch (e) {
    if (e instanceof DeviceError) die(log, e.exitCode, ...e.lines());
    throw e;
  }
  setNonBlocking(dev.fd);
  return {
    fd: dev.fd,
    caps: {
      medium: dev.kind === "tap" ? "ethernet" : "ip",
      mtu: dev.mtu,
      txChecksumOffload: (dev.offloads & TUN_F_CSUM) !== 0,
      txTcpSegmentation: (dev.offloads & (TUN_F_TSO4 | TUN_F_TSO6)) === (TUN_F_TSO4 | TUN_F_TSO6),
    },
    vnetHdr: dev.vnetHdr,
    session,
  };
}

/**
 * 15, and a test hook: what sits between the device and the engine.
 * Transmitted frames go engine -> faults -> pcap -> device, received ones
 * device -> pcap -> faults -> engine. The pcap writer captures what the
 * wire carries; SLIRPNETSTACK_FAULTS="loss=0.05,reorder=0.05,dup=0.02,seed=7"
 * puts the fault injector (src/link/fault.ts) in, both directions.
 */
async function linkMiddleware(cfg: Config, log: Logger, device: FdDevice, caps: DeviceCaps, clock: StackClock): Promise<{ sink: FrameSink; receiver: FrameReceiver }> {
  let sink: FrameSink = device;
  let receiver: FrameReceiver = clock;
  let pcap: PcapWriter | null = null;
  if (cfg.pcap !== "") {
    const { startPcap, PcapError } = await import("./link/pcap.ts");
    try {
      pcap = startPcap(cfg.pcap, device, caps.medium, caps.mtu);
    } catch (e) {
      if (!(e instanceof PcapError)) throw e;
      if (e.step === "open") die(log, Exit.PcapOpen, `[!] Failed to open PCAP file: ${e.message}`);
      die(log, Exit.PcapSniff, `[!]Failed to sniff linkEP: ${e.message}`);
    }
    sink = pcap;
  }
  const faultSpec = process.env.SLIRPNETSTACK_FAULTS;
  if (faultSpec) {
    const { injectFaults } = await import("./link/fault.ts");
    let faults: FaultInjector;
    try {
      faults = injectFaults(faultSpec, sink, receiver, caps.medium, () => clock.now());
    } catch (e) {
      die(log, Exit.Usage, `[!] SLIRPNETSTACK_FAULTS: ${(e as Error).message}`);
    }
    receiver = faults;
    sink = faults;
    clock.addPollable(faults);
  }
  return { sink, receiver: pcap !== null ? pcap.wrap(receiver) : receiver };
}

/**
 * The guest services the flags ask for. -ra: router advertisements and
 * stateless DHCPv6 tell the guest the same DNS servers and search list.
 * -dhcp (on by default in run mode); test hook: SLIRPNETSTACK_DHCP_LEASE_S
 * shortens the lease so that renewals happen within a test. `allowsDns`
 * says whether the routing policy lets the guest reach a DNS server.
 */
async function guestServices(cfg: Config, net: GuestNetV4, allowsDns: (ip: IP, port: number) => boolean): Promise<Pick<StackConfig, "ra" | "dhcp6" | "dhcp4">> {
  const services: Pick<StackConfig, "ra" | "dhcp6" | "dhcp4"> = {};
  if (!cfg.ra && !cfg.dhcp) return services;
  // One view of the host's resolv.conf for both services.
  const resolvConf = new (await import("./host/control/resolv-conf.ts")).ResolvConf();
  if (cfg.ra) {
    const { HostDns6 } = await import("./host/control/guest-dns6.ts");
    const info = new HostDns6(resolvConf, cfg.enableDns, allowsDns);
    const dns = (now: number) => info.get(now);
    services.ra = { dns, random: uniformRandom };
    services.dhcp6 = { dns };
  }
  if (cfg.dhcp) {
    services.dhcp4 = (await import("./host/control/dhcp4-info.ts")).dhcp4Config(net, resolvConf, cfg.enableDns, allowsDns, Number(process.env.SLIRPNETSTACK_DHCP_LEASE_S) || undefined);
  }
  return services;
}

/** The -api-socket server; it cannot listen: exit 247, like a -L that cannot. */
async function startApi(path: string, host: Host, net: GuestNetV4, log: Logger): Promise<ApiSocket> {
  const { startApiSocket } = await import("./host/control/api-socket.ts");
  try {
    const api = startApiSocket(path, {
      addForward: (fwd) => host.addLocalForward(fwd),
      defaultGuestAddr: ipv4Text(net.guest),
      flowRows: (offset, limit) => host.flowRows(offset, limit),
      log: (line) => log.err(line),
    });
    log.listen(`[+] API socket ${path}`);
    return api;
  } catch (e) {
    return die(log, Exit.LocalListen, `[!] Failed to listen on API socket ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * -enable-seccomp (src/sandbox/seccomp.ts): from here on the syscalls the
 * running stack never makes fail with EPERM, on every thread. The last
 * step of the setup: after the sandbox (mount, pivot_root and prctl are
 * denied), before the first guest frame is read. A failure names the call
 * and its errno and exits: status 1 in slirp4netns mode (as slirp4netns),
 * Exit.Seccomp otherwise.
 */
async function seccompStep(log: Logger, slirp4netnsMode: boolean): Promise<void> {
  const { installSeccomp } = await import("./sandbox/seccomp.ts");
  try {
    log.status(`[+] seccomp: denied ${installSeccomp().join(" ")}`);
  } catch (e) {
    die(log, slirp4netnsMode ? 1 : Exit.Seccomp, `[!] Failed to install seccomp filter: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * -enable-sandbox, its two steps (src/sandbox/sandbox.ts): "namespace"
 * re-executes the process inside a mount namespace of its own before
 * anything is set up, "enter" pivots into the empty root and drops the
 * capabilities once everything is. A failure prints the call, path and
 * errno and exits: status 1 in slirp4netns mode (as slirp4netns),
 * Exit.Sandbox otherwise.
 */
async function sandboxStep(step: "namespace" | "enter", cfg: Config, slirp4netnsMode: boolean): Promise<void> {
  const { reexecInSandboxNamespace, enterSandbox, SandboxError } = await import("./sandbox/sandbox.ts");
  if (cfg.fd < 0 && cfg.netns === "") {
    writeSync(2, "[!] -enable-sandbox needs -netns or -fd (run mode keeps running its command)\n");
    process.exit(Exit.Usage);
  }
  try {
    if (step === "namespace") reexecInSandboxNamespace(cfg.netns, [cfg.fd, cfg.readyFd, cfg.exitFd].filter((fd) => fd >= 0));
    else enterSandbox();
  } catch (e) {
    if (!(e instanceof SandboxError)) throw e;
    writeSync(2, `[!] Failed to create sandbox: ${e.message}\n`);
    process.exit(slirp4netnsMode ? 1 : Exit.Sandbox);
  }
}

/**
 * 19. One way out, whatever ends us: no new flows, data in flight gets
 * -exit-grace to drain, then what did not finish is reset toward both
 * peers (a cut stream must never look complete) and reported. `cutNow`
 * ends the drain at once (a second signal).
 */
function exitDrain(p: { host: Host; control: HostControl; api: ApiSocket | null; clock: StackClock; device: FdDevice; reactor: Reactor; log: Logger; pid: number; graceMs: number }): {
  shutdown: (status: number, guestLeaving: boolean) => Promise<never>;
  cutNow: () => void;
} {
  let drainUntil = Infinity;
  const shutdown = async (status: number, guestLeaving: boolean): Promise<never> => {
    p.control.stopMetrics(p.pid);
    p.api?.stop();
    p.host.beginDrain();
    drainUntil = performance.now() + p.graceMs;
    while (performance.now() < drainUntil && p.host.drainPending(guestLeaving) > 0) await Bun.sleep(DRAIN_CHECK_MS);
    const cut = p.host.cutUnfinished();
    if (cut > 0) p.log.err(`[!] #${p.pid} Exit cut ${cut} connection${cut === 1 ? "" : "s"} with data in flight (reset toward both peers)`);
    p.host.stop();
    p.clock.stop();
    p.device.stop();
    p.reactor.stop();
    process.exit(status);
  };
  return {
    shutdown,
    cutNow: () => {
      drainUntil = 0;
    },
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // The binary re-executes itself inside other namespaces as a hidden
  // helper (src/ns/); that is not the stack.
  if (args[0] === HIDDEN_COMMAND) {
    await (await import("./ns/index.ts")).runHiddenCommand(args);
    return;
  }
  const argv0 = process.argv0 && process.argv[1]?.startsWith("/$bunfs") ? process.argv0 : (process.argv[1] ?? "slirpnetstack");
  // Started as `slirp4netns` (a symlink to us): slirp4netns's command
  // line, run as the slirpnetstack flags that mean the same.
  const s4n = argv0.slice(argv0.lastIndexOf("/") + 1) === "slirp4netns" ? await (await import("./slirp4netns/main.ts")).slirp4netnsMain(args, argv0, version()) : null;

  // 1. Signal handlers first, so an early SIGINT is still a clean exit.
  let closing: (() => void) | null = null;
  const onSignal = () => {
    if (closing) closing();
    else process.exit(Exit.Ok);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  // 3, 4.
  const { parsed, resolver } = await readFlags(s4n?.flags ?? args, argv0);
  if (parsed.config.enableSandbox) await sandboxStep("namespace", parsed.config, s4n !== null);
  // The process that runs the stack (after the re-execs) prints them once.
  if (s4n !== null && s4n.warnings !== "") await Bun.write(Bun.stdout, s4n.warnings);
  const [
    { Logger },
    { StackClock },
    { Host, HostControl },
    { LimitReporter },
    { FaultReporter },
    { raiseNoFileLimit, setParentDeathSignal, getppid, killPid, SIGTERM, SIGWINCH },
    { forwardRunModeSignals },
    { enableWasmChecksum },
    { FdDevice },
    { Reactor },
    { Stack },
    { Stats },
    { FlowSecret },
    { DEFAULT_TCP_CONFIG },
  ] = await Promise.all([
    import("./host/control/log.ts"),
    import("./host/clock.ts"),
    import("./host/host.ts"),
    import("./host/control/limits.ts"),
    import("./host/control/faults.ts"),
    import("../ffi/sys.ts"),
    import("./ns/index.ts"),
    import("./wire/checksum-wasm.ts"),
    import("./link/fd-device.ts"),
    import("./io/reactor.ts"),
    import("./stack/stack.ts"),
    import("./stack/stats.ts"),
    import("./stack/secret.ts"),
    import("./stack/tcp/connection.ts"),
  ]);
  const pid = process.pid;

  // 2.
  raiseNoFileLimit();

  const runMode = parsed.config.fd < 0 && parsed.config.netns === "";
  const cfg = runMode ? runModeDefaults(parsed.config) : parsed.config;
  // Run mode is invisible, like unshare: only the command's own output and
  // our errors reach the terminal, unless -quiet=false asks for the lines.
  const log = new Logger(cfg.quiet, { silent: runMode && cfg.quiet });

  // Full checksums (where the device does not offload them) run in WASM SIMD.
  enableWasmChecksum();
  const stats = new Stats();
  // A cap that bites is counted in /metrics and reported in one line.
  new LimitReporter((line) => log.err(line)).attach(stats);
  // A handler that throws is confined to its flow, counted and reported.
  new FaultReporter((line) => log.err(line)).attach(stats);
  log.countIn(stats);
  const clock = new StackClock();
  // Every fd of the data path is watched by the one reactor (src/io/reactor.ts).
  const reactor = new Reactor();
  reactor.start();
  reactor.setSettle(clock.settle);
  reactor.setFaultSink(stats);
  // The guest's IPv4 network: slirp4netns's --cidr, else 10.0.2.0/24.
  const net = s4n?.create.net ?? DEFAULT_GUEST_NET_V4;
  const control = new HostControl(cfg, log, stats, net);

  // 6, 8. Routes watcher and metrics start before the namespace work.
  control.startRoutes();
  control.startMetrics(pid, (err) => die(log, Exit.Metrics, `[!] Failed to start metrics: ${err}`));

  // 9.
  const { fd, caps, vnetHdr, session } = await openDevice(cfg, runMode, parsed.positional, log, s4n?.create ?? null, s4n?.userns ?? null);

  // 10.
  if (cfg.exitWithParent) setParentDeathSignal(SIGTERM);

  // 14. The link endpoint (before 11-13 in code, but silent until started).
  const device = new FdDevice({ fd, caps, vnetHdr, stats, onFailure: (error) => die(log, 1, `[!] Device read failed: ${error}`), reactor });
  // 15.
  const { sink, receiver } = await linkMiddleware(cfg, log, device, caps, clock);

  // 11. The stack and the handlers for new guest flows.
  const services = await guestServices(cfg, net, (ip, port) => control.allowsGuestUdp(ip, port));
  const host = new Host({
    control,
    cfg,
    log,
    stats,
    clock,
    reactor,
    resolver,
    gateways: { v4: ipFromV4(net.gateway), v6: ipFromV6(GATEWAY_V6, 0) },
    dnsEnabled: cfg.enableDns,
    hostLoopback: s4n?.hostLoopback === true,
    makeStack: (events) =>
      new Stack(caps, sink, events, stats, {
        mac: MAC,
        netV4: net,
        gatewayV6: GATEWAY_V6,
        tcp: { ...DEFAULT_TCP_CONFIG, maxConnections: cfg.maxTcpConnections, maxSynReceived: cfg.maxSynReceived, bufferBudget: cfg.maxBufferBytes },
        // The key of ISNs, timestamp offsets, ephemeral ports (RFC 6528,
        // RFC 7323 §7.1, RFC 6056) and the flow tables' hash, from the system
        // CSPRNG.
        secret: new FlowSecret(crypto.getRandomValues(new Uint8Array(16))),
        maxNeighbors: cfg.maxNeighbors,
        ...services,
        // Test hook: the 125 s UDP idle timeout, shortened.
        ...(process.env.SLIRPNETSTACK_UDP_IDLE_MS ? { udpIdleMs: Number(process.env.SLIRPNETSTACK_UDP_IDLE_MS) } : {}),
      }),
  });
  const stack = host.stack;
  clock.attach(stack, stats);
  control.serveFlows(host);

  // 12, 13. Port forwards.
  await host.startLocalForwards((line) => die(log, Exit.LocalListen, line));
  await host.startRemoteForwards((line) => die(log, Exit.RemoteBind, line));
  // -api-socket: -L style forwards added and removed while running, and the flow table.
  const api = cfg.apiSocket === "" ? null : await startApi(cfg.apiSocket, host, net, log);
  // Set up: from here on the root is an empty tmpfs and the capabilities are gone.
  if (cfg.enableSandbox) await sandboxStep("enter", cfg, s4n !== null);
  if (cfg.enableSeccomp) await seccompStep(log, s4n !== null);

  // 17. Prime ARP for the guest before reading anything, so the pcap's
  // first record is always this 28-byte request (docs/compatibility.md,
  // Packet capture).
  stack.primeArp(net.guest);
  device.start(receiver);
  // A first poll now rather than at the first frame: the first router
  // advertisement goes out at start (RFC 4861 §6.2.4).
  clock.afterActivity();

  // The reactor, the engine and the clock confine a throwing handler to
  // its flow. Anything else that throws once we run (a timer of a -L
  // listener, the routes refresh, the debug server) is counted and
  // reported the same way, never the end of every flow.
  process.on("uncaughtException", (e) => stats.fault("uncaught", e));
  process.on("unhandledRejection", (e) => stats.fault("unhandled-rejection", e));

  // 18.
  log.status(`[+] #${pid} Slirpnetstack started`);
  // Upstream's start signal to its parent; slirp4netns's supervisors
  // (Podman, RootlessKit) learn it from --ready-fd instead.
  if (s4n === null) killPid(getppid(), SIGWINCH);
  supervisorFds(cfg, () => closing?.());

  // 19.
  const { shutdown, cutNow } = exitDrain({ host, control, api, clock, device, reactor, log, pid, graceMs: cfg.exitGraceMs });

  if (session !== null) {
    // Run mode: the terminal's Ctrl-C belongs to the command (same process
    // group); SIGTERM/SIGHUP are forwarded to it; we end when it does, with
    // its status. The session holds the guest's network namespace, so the
    // sockets the command left behind can still finish sending meanwhile.
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    forwardRunModeSignals(session.pid);
    // -exit-fd: the supervisor wants us gone; the command goes first (as
    // with SIGTERM), and we follow it as usual.
    const command = session.pid;
    closing = () => killPid(command, SIGTERM);
    session.go();
    await shutdown(await session.exited, true);
  }

  closing = () => {
    // A second signal while draining: cut now.
    closing = cutNow;
    log.status(`[-] #${pid} Slirpnetstack closing`);
    void shutdown(Exit.Ok, false);
  };
}

/**
 * The resolv.conf bind-mounted over the guest's in run mode: our DNS
 * forwarder. It lives in a private temporary directory; the mount keeps
 * it visible to the guest after we unlink it.
 */
function writeGuestResolvConf(parent: string, nameservers: readonly string[]): string {
  const dir = mkdtempSync(join(parent, "slirpnetstack-"));
  const path = join(dir, "resolv.conf");
  writeFileSync(path, `# slirpnetstack run mode: the stack's DNS forwarder\n${nameservers.map((a) => `nameserver ${a}\n`).join("")}`, { mode: 0o644 });
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return path;
}

/**
 * -ready-fd and -exit-fd, with slirp4netns's meaning: write "1" to the
 * ready fd once the stack runs, and exit cleanly when the exit fd becomes
 * readable or is closed by the supervisor.
 */
function supervisorFds(cfg: Config, exit: () => void): void {
  if (cfg.readyFd >= 0) {
    try {
      writeSync(cfg.readyFd, "1");
      closeSync(cfg.readyFd);
    } catch {
      // A supervisor that went away is not ours to report.
    }
  }
  if (cfg.exitFd >= 0) {
    // A threadpool read: it returns on data or EOF, and that is the signal.
    read(cfg.exitFd, Buffer.alloc(1), 0, 1, null, () => exit());
  }
}

main().catch((e) => {
  process.stderr.write(`[!] ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
