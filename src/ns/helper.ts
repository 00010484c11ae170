// The hidden helper command. Bun can never enter or create a user namespace
// itself (it is multi-threaded: setns/unshare(CLONE_NEWUSER) give EINVAL),
// so the rootless paths re-execute us under nsenter or unshare:
//
//   nsenter … -- slirpnetstack __ns-helper attach --ifname tun0 --offloads 103 --sock-fd 3
//   unshare … -- slirpnetstack __ns-helper run --ifname tun0 --mtu 65520 … -- COMMAND…
//
// The helper is already inside the namespaces when it starts. It opens the
// device, sends the fd back over the inherited socket (SCM_RIGHTS), and
// either exits (attach) or configures the namespace, waits for the parent's
// go byte and execve()s the command (run). Every failure is reported over
// the socket as {t:"error", step, call, errno}; the parent prints the lines.
import { defineCommand, runCommand } from "citty";
import { accessSync, constants as fsConstants, statSync, writeSync } from "node:fs";
import { SysError } from "../../ffi/libc.ts";
import { closeFd, setCloseOnExec, setParentDeathSignal, getppid } from "../../ffi/sys.ts";
import { attachTun, AttachError } from "../../ffi/tun.ts";
import { sendMessage, recvMessage } from "../../ffi/scm.ts";
import { makeRootPrivate, bindMount } from "../../ffi/mount.ts";
import { execve, dup2, resetSignalsForExec } from "../../ffi/exec.ts";
import { HIDDEN_COMMAND, RUN_DEFAULTS, defaultCommand, findExecutable } from "./args.ts";
import { configureGuest, createAndConfigure, createTapDevice, TapSetupError, type TapCreation } from "./tap-setup.ts";
import { encodeMessage, errorReport, GO_BYTE, type HelperMessage } from "./protocol.ts";
import type { DeviceStep } from "./errors.ts";
import { startupEnv } from "./spawn.ts";
import { DEFAULT_GUEST_NET_V4, guestNetV4FromText, type GuestNetV4 } from "../wire/guest-net.ts";
import { parseMac } from "../wire/ethernet.ts";

function send(sock: number, m: HelperMessage, fd: number | null = null): void {
  sendMessage(sock, encodeMessage(m), fd);
}

function intArg(name: string, value: unknown, min: number): number {
  const n = typeof value === "string" && /^-?[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name}: bad value ${JSON.stringify(value)}`);
  return n;
}

/** --create-net: the guest network, NETWORK/PREFIX. */
function netArg(value: unknown): GuestNetV4 {
  const net = typeof value === "string" ? guestNetV4FromText(value) : null;
  if (net === null) throw new Error(`--create-net: bad value ${JSON.stringify(value)}`);
  return net;
}

/** --create-mac: the tap's MAC address. */
function macArg(value: string): Uint8Array {
  const mac = parseMac(value);
  if (mac === null) throw new Error(`--create-mac: bad value ${JSON.stringify(value)}`);
  return mac;
}

/** The descriptor the parent passed, made close-on-exec so nothing we start inherits it. */
function adoptFd(name: string, value: unknown): number {
  const fd = intArg(name, value, 0);
  setCloseOnExec(fd); // EBADF when the parent did not pass it
  return fd;
}

// ---------------------------------------------------------------- attach

export interface AttachArgs {
  ifname: string;
  offloads: number;
  sock: number;
  /** Create the tap instead (slirp4netns mode); null: open the existing device. */
  create: TapCreation | null;
}

/** Attach mode: open the existing device here (or create the tap) and send it back. Returns the exit status. */
export function helperAttach(a: AttachArgs): number {
  send(a.sock, { t: "started" });
  send(a.sock, { t: "opening" });
  let dev;
  try {
    dev = a.create !== null ? createAndConfigure(a.ifname, a.offloads, a.create) : attachTun({ netns: null, ifname: a.ifname, offloads: a.offloads });
  } catch (e) {
    send(a.sock, e instanceof AttachError || e instanceof TapSetupError ? errorReport(e.step, e.sys) : errorReport("open", e));
    return 1;
  }
  try {
    send(a.sock, { t: "device", kind: dev.kind, mtu: dev.mtu, vnetHdr: dev.vnetHdr, offloads: dev.offloads }, dev.fd);
  } finally {
    closeFd(dev.fd);
  }
  return 0;
}

// ---------------------------------------------------------------- run

export interface RunArgs {
  ifname: string;
  mtu: number;
  offloads: number;
  resolvConf: string | null;
  sock: number;
  /** The real stderr, restored onto fd 2 right before execve; -1: fd 2 is already it. */
  stderrFd: number;
  /** PR_SET_PDEATHSIG for the command; 0: none. */
  parentDeathSignal: number;
  command: string[];
}

function probeExecutable(path: string): "exec" | "noexec" | "missing" {
  try {
    if (!statSync(path).isFile()) return "noexec";
  } catch {
    return "missing";
  }
  try {
    accessSync(path, fsConstants.X_OK);
    return "exec";
  } catch {
    return "noexec";
  }
}

function envStrings(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * Run mode, inside the fresh user+net+mount namespaces: set everything up,
 * send the tap, wait for the go byte, become the command. Returns the exit
 * status only when it could not execve.
 */
export function helperRun(a: RunArgs): number {
  const parent = getppid();
  send(a.sock, { t: "started" });
  // The environment we were given, without whatever Bun added from .env files.
  const env = startupEnv();
  const argv = defaultCommand(a.command, env);
  const found = findExecutable(argv[0]!, env.PATH, probeExecutable);
  if ("errno" in found) {
    send(a.sock, { t: "error", step: "exec", call: "execve", errno: found.errno, detail: argv[0]!, command: argv[0]! });
    return found.errno === 2 ? 127 : 126;
  }

  let step: DeviceStep = "setup";
  let tap: { fd: number; vnetHdr: boolean; offloads: number } | null = null;
  try {
    if (a.resolvConf !== null) {
      makeRootPrivate();
      bindMount(a.resolvConf, "/etc/resolv.conf");
    }
    step = "open";
    tap = createTapDevice(a.ifname, a.offloads);
    step = "setup";
    configureGuest(a.ifname, a.mtu, true, DEFAULT_GUEST_NET_V4, null);
    send(a.sock, { t: "device", kind: "tap", mtu: a.mtu, vnetHdr: tap.vnetHdr, offloads: tap.offloads }, tap.fd);
  } catch (e) {
    try {
      send(a.sock, errorReport(step, e));
    } catch {
      // The parent is gone; nobody to tell.
    }
    return 1;
  } finally {
    // The parent holds the only other reference: the tap dies with it.
    if (tap !== null) closeFd(tap.fd);
  }

  // Wait for the stack to run. End of file: the parent gave up or died.
  let go = false;
  try {
    const m = recvMessage(a.sock, -1);
    go = m !== null && m.data[0] === GO_BYTE;
  } catch {
    go = false;
  }
  if (!go) return 1;
  if (a.parentDeathSignal > 0) {
    setParentDeathSignal(a.parentDeathSignal);
    if (getppid() !== parent) return 1; // died before the signal was armed
  }
  if (a.stderrFd >= 0) {
    dup2(a.stderrFd, 2);
    closeFd(a.stderrFd);
  }
  closeFd(a.sock);
  resetSignalsForExec();
  const err = execve(found.path, argv, envStrings(env));
  writeSync(2, `[!] ${argv[0]}: ${err.text}\n`);
  return err.errno === 2 ? 127 : 126;
}

// ---------------------------------------------------------------- dispatch

function attachCommand(setStatus: (n: number) => void) {
  return defineCommand({
    meta: { name: "attach", hidden: true, description: "open an existing tun/tap here and send its fd back" },
    args: {
      ifname: { type: "string", required: true },
      offloads: { type: "string", default: "0" },
      "sock-fd": { type: "string", required: true },
      "create-mtu": { type: "string" },
      "create-net": { type: "string" },
      "create-mac": { type: "string" },
      configure: { type: "boolean", default: false },
    },
    run: ({ args }) => {
      setStatus(
        helperAttach({
          ifname: args.ifname,
          offloads: intArg("offloads", args.offloads, 0),
          sock: adoptFd("sock-fd", args["sock-fd"]),
          create:
            args["create-mtu"] === undefined
              ? null
              : { mtu: intArg("create-mtu", args["create-mtu"], 68), configure: args.configure, net: netArg(args["create-net"]), mac: args["create-mac"] === undefined ? null : macArg(args["create-mac"]) },
        }),
      );
    },
  });
}

function runSubcommand(command: string[], setStatus: (n: number) => void) {
  return defineCommand({
    meta: { name: "run", hidden: true, description: "create and configure tun0 here, send its fd, exec the command" },
    args: {
      ifname: { type: "string", default: RUN_DEFAULTS.ifname },
      mtu: { type: "string", default: String(RUN_DEFAULTS.mtu) },
      offloads: { type: "string", default: "0" },
      "sock-fd": { type: "string", required: true },
      "stderr-fd": { type: "string", default: "-1" },
      pdeathsig: { type: "string", default: "0" },
      "resolv-conf": { type: "string" },
    },
    run: ({ args }) => {
      const stderrFd = intArg("stderr-fd", args["stderr-fd"], -1);
      if (stderrFd >= 0) setCloseOnExec(stderrFd);
      setStatus(
        helperRun({
          ifname: args.ifname,
          mtu: intArg("mtu", args.mtu, 68),
          offloads: intArg("offloads", args.offloads, 0),
          resolvConf: args["resolv-conf"] ?? null,
          sock: adoptFd("sock-fd", args["sock-fd"]),
          stderrFd,
          parentDeathSignal: intArg("pdeathsig", args.pdeathsig, 0),
          command,
        }),
      );
    },
  });
}

/**
 * Runs the hidden helper command when argv (without the program name) is
 * one, and exits the process with its status; returns false right away for
 * any other argv. main.ts calls this first thing.
 */
export async function runHiddenCommand(argv: readonly string[]): Promise<boolean> {
  if (argv[0] !== HIDDEN_COMMAND) return false;
  const rest = argv.slice(1);
  // Everything after the first "--" is the run-mode command, untouched by
  // the flag parser (it may contain anything, flags included).
  const dd = rest.indexOf("--");
  const flags = dd >= 0 ? rest.slice(0, dd) : rest;
  const command = dd >= 0 ? rest.slice(dd + 1) : [];
  let status = 2;
  const setStatus = (n: number) => {
    status = n;
  };
  const root = defineCommand({
    meta: { name: HIDDEN_COMMAND, hidden: true },
    subCommands: { attach: attachCommand(setStatus), run: runSubcommand(command, setStatus) },
  });
  try {
    await runCommand(root, { rawArgs: flags });
  } catch (e) {
    // eslint-disable-next-line no-control-regex
    const msg = String(e instanceof SysError ? e.message : ((e as Error)?.message ?? e)).replace(/\x1b\[[0-9;]*m/g, "");
    writeSync(2, `slirpnetstack ${HIDDEN_COMMAND}: ${msg}\n`);
    status = 2;
  }
  process.exit(status);
}
