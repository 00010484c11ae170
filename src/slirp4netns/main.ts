// slirp4netns mode: the program started under the name `slirp4netns`
// (`ln -s slirpnetstack slirp4netns`) takes slirp4netns 1.2's command line:
// --help (the text RootlessKit and Podman read to learn the features),
// --version, slirp4netns's messages and exit codes for a command line it
// refuses, and an option this mode does not carry out refused by name.
// A command line it carries out becomes the slirpnetstack flags that mean
// the same (main.ts runs the stack with them) plus the tap to create in
// the target namespace.
import { parseSlirp4netnsArgs, slirp4netnsNetwork, unsupportedOption, type Slirp4netnsConfig, type Slirp4netnsNetwork } from "./cli.ts";
import { formatIP, ipFromV6 } from "../wire/addr.ts";
import type { TapCreation } from "../ns/tap-setup.ts";

/** The slirp4netns release whose command line this mode takes. */
const COMPATIBLE_WITH = "1.2.0";
const EXIT_FAILURE = 1;

/** What main.ts runs: slirpnetstack's flags, the tap to create, the user namespace to join before the target's netns (--userns-path; null: the target's owner), and whether the gateway's ports are the host's loopback. */
export interface Slirp4netnsRun {
  flags: string[];
  create: TapCreation;
  userns: string | null;
  hostLoopback: boolean;
  /** slirp4netns's warnings for experimental options, for stdout once this process is the one that runs (after the runtime re-exec). */
  warnings: string;
}

/**
 * slirp4netns's behaviour in slirpnetstack's flags: the guest reaches
 * everything the host can (routing and host addresses on; the static deny
 * list and the link-local/metadata rule stay), DHCP, the DNS forwarder
 * unless --disable-dns, router advertisements with --enable-ipv6, no
 * per-flow lines (slirp4netns prints none).
 */
export function stackFlags(c: Slirp4netnsConfig): string[] {
  const netns = c.netnsType === "pid" ? `/proc/${c.target}/ns/net` : c.target;
  const flags = ["-netns", netns, "-interface", c.tapName, "-mtu", String(c.mtu), "-enable-routing", "-enable-host", "-dhcp", "-quiet"];
  if (!c.disableDns) flags.push("-enable-dns");
  if (c.enableIpv6) flags.push("-ra");
  if (c.readyFd >= 0) flags.push("-ready-fd", String(c.readyFd));
  if (c.exitFd >= 0) flags.push("-exit-fd", String(c.exitFd));
  if (c.apiSocket !== "") flags.push("-api-socket", c.apiSocket);
  if (c.enableSandbox) flags.push("-enable-sandbox");
  if (c.enableSeccomp) flags.push("-enable-seccomp");
  return flags;
}

/** --outbound-addr and --outbound-addr6: the host sockets of the guest's outbound TCP and UDP flows are bound to these addresses. */
export function outboundFlags(network: Slirp4netnsNetwork): string[] {
  const flags: string[] = [];
  if (network.outboundV4 !== null) flags.push("-source-ipv4", formatIP(network.outboundV4));
  if (network.outboundV6 !== null) flags.push("-source-ipv6", formatIP(network.outboundV6));
  return flags;
}

/** Exits for everything but a command line this mode runs; returns what to run for that. */
export async function slirp4netnsMain(args: string[], argv0: string, build: { version: string; time: string }): Promise<Slirp4netnsRun> {
  const outcome = parseSlirp4netnsArgs(args, argv0);
  switch (outcome.kind) {
    case "exit":
      if (outcome.stderr !== "") await Bun.write(Bun.stderr, outcome.stderr);
      await Bun.write(Bun.stdout, outcome.stdout);
      process.exit(outcome.code);
    case "version":
      await Bun.write(Bun.stdout, `slirp4netns version ${COMPATIBLE_WITH}\nslirpnetstack version ${build.version}\nbuild time ${build.time}\n`);
      process.exit(0);
    case "run": {
      const { interfaceAddress } = await import("../../ffi/ifaddrs.ts");
      const network = slirp4netnsNetwork(outcome.config, (name, family) => {
        const bytes = interfaceAddress(name, family);
        return bytes === null ? null : family === 4 ? { family: 4, bytes } : ipFromV6(bytes, 0);
      });
      if (typeof network === "string") {
        if (outcome.stdout !== "") await Bun.write(Bun.stdout, outcome.stdout);
        await Bun.write(Bun.stderr, network);
        process.exit(EXIT_FAILURE);
      }
      const unsupported = unsupportedOption(outcome.config);
      if (unsupported !== null) {
        await Bun.write(Bun.stderr, `${argv0}: ${unsupported}\n`);
        process.exit(EXIT_FAILURE);
      }
      const c = outcome.config;
      return { flags: [...stackFlags(c), ...outboundFlags(network)], create: { mtu: c.mtu, configure: c.configure, net: network.net, mac: network.mac }, userns: c.usernsPath === "" ? null : c.usernsPath, hostLoopback: !c.disableHostLoopback, warnings: outcome.stdout };
    }
  }
}
