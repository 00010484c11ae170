// The setup shared by the core integration tests: a private host namespace
// with the test addresses on its lo and the test servers running in it
// (test/support/host-servers.py), optionally a "world" namespace behind it,
// a README-style guest, and the built stack with the debug server on
// 127.0.0.1 of the host namespace (for /debug/pprof/flows).
//
// Leak checks: `LeakGuard` takes the stack's fd count once things are warm
// and later waits until the flow table holds no TCP flow (TIME-WAIT aside)
// and only the UDP flows the test knows are live, the fd count is back at
// the baseline (plus one socket per live UDP flow), and no client process
// is left in the guest.
//
// Timeouts: bunfig's [test] timeout is not applied by Bun 1.4.5 (tests got
// the 5 s default), so each file calls setDefaultTimeout.
import { expect } from "bun:test";
import { readdirSync, readlinkSync } from "node:fs";
import { GuestNs, HostNs, type GuestOptions } from "../../support/netns.ts";
import { StackProcess } from "../../support/stack.ts";
import { HostServers, guestClient } from "../../support/host-servers.ts";
import { createWorld } from "../../support/world-ns.ts";
import type { HostileTarget } from "../../support/hostile-checks.ts";

/** Host addresses reached with -enable-host (they are on the host's lo). */
export const HOST4 = "192.0.2.1";
export const HOST6 = "2001:db8::1";
/** Also on the host's lo, but in the static deny list (docs/compatibility.md). */
export const DENIED4 = "10.0.2.50";
export const DENIED6 = "64:ff9b::1";
export const HOST_ADDRS = [`${HOST4}/32`, `${HOST6}/128`, `${DENIED4}/32`, `${DENIED6}/128`];
/** The guest's own addresses as the stack prints them. */
export const GUEST4 = "10.0.2.100";
export const GUEST6 = "fd00::100";
/** A port nobody listens on in the host namespace. */
export const CLOSED_PORT = 9;

export interface CoreRig {
  host: HostNs;
  guest: GuestNs;
  stack: StackProcess;
  servers: HostServers;
  /** With `world: true`: the namespace behind the host's default route, and its servers. */
  world: HostNs | null;
  worldServers: HostServers | null;
  metricsPort: number;
}

export interface CoreRigOptions {
  /** Stack flags after -netns and -m; may depend on the servers' ports. */
  args?: string[] | ((servers: HostServers) => string[]);
  world?: boolean;
  guest?: GuestOptions;
  /** Extra environment for the stack (test hooks such as SLIRPNETSTACK_UDP_IDLE_MS). */
  env?: Record<string, string>;
}

export async function createCoreRig(opts: CoreRigOptions = {}): Promise<CoreRig> {
  const host = await HostNs.create(HOST_ADDRS);
  const parts: Array<{ destroy(): Promise<void> }> = [host];
  try {
    let world: HostNs | null = null;
    let worldServers: HostServers | null = null;
    if (opts.world) {
      world = await createWorld(host);
      parts.push(world);
      worldServers = await HostServers.start(world);
      parts.push(worldServers);
    }
    const servers = await HostServers.start(host);
    parts.push(servers);
    const guest = await GuestNs.create(opts.guest ?? {});
    parts.push(guest);
    const extra = typeof opts.args === "function" ? opts.args(servers) : (opts.args ?? []);
    const stack = await StackProcess.start(["-netns", guest.netnsPath, "-m", "tcp://127.0.0.1:0", ...extra], {
      host,
      ...(opts.env ? { env: opts.env } : {}),
    });
    parts.push(stack);
    const line = stack.stderr.lines.find((l) => l.includes("Running metrics on"));
    const m = line ? /Running metrics on 127\.0\.0\.1:(\d+)$/.exec(line) : null;
    if (!m) throw new Error(`no metrics line in:\n${stack.stderr.text()}`);
    return { host, guest, stack, servers, world, worldServers, metricsPort: Number(m[1]) };
  } catch (e) {
    for (const p of parts.reverse()) await p.destroy().catch(() => {});
    throw e;
  }
}

export async function destroyCoreRig(rig: CoreRig): Promise<void> {
  await rig.stack.destroy();
  await rig.guest.destroy();
  await rig.servers.destroy();
  await rig.worldServers?.destroy();
  await rig.world?.destroy();
  await rig.host.destroy();
}

/** Fetches a path of the stack's debug server (it listens inside the host namespace). */
export async function debugGet(rig: CoreRig, path: string, curlArgs: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return rig.host.exec(["curl", "-sS", "--noproxy", "*", "--max-time", "10", ...curlArgs, `http://127.0.0.1:${rig.metricsPort}${path}`]);
}

/** The rig as test/support/hostile-checks.ts sees it. */
export function hostileTarget(rig: CoreRig): HostileTarget {
  return {
    host: rig.host,
    guest: rig.guest,
    servers: rig.servers,
    serverAddr: HOST4,
    pid: rig.stack.pid,
    metrics: async () => {
      const r = await debugGet(rig, "/metrics");
      if (r.code !== 0) throw new Error(`metrics: curl exited ${r.code}: ${r.stderr}${stackState(rig)}`);
      return r.stdout;
    },
  };
}

/** The stack's exit status and stderr, when it is no longer running (for error messages). */
export function stackState(rig: CoreRig): string {
  const p = rig.stack.proc;
  if (p.exitCode === null && p.signalCode === null) return "";
  return `\nthe stack exited (code ${p.exitCode}, signal ${p.signalCode}); its stderr:\n${rig.stack.stderr.text()}`;
}

export interface FlowRow {
  proto: "tcp" | "udp";
  state?: string;
  guest: string;
  destination: string;
  idleMs?: number;
}

/** The live flow table (/debug/pprof/flows). */
export async function flowTable(rig: CoreRig): Promise<FlowRow[]> {
  const r = await debugGet(rig, "/debug/pprof/flows");
  if (r.code !== 0) throw new Error(`flows: curl exited ${r.code}: ${r.stderr}${stackState(rig)}`);
  return JSON.parse(r.stdout) as FlowRow[];
}

/**
 * Waits until the flow table holds no TCP flow and exactly `udp` UDP flows
 * (live UDP flows last 125 s by design); fails with what is there. TIME-WAIT
 * rows do not count: that state lasts 30 s by design (the "done" line is
 * printed and the host socket closed when it starts), and the fd check
 * shows that it holds nothing on the host side.
 */
export async function waitNoFlows(rig: CoreRig, timeoutMs = 10_000, udp = 0): Promise<void> {
  const end = Date.now() + timeoutMs;
  let rows: FlowRow[] = [];
  const done = () => rows.every((r) => r.proto === "udp" || r.state === "TIME-WAIT") && rows.filter((r) => r.proto === "udp").length === udp;
  while (Date.now() < end) {
    rows = (await flowTable(rig)).filter((r) => r.state !== "TIME-WAIT");
    if (done()) return;
    await Bun.sleep(50);
  }
  const tcpLeft = rows.filter((r) => r.proto === "tcp");
  const udpLeft = rows.filter((r) => r.proto === "udp");
  expect({ tcpFlows: tcpLeft, udpFlows: udpLeft.length, udpRows: udpLeft }).toEqual({ tcpFlows: [], udpFlows: udp, udpRows: udpLeft });
}

/**
 * True when a flow-table endpoint ("ip:port") is `ip`, `port`. IPv6 is
 * accepted bracketed or not (the table writes "fd00::100:40000").
 */
export function endpointIs(text: string, ip: string, port: number | string): boolean {
  return text === goHostPort(ip, port) || text === `${ip}:${port}`;
}

/** PIDs in the guest's network namespace other than its holder. */
export function guestProcesses(guest: GuestNs): number[] {
  const ns = readlinkSync(guest.netnsPath);
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === guest.pid) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/net`) === ns) out.push(Number(d));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

export class LeakGuard {
  private constructor(
    private readonly rig: CoreRig,
    readonly baselineFds: number,
  ) {}

  /** Call once the stack is warm (after a first connection has come and gone). */
  static async take(rig: CoreRig): Promise<LeakGuard> {
    await waitNoFlows(rig);
    await Bun.sleep(200);
    return new LeakGuard(rig, await rig.stack.fdCount());
  }

  /** UDP flows the tests opened that are still live (each holds one host socket). */
  udpOpen = 0;

  /**
   * No TCP flow left and exactly `udpOpen` UDP flows, fds back to the
   * baseline (plus one per live UDP flow), no guest client left.
   */
  async check(timeoutMs = 10_000): Promise<{ fds: number }> {
    await waitNoFlows(this.rig, timeoutMs, this.udpOpen);
    const limit = this.baselineFds + this.udpOpen;
    const end = Date.now() + timeoutMs;
    let fds = await this.rig.stack.fdCount();
    while (fds > limit && Date.now() < end) {
      await Bun.sleep(50);
      fds = await this.rig.stack.fdCount();
    }
    expect({ fds, limit, ok: fds <= limit }).toMatchObject({ ok: true });
    expect(guestProcesses(this.rig.guest)).toEqual([]);
    return { fds };
  }
}

/** Makes one connection through the stack so lazily created parts exist before a baseline. */
export async function warmUp(rig: CoreRig): Promise<void> {
  const r = await guestClient<{ ok: number }>(rig.guest, "connectmany", [HOST4, rig.servers.ports.echo, 2]);
  expect(r.ok).toBe(2);
}

/** Formats ip:port the way the stack's log lines do (Go style). */
export function goHostPort(ip: string, port: number | string): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** A regex-safe copy of a string. */
export function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
