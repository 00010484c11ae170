// Run mode: `slirpnetstack [flags] [-- COMMAND [ARGS...]]` without -netns
// and -fd. We start ourselves under
//
//   unshare --user --map-root-user --net --mount -- SELF __ns-helper run … -- COMMAND…
//
// The helper (root inside its own user namespace) creates tap tun0,
// configures it over rtnetlink (lo up, MTU, 10.0.2.100/24, fd00::100/64
// nodad, default routes via 10.0.2.2 and fd00::2), optionally binds a file
// over /etc/resolv.conf, sends us the tap fd, waits for our go byte and
// execve()s the command, which so keeps the helper's PID (unshare does not
// fork). We hold the guest's network namespace open (an nsfs fd) until we
// exit: when the command ends, the sockets it left behind in its kernel
// can still finish sending during the stack's exit drain. Nothing outlives
// us: the tap dies with our fd, the namespaces with their last holder.
//
// Signals (same process group, as started from a shell):
//   * Ctrl-C / Ctrl-\ on the terminal send SIGINT / SIGQUIT to the whole
//     foreground group, so the command already has them: the stack must
//     survive them (ignore) and let the command decide.
//   * SIGTERM and SIGHUP sent to the stack are forwarded to the command.
//   * When the command ends, the stack stops and exits with its status
//     (128 + N when it died of signal N).
//   * If the stack dies first, the command gets SIGTERM (PR_SET_PDEATHSIG,
//     armed before execve; `parentDeathSignal`).
// {@link forwardRunModeSignals} installs exactly that.
import { openSync, writeSync } from "node:fs";
import type { TunAttachment } from "../../ffi/tun.ts";
import { SysError } from "../../ffi/libc.ts";
import { closeFd, killPid, SIGTERM } from "../../ffi/sys.ts";
import { sendMessage } from "../../ffi/scm.ts";
import { RUN_DEFAULTS, runHelperArgs, selfCommand, unshareArgs } from "./args.ts";
import { DeviceError, classifyHelperReport, usernsDisabledHint } from "./errors.ts";
import { GO_BYTE } from "./protocol.ts";
import { envFacts, isRoot, nextMessage, reap, shellStatus, startupEnv } from "./spawn.ts";
import { HELPER_TIMEOUT_MS, findTool, helperProtocolError, helperTimeoutError, hungUpError, spawnUnderTool } from "./tool-helper.ts";

export interface RunModeOptions {
  /** The command and its arguments; empty: $SHELL, else /bin/sh. */
  command: readonly string[];
  /** TUN_F_* offloads to negotiate on the tap (0: plain frames). */
  offloads: number;
  /** The tap's MTU (default 65520). */
  mtu?: number;
  /** The tap's name (default tun0). */
  ifname?: string;
  /** A file bind-mounted over /etc/resolv.conf inside (null: leave it). */
  resolvConf?: string | null;
  /** The command's environment, also searched for PATH (default: the one we were started with, not Bun's process.env, which may hold .env files; see startupEnv). */
  env?: Record<string, string | undefined>;
  /** How long to wait for the helper (default 30 s). */
  timeoutMs?: number;
  /** Signal for the command when we die (default SIGTERM; 0: none). */
  parentDeathSignal?: number;
  /** How to start ourselves (default: selfCommand()). */
  self?: string[];
}

export interface RunModeSession {
  /** The tap, like acquireDevice's result (kind "tap"). */
  device: TunAttachment;
  /** PID of the helper, which becomes the command. */
  pid: number;
  /** The command's exit status as a shell reports it: its code, or 128 + signal. */
  exited: Promise<number>;
  /** Lets the command start (once the stack is running). Idempotent. */
  go(): void;
  /** Never starts the command: the helper exits. Resolves to its status. */
  abort(): Promise<number>;
}

/**
 * Creates the namespaces and the tap, and stops right before the command
 * runs. Throws {@link DeviceError}: print `err.lines()` and exit
 * `err.exitCode` (253; 127 when the command is not found, 126 when it is
 * not executable).
 */
export async function startRunMode(opts: RunModeOptions): Promise<RunModeSession> {
  const env = opts.env ?? startupEnv();
  const ifname = opts.ifname ?? RUN_DEFAULTS.ifname;
  const mtu = opts.mtu ?? RUN_DEFAULTS.mtu;
  const where = { netns: "", ifname };
  const facts = envFacts();

  const unshare = findTool("unshare", env, where);
  const off = facts.maxUserNamespaces === 0 || !isRoot() ? usernsDisabledHint(facts) : null;
  if (off !== null) {
    throw new DeviceError({ ...where, step: "netns", sys: new SysError("unshare", 28 /*ENOSPC*/, "CLONE_NEWUSER"), cause: "userns-disabled", hint: off });
  }

  const argv = [
    unshare,
    ...unshareArgs(),
    "--",
    ...(opts.self ?? selfCommand()),
    ...runHelperArgs({
      ifname,
      mtu,
      offloads: opts.offloads,
      resolvConf: opts.resolvConf ?? null,
      command: opts.command,
      parentDeathSignal: opts.parentDeathSignal ?? SIGTERM,
    }),
  ];
  // stdin and stdout are the command's; stderr is a pipe to us until the
  // helper puts the real one (passed as fd 4) back right before execve.
  const h = spawnUnderTool("unshare", argv, { stdin: "inherit", stdout: "inherit", env, extraFds: [2] }, where); // our fd 2 -> its fd 4

  const sock = h.sock;
  let sockOpen = true;
  const closeSock = () => {
    if (sockOpen) {
      sockOpen = false;
      closeFd(sock);
    }
  };
  const fail = async (e: DeviceError): Promise<never> => {
    closeSock();
    await reap(h.proc, 5000);
    throw e;
  };

  const timeoutMs = opts.timeoutMs ?? HELPER_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let started = false;
  let device: TunAttachment | null = null;
  while (device === null) {
    const r = await nextMessage(sock, deadline);
    if (r.kind === "timeout") {
      h.proc.kill("SIGKILL");
      return fail(helperTimeoutError(where, timeoutMs));
    }
    if (r.kind === "eof") {
      closeSock();
      throw await hungUpError(h, "unshare", started, facts, where, null);
    }
    const { msg, fd } = r;
    if (fd !== null && msg?.t !== "device") closeFd(fd);
    if (msg === null || (msg.t === "device" && fd === null)) {
      h.proc.kill("SIGKILL");
      return fail(helperProtocolError(where));
    }
    if (msg.t === "started" || msg.t === "opening") started = true;
    else if (msg.t === "error") return fail(classifyHelperReport(msg, facts, where));
    else device = { fd: fd!, kind: msg.kind, mtu: msg.mtu, vnetHdr: msg.vnetHdr, offloads: msg.offloads };
  }

  // Whatever the helper wrote before execve (normally nothing) still shows.
  void h.stderr.then((t) => {
    if (t !== "") writeSync(2, t);
  });
  const proc = h.proc;
  // Held until we exit (see the file comment); O_CLOEXEC, as Bun opens files.
  try {
    openSync(`/proc/${proc.pid}/ns/net`, "r");
  } catch {
    // Without it the command's last bytes may be lost at exit, nothing worse.
  }
  const exited = proc.exited.then(() => shellStatus(proc.exitCode, proc.signalCode));
  return {
    device,
    pid: proc.pid,
    exited,
    go() {
      if (!sockOpen) return;
      try {
        sendMessage(sock, Uint8Array.of(GO_BYTE));
      } catch {
        // The helper is gone already; `exited` tells how.
      }
      closeSock();
    },
    async abort() {
      closeSock();
      return reap(proc, 5000);
    },
  };
}

/**
 * Run-mode signal policy for the stack process (see the file comment):
 * SIGINT and SIGQUIT are ignored (the terminal gave them to the command
 * too), SIGTERM and SIGHUP are forwarded to the command. Returns a function
 * that removes the handlers. The caller still waits for `session.exited`
 * and then exits with that status.
 */
export function forwardRunModeSignals(pid: number): () => void {
  const ignore = (): void => {};
  const forward = (signal: NodeJS.Signals): void => {
    killPid(pid, signal === "SIGHUP" ? 1 : SIGTERM);
  };
  const handlers: [NodeJS.Signals, (s: NodeJS.Signals) => void][] = [
    ["SIGINT", ignore],
    ["SIGQUIT", ignore],
    ["SIGTERM", forward],
    ["SIGHUP", forward],
  ];
  for (const [s, f] of handlers) process.on(s, f);
  return () => {
    for (const [s, f] of handlers) process.removeListener(s, f);
  };
}
