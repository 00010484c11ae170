// Getting the device of an existing namespace (attach mode;
// docs/compatibility.md, Attaching to a namespace).
//
// As root: setns() the JS thread into the netns, open the device, come back
// (ffi/tun.ts; exactly the behaviour main.ts had). As an ordinary user that
// cannot work (joining a netns needs CAP_SYS_ADMIN over its owner, and Bun
// cannot enter a user namespace), so a helper started under nsenter opens
// the device inside the namespaces and passes the fd back (SCM_RIGHTS).
import { existsSync, fstatSync, readlinkSync, statSync } from "node:fs";
import { SysError, ENOENT } from "../../ffi/libc.ts";
import { closeFd } from "../../ffi/sys.ts";
import { attachTun, withNetns, AttachError, type TunAttachment } from "../../ffi/tun.ts";
import { openOwnerUserns } from "../../ffi/nsfs.ts";
import { attachHelperArgs, netnsPid, nsenterArgs, selfCommand, HELPER_USERNS_FD, type NsenterTarget } from "./args.ts";
import { createAndConfigure, TapSetupError, type TapCreation } from "./tap-setup.ts";
import { DeviceError, classifyHelperReport, pidGoneHint, tunHint } from "./errors.ts";
import { envFacts, isRoot, nextMessage, startupEnv } from "./spawn.ts";
import { HELPER_TIMEOUT_MS, findTool, helperProtocolError, helperTimeoutError, hungUpError, spawnUnderTool } from "./tool-helper.ts";

export type { TunAttachment };

export interface AcquireOptions {
  /** The -netns path; "" or null: the device is in our own namespace. */
  netns: string | null;
  ifname: string;
  /** TUN_F_* offloads to ask for on a tap (0: plain frames, no vnet header). */
  offloads: number;
  /**
   * The user namespace to join before the netns (slirp4netns's
   * --userns-path), for a /proc/PID/ns/net path too. Without it the owner
   * is found: the process's user namespace for a PID path, NS_GET_USERNS
   * for any other path (a bind mount under /run/netns, say).
   */
  userns?: string | null;
  /**
   * Create the tap `ifname` rather than open an existing device (and with
   * `configure`, bring it up with the guest's addresses and MTU), as
   * slirp4netns does; `mtu` is the MTU the stack runs with.
   */
  create?: TapCreation;
  /** Called inside the namespace right before the device is opened: print "[.] Opening tun interface IFNAME". */
  onOpening?: () => void;
  /** Use the helper (default: when the effective uid is not 0). */
  rootless?: boolean;
  /** How long to wait for the helper (default 30 s). */
  timeoutMs?: number;
  /** The environment: PATH to find nsenter, and the helper's environment (default: the one we were started with, see startupEnv). */
  env?: Record<string, string | undefined>;
  /** How to start ourselves (default: selfCommand()). */
  self?: string[];
}


/**
 * Opens the tun/tap device `ifname` in the network namespace `netns`.
 * Throws {@link DeviceError}: print `err.lines()` to stderr and exit
 * `err.exitCode` (253).
 */
export async function acquireDevice(opts: AcquireOptions): Promise<TunAttachment> {
  const netns = opts.netns ?? "";
  // The helper is for when the JS thread cannot join the target and come
  // back: an ordinary user (it must enter a user namespace first, which
  // Bun cannot), or root of a user namespace that does not own our network
  // namespace (Podman runs slirp4netns so; -enable-sandbox joins the
  // target's user namespace so), which can join the target but never
  // return. Otherwise joining directly saves starting a second process.
  const rootless = opts.rootless ?? (!isRoot() || !canReturnToOwnNetns());
  if (netns === "" || !rootless) return acquireDirect(opts, netns, rootless);
  return acquireViaHelper(opts, netns);
}

/**
 * Whether setns() back into our own network namespace will be allowed:
 * only when its owner is our user namespace or one below it (outside
 * that, NS_GET_USERNS says EPERM).
 */
function canReturnToOwnNetns(): boolean {
  const owner = openOwnerUserns("/proc/self/ns/net");
  if (owner === null) return false;
  closeFd(owner);
  return true;
}

/** Root, or our own namespace: today's direct path. */
function acquireDirect(opts: AcquireOptions, netns: string, rootless: boolean): TunAttachment {
  const where = { netns, ifname: opts.ifname };
  const attach = (): TunAttachment => {
    opts.onOpening?.();
    if (opts.create) return createAndConfigure(opts.ifname, opts.offloads, opts.create);
    return attachTun({ netns: null, ifname: opts.ifname, offloads: opts.offloads });
  };
  try {
    if (netns === "") return attach();
    let result: TunAttachment | null = null;
    try {
      withNetns(netns, () => {
        result = attach();
      });
    } catch (e) {
      if (e instanceof SysError) throw new DeviceError({ ...where, step: "netns", sys: e });
      throw e;
    }
    return result!;
  } catch (e) {
    if (e instanceof TapSetupError) throw new DeviceError({ ...where, step: e.step, sys: e.sys });
    if (e instanceof AttachError) {
      // An ordinary user in its own namespace still benefits from the hint.
      const h = rootless && e.step === "open" && e.sys.call === "open" ? tunHint(e.sys.errno, envFacts()) : null;
      throw new DeviceError({ ...where, step: e.step, sys: e.sys, ...(h ?? {}) });
    }
    throw e;
  }
}

function sameUserns(path: string): boolean | null {
  try {
    return readlinkSync(path) === readlinkSync("/proc/self/ns/user");
  } catch {
    return null;
  }
}

/** Where nsenter goes, plus a descriptor to pass along (an owner userns) if any. */
function resolveTarget(opts: AcquireOptions, netns: string): { target: NsenterTarget; fd: number | null; pid: number | null } {
  const where = { netns, ifname: opts.ifname };
  const pid = netnsPid(netns);
  if (pid !== null && !existsSync(`/proc/${pid}`)) {
    throw new DeviceError({
      ...where,
      step: "netns",
      sys: new SysError("open", ENOENT, netns),
      cause: "pid-gone",
      hint: pidGoneHint(pid, netns),
    });
  }
  // nsenter into our own user namespace fails (EINVAL): leave the user namespace out then.
  if (opts.userns) return { target: { kind: "path", netns, userns: sameUserns(opts.userns) === true ? null : opts.userns }, fd: null, pid };
  if (pid !== null) return { target: { kind: "pid", pid, enterUser: sameUserns(`/proc/${pid}/ns/user`) !== true }, fd: null, pid };
  let owner: number | null;
  try {
    owner = openOwnerUserns(netns);
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    const missing = e.errno === ENOENT;
    throw new DeviceError({
      ...where,
      step: "netns",
      sys: e,
      cause: missing ? "netns-missing" : null,
      hint: missing ? `network namespace ${netns} does not exist` : null,
    });
  }
  if (owner !== null) {
    const mine = statSync("/proc/self/ns/user");
    const st = fstatSync(owner);
    if (st.ino === mine.ino && st.dev === mine.dev) {
      closeFd(owner);
      owner = null;
    }
  }
  if (owner === null) return { target: { kind: "path", netns, userns: null }, fd: null, pid: null };
  return { target: { kind: "path", netns, userns: `/proc/self/fd/${HELPER_USERNS_FD}` }, fd: owner, pid: null };
}

async function acquireViaHelper(opts: AcquireOptions, netns: string): Promise<TunAttachment> {
  const env = opts.env ?? startupEnv();
  const where = { netns, ifname: opts.ifname };
  const facts = envFacts();
  const nsenter = findTool("nsenter", env, where);
  const { target, fd: passFd, pid } = resolveTarget(opts, netns);
  const argv = [
    nsenter,
    ...nsenterArgs(target),
    "--",
    ...(opts.self ?? selfCommand()),
    ...attachHelperArgs({ ifname: opts.ifname, offloads: opts.offloads, ...(opts.create ? { create: opts.create } : {}) }),
  ];
  let h;
  try {
    h = spawnUnderTool("nsenter", argv, { stdin: "ignore", stdout: "ignore", env, extraFds: passFd !== null ? [passFd] : [] }, where);
  } finally {
    if (passFd !== null) closeFd(passFd);
  }

  const timeoutMs = opts.timeoutMs ?? HELPER_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let started = false;
  try {
    for (;;) {
      const r = await nextMessage(h.sock, deadline);
      if (r.kind === "timeout") {
        h.proc.kill("SIGKILL");
        throw helperTimeoutError(where, timeoutMs);
      }
      if (r.kind === "eof") throw await hungUpError(h, "nsenter", started, facts, where, pid);
      const { msg, fd } = r;
      if (msg === null || (msg.t === "device" && fd === null)) {
        if (fd !== null) closeFd(fd);
        h.proc.kill("SIGKILL");
        throw helperProtocolError(where);
      }
      if (fd !== null && msg.t !== "device") closeFd(fd);
      switch (msg.t) {
        case "started":
          started = true;
          break;
        case "opening":
          started = true;
          opts.onOpening?.();
          break;
        case "device":
          return { fd: fd!, kind: msg.kind, mtu: msg.mtu, vnetHdr: msg.vnetHdr, offloads: msg.offloads };
        case "error":
          throw classifyHelperReport(msg, facts, where);
      }
    }
  } finally {
    closeFd(h.sock);
  }
}
