// Network namespaces for integration tests, held by sleeping processes so
// that killing the holder is the whole cleanup (nothing left in /run/netns).
//
// - HostNs: a private "host" network namespace where the stack under test
//   runs. Its routing tables are the test's own, and no traffic can leave
//   the machine from it: only lo exists.
// - GuestNs: a user + network namespace configured like the upstream README
//   (tap tun0 MTU 65521, 10.0.2.100/24, fd00::100/64 nodad, default routes
//   via 10.0.2.2 and fd00::2).
//
// Every namespace is registered for teardown; `destroyAll()` runs after each
// test file (see test/support/cleanup.ts) and at process exit, so a failing
// test never leaves namespaces, taps or processes behind.
import type { Subprocess } from "bun";
import { track, untrack } from "./cleanup.ts";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function waitForFile(path: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await Bun.file(path).exists()) return;
    await Bun.sleep(5);
  }
  throw new Error(`timed out waiting for ${path}`);
}

/** A fresh path for a holder's script to create once its namespace is set up. */
export function readyMarker(kind: string): string {
  return `/tmp/slirp-test-${kind}-${process.pid}-${Math.random().toString(36).slice(2)}`;
}

/**
 * Waits until `holder` has created `marker`. If it does not (it exited, or
 * 5 s passed), `ns` is destroyed and the error says why.
 */
export async function holderReady(holder: Subprocess, marker: string, ns: { destroy(): Promise<void> }): Promise<void> {
  try {
    await Promise.race([
      waitForFile(marker, 5000),
      holder.exited.then(async (code) => {
        const stderr = holder.stderr instanceof ReadableStream ? await new Response(holder.stderr).text() : "";
        throw new Error(`namespace holder exited ${code}${stderr === "" ? "" : `: ${stderr}`}`);
      }),
    ]);
  } catch (e) {
    await ns.destroy();
    throw e;
  } finally {
    await Bun.file(marker).delete().catch(() => {});
  }
}

/**
 * Shell commands (run inside the new namespace) that set up tap or tun
 * `name` like the upstream README: MTU, 10.0.2.100/24, fd00::100/64 nodad,
 * default routes via 10.0.2.2 and fd00::2.
 */
export function readmeGuestSetup(name: string, mode: "tap" | "tun", mtu: number): string[] {
  return [
    "ip link set lo up",
    `ip tuntap add mode ${mode} name ${name}`,
    `ip link set ${name} mtu ${mtu} up`,
    `ip addr add 10.0.2.100/24 dev ${name}`,
    `ip addr add fd00::100/64 dev ${name} nodad`,
    `ip route add default via 10.0.2.2 dev ${name}`,
    `ip -6 route add default via fd00::2 dev ${name}`,
  ];
}

/**
 * Shell commands that create tap or tun `name`, up, with no address and no
 * route: a guest that configures itself (DHCP, SLAAC). IPv6 takes router
 * advertisements (accept_ra 2: even if forwarding were on; forwarding 0).
 */
export function bareGuestSetup(name: string, mode: "tap" | "tun", mtu: number): string[] {
  return [
    "ip link set lo up",
    `ip tuntap add mode ${mode} name ${name}`,
    `ip link set ${name} mtu ${mtu}`,
    `sysctl -qw net.ipv6.conf.${name}.forwarding=0 net.ipv6.conf.${name}.accept_ra=2`,
    `ip link set ${name} up`,
  ];
}

abstract class HeldNamespace {
  protected constructor(
    readonly holder: Subprocess,
    /** nsenter flags selecting the namespaces to enter. */
    private readonly enterFlags: string[],
  ) {
    track(this);
  }

  get pid(): number {
    return this.holder.pid;
  }

  get netnsPath(): string {
    return `/proc/${this.pid}/ns/net`;
  }

  /** argv prefix that runs a command inside this namespace. */
  enter(cmd: string[]): string[] {
    return ["nsenter", ...this.enterFlags, "-t", String(this.pid), "--", ...cmd];
  }

  /** Runs a command inside, waits for it, and returns its output. */
  async exec(cmd: string[], opts: { timeoutMs?: number; stdin?: Uint8Array | string } = {}): Promise<ExecResult> {
    const p = Bun.spawn(this.enter(cmd), {
      stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    const [stdout, stderr, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    clearTimeout(timer);
    return { code, stdout, stderr };
  }

  /** Like exec, but throws with the output when the command fails. */
  async run(cmd: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.exec(cmd, opts);
    if (r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Starts a long-running command inside; it is killed at teardown. */
  spawn(cmd: string[], opts: { stdin?: "pipe" | "ignore" } = {}): Subprocess<"pipe" | "ignore", "pipe", "pipe"> {
    const p = Bun.spawn(this.enter(cmd), { stdin: opts.stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
    track({ destroy: async () => void p.kill("SIGKILL") });
    return p as Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  }

  async destroy(): Promise<void> {
    untrack(this);
    this.holder.kill("SIGKILL");
    await this.holder.exited;
  }
}

/** A private network namespace standing in for the host. */
export class HostNs extends HeldNamespace {
  private constructor(holder: Subprocess) {
    super(holder, ["-n"]);
  }

  /**
   * Creates it with lo up. `localAddrs` are added to lo, which puts them in
   * the namespace's local routing table (a "host address" for -enable-host).
   */
  static async create(localAddrs: string[] = []): Promise<HostNs> {
    const marker = readyMarker("host");
    const script = [
      "ip link set lo up",
      ...localAddrs.map((a) => `ip addr add ${a} dev lo${a.includes(":") ? " nodad" : ""}`),
      `: > ${marker}`,
      "exec sleep infinity",
    ].join(" && ");
    const holder = Bun.spawn(["unshare", "-n", "sh", "-c", script], { stdout: "ignore", stderr: "inherit" });
    const ns = new HostNs(holder);
    await holderReady(holder, marker, ns);
    return ns;
  }
}

export interface GuestOptions {
  /** "tap" (default, as the README) or "tun". */
  mode?: "tap" | "tun";
  mtu?: number;
  name?: string;
  /** Tap up but unconfigured (bareGuestSetup) instead of the README's static setup. */
  bare?: boolean;
}

/** A user+net namespace with a tap configured like the upstream README (or bare, see GuestOptions). */
export class GuestNs extends HeldNamespace {
  private constructor(
    holder: Subprocess,
    readonly ifname: string,
  ) {
    super(holder, ["-U", "-n", "--preserve-credentials"]);
  }

  static async create(opts: GuestOptions = {}): Promise<GuestNs> {
    const name = opts.name ?? "tun0";
    const marker = readyMarker("guest");
    const setup = opts.bare ? bareGuestSetup : readmeGuestSetup;
    const script = [...setup(name, opts.mode ?? "tap", opts.mtu ?? 65521), `: > ${marker}`, "exec sleep infinity"].join(" && ");
    const holder = Bun.spawn(["unshare", "-Urn", "sh", "-c", script], { stdout: "ignore", stderr: "inherit" });
    const ns = new GuestNs(holder, name);
    await holderReady(holder, marker, ns);
    return ns;
  }
}
