// The implementations under test: how to prepare the guest and start each
// stack so that the guest reaches the host's 127.0.0.1 at 10.0.2.2.
import { existsSync } from "node:fs";
import { readmeGuestSetup } from "../../test/support/netns.ts";

export const HOST_ADDR = "10.0.2.2"; // what the guest dials; every stack maps it to host 127.0.0.1
export const IPERF_PORT = 5201;
export const ECHO_PORT = 5301; // TCP and UDP echo

export interface Impl {
  name: string;
  /** the guest's interface the stack serves */
  iface: string;
  /** null when usable, else why it is skipped */
  missing(): string | null;
  version(): string;
  /** MTU of the guest link for benchmark MTU `mtu` */
  linkMtu(mtu: number): number;
  /** sh commands run in the fresh `unshare -Urn` guest before the stack starts */
  guestSetup(mtu: number): string;
  /** argv of the stack, attached to the guest whose namespaces belong to guestPid
   *  (a string such as "{pid}" asks for the command line as shown in reports) */
  command(guestPid: number | string, mtu: number): string[];
}

function firstLine(cmd: string[]): string {
  const r = Bun.spawnSync({ cmd, stdout: "pipe", stderr: "pipe" });
  return (r.stdout.toString() + r.stderr.toString()).trim().split("\n")[0] ?? "";
}

function debVersion(pkg: string): string | null {
  const r = Bun.spawnSync({ cmd: ["dpkg-query", "-W", "-f=${Version}", pkg], stdout: "pipe", stderr: "ignore" });
  return r.exitCode === 0 ? r.stdout.toString().trim() : null;
}

/** The README makes the tap 65521; at any other MTU the tap gets that MTU. */
function readmeLinkMtu(mtu: number): number {
  return mtu === 65520 ? 65521 : mtu;
}

/**
 * This project's binary, attached like the README's example. `run` is the
 * file actually executed (a copy made at the start, so that a rebuild
 * during the run cannot mix two versions); `bin` is what the reports show.
 */
export function slirpnetstack(bin: string, extraArgs: string[], run = bin): Impl {
  return {
    name: "slirpnetstack",
    iface: "tun0",
    missing: () => (existsSync(run) ? null : `${bin} not found (run \`bun build.ts\`)`),
    version: () => firstLine([run, "-version"]).replace(/^slirpnetstack version /, ""),
    linkMtu: readmeLinkMtu,
    guestSetup: (mtu) => readmeGuestSetup("tun0", "tap", readmeLinkMtu(mtu)).join(" && "),
    command: (pid) => [
      typeof pid === "string" ? bin : run, "-netns", `/proc/${pid}/ns/net`, "-interface", "tun0",
      "-R", String(IPERF_PORT), "-R", String(ECHO_PORT), "-R", `udp://${ECHO_PORT}`,
      ...extraArgs,
    ],
  };
}

/**
 * This project's binary in slirp4netns mode: started through a symlink named
 * `slirp4netns` with exactly slirp4netns's command line below, so the two
 * rows compare the stacks behind one interface (it creates and configures
 * tap0 itself and maps 10.0.2.2 to the host's loopback, as slirp4netns).
 */
export function slirpnetstackAsSlirp4netns(bin: string, link: string): Impl {
  return {
    name: "sns-slirp4netns",
    iface: "tap0",
    missing: () => (existsSync(link) ? null : `${bin} not found (run \`bun build.ts\`)`),
    version: () => {
      const out = Bun.spawnSync({ cmd: [link, "--version"], stdout: "pipe" }).stdout.toString();
      return out.match(/^slirpnetstack version (\S+)/m)?.[1] ?? out.trim().split("\n")[0] ?? "";
    },
    linkMtu: (mtu) => mtu,
    guestSetup: () => "ip link set lo up",
    command: (pid, mtu) => [typeof pid === "string" ? "slirp4netns" : link, ...slirp4netnsArgs(pid, mtu)],
  };
}

function slirp4netnsArgs(pid: number | string, mtu: number): string[] {
  return ["--configure", `--mtu=${mtu}`, "--enable-ipv6", String(pid), "tap0"];
}

/** slirp4netns creates and configures tap0 itself (10.0.2.100/24, gateway 10.0.2.2 = host loopback). */
export function slirp4netns(): Impl {
  return {
    name: "slirp4netns",
    iface: "tap0",
    missing: () => (Bun.which("slirp4netns") ? null : "slirp4netns is not installed (apt-get install slirp4netns)"),
    version: () => {
      const v = firstLine(["slirp4netns", "--version"]).replace(/^slirp4netns version /, "");
      const lib = Bun.spawnSync({ cmd: ["slirp4netns", "--version"], stdout: "pipe" }).stdout.toString().match(/libslirp: (\S+)/);
      return lib ? `${v} (libslirp ${lib[1]})` : v;
    },
    linkMtu: (mtu) => mtu,
    guestSetup: () => "ip link set lo up",
    command: (pid, mtu) => ["slirp4netns", ...slirp4netnsArgs(pid, mtu)],
  };
}

/**
 * pasta, configured to look like slirp4netns: the guest gets 10.0.2.100/24
 * with gateway 10.0.2.2, and pasta maps connections to the gateway to the
 * host's loopback; no port forwarding (-t/-u/-T/-U none, else loopback
 * traffic is spliced past the tap); -f stays in the foreground; --runas 0
 * because as root it would switch to nobody and fail to open the userns.
 */
export function pasta(): Impl {
  return {
    name: "pasta",
    iface: "tap0",
    missing: () => (Bun.which("pasta") ? null : "pasta is not installed (apt-get install passt)"),
    version: () => debVersion("passt") ?? firstLine(["pasta", "--version"]),
    linkMtu: (mtu) => mtu,
    guestSetup: () => "ip link set lo up",
    command: (pid, mtu) => [
      "pasta", "-f", "-q", "--runas", "0", "--config-net", "-I", "tap0",
      "-a", "10.0.2.100", "-n", "24", "-g", "10.0.2.2", "-a", "fd00::100", "-g", "fd00::2",
      "-m", String(mtu), "-t", "none", "-u", "none", "-T", "none", "-U", "none", String(pid),
    ],
  };
}
