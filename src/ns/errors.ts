// What can go wrong while getting a device, and the stderr lines for it.
//
// Device failures keep upstream's shape (docs/compatibility.md, startup
// step 9, and Attaching to a namespace): one specific line, then
// `Failed to open TUN/TAP: ERR`, exit 253. The specific line is upstream's
// own (`[!] Can't join netns …`, `[!] GetMTU(…) = …`,
// `[!] open(…) = …`) unless the failure has an environmental cause that a
// user can act on (user namespaces disabled, /dev/net/tun not accessible,
// nsenter/unshare missing, the target process gone, …): then that one clear
// line names the cause instead. A run-mode command that cannot be found or
// executed exits 127 / 126 like a shell, with one line.
import { SysError, errnoText } from "../../ffi/libc.ts";

/** Which step failed: upstream's three, plus the rootless ones. */
export type DeviceStep =
  /** joining the target network namespace (incl. nsenter/unshare and the user namespace) */
  | "netns"
  /** reading the interface MTU (attach) */
  | "mtu"
  /** opening /dev/net/tun and TUNSETIFF */
  | "open"
  /** run mode: configuring the new namespace (lo, addresses, routes, resolv.conf) */
  | "setup"
  /** run mode: finding or executing the command */
  | "exec"
  /** the helper process itself (did not start, crashed, timed out) */
  | "helper";

/** Environmental causes we recognise and explain in one line. */
export type Cause =
  | "userns-disabled"
  | "userns-limit"
  | "tun-inaccessible"
  | "tun-missing"
  | "tool-missing"
  | "pid-gone"
  | "netns-missing"
  | "netns-not-owned"
  | "command-not-found"
  | "command-not-executable"
  | "helper-timeout"
  | "helper-failed";

export const EXIT_DEVICE = 253;
export const EXIT_NOT_FOUND = 127;
export const EXIT_NOT_EXECUTABLE = 126;

export interface DeviceErrorInit {
  step: DeviceStep;
  /** The failed call; its `text` is the Go-style error text. */
  sys: SysError | null;
  /** An environmental cause, explained in `hint`. */
  cause?: Cause | null;
  /** One line naming the cause (without the "[!] " prefix). */
  hint?: string | null;
  /** The -netns path ("" when none) and interface name, for upstream's lines. */
  netns: string;
  ifname: string;
  exitCode?: number;
  /** Overrides the Go-style error text (default: sys.text, prefixed for the netns step). */
  text?: string;
}

export class DeviceError extends Error {
  readonly step: DeviceStep;
  readonly sys: SysError | null;
  /** The environmental cause, when recognised. */
  readonly reason: Cause | null;
  readonly hint: string | null;
  readonly netns: string;
  readonly ifname: string;
  /** 253 for device failures; 127/126 when a run-mode command is missing / not executable. */
  readonly exitCode: number;
  private readonly textOverride: string | null;

  constructor(init: DeviceErrorInit) {
    super(init.hint ?? init.sys?.message ?? `${init.step} failed`);
    this.name = "DeviceError";
    this.step = init.step;
    this.sys = init.sys;
    this.reason = init.cause ?? null;
    this.hint = init.hint ?? null;
    this.netns = init.netns;
    this.ifname = init.ifname;
    this.exitCode = init.exitCode ?? EXIT_DEVICE;
    this.textOverride = init.text ?? null;
  }

  /** The Go-style error text upstream's lines quote. */
  get text(): string {
    if (this.textOverride !== null) return this.textOverride;
    const base = this.sys?.text ?? this.hint ?? `${this.step} failed`;
    return this.step === "netns" && this.netns !== "" ? `joining net namespace "${this.netns}": ${base}` : base;
  }

  /** The stderr lines to print, in order, before exiting with {@link exitCode}. */
  lines(): string[] {
    if (this.step === "exec") return [`[!] ${this.hint ?? this.text}`];
    const specific = this.hint !== null ? `[!] ${this.hint}` : this.contractLine();
    return [specific, `Failed to open TUN/TAP: ${this.text}`];
  }

  private contractLine(): string {
    switch (this.step) {
      case "netns":
        return `[!] Can't join netns ${this.netns}: ${this.text}`;
      case "mtu":
        return `[!] GetMTU(${this.ifname}) = ${this.text}`;
      case "open":
        return `[!] open(${this.ifname}) = ${this.text}`;
      case "setup":
        return `[!] Configuring ${this.ifname} in the new namespace failed: ${this.sys?.message ?? this.text}: ${this.text}`;
      default:
        return `[!] Namespace helper failed: ${this.sys?.message ?? this.text}`;
    }
  }
}

let textToErrno: Map<string, number> | null = null;

/** Maps libc's description ("Operation not permitted") back to the errno. */
export function errnoFromText(text: string): number | null {
  if (textToErrno === null) {
    textToErrno = new Map();
    for (let n = 1; n < 134; n++) {
      const t = errnoText(n).toLowerCase();
      if (!textToErrno.has(t)) textToErrno.set(t, n);
    }
  }
  return textToErrno.get(text.trim().toLowerCase()) ?? null;
}

/** Facts about the system that turn an errno into a cause. */
export interface EnvFacts {
  uid: number;
  /** /proc/sys/user/max_user_namespaces, null when unreadable. */
  maxUserNamespaces: number | null;
  /** /proc/sys/kernel/unprivileged_userns_clone (Debian/Ubuntu kernels), null when absent. */
  unprivilegedUsernsClone: number | null;
  /** /proc/sys/kernel/apparmor_restrict_unprivileged_userns (Ubuntu), null when absent. */
  apparmorRestrictUserns: number | null;
  /** "crw------- root:root" style description of /dev/net/tun, null when missing. */
  tunMode: string | null;
}

const EPERM = 1;
const ENOENT = 2;
const EACCES = 13;
const EINVAL = 22;
const ENOSPC = 28;
const EUSERS = 87;

/** The one line for "user namespaces are off", naming the knob that is off. */
export function usernsDisabledHint(f: EnvFacts): string | null {
  if (f.maxUserNamespaces === 0) {
    return "user namespaces are disabled (sysctl user.max_user_namespaces = 0); rootless mode needs them, or run as root";
  }
  if (f.unprivilegedUsernsClone === 0) {
    return "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone = 0); rootless mode needs them, or run as root";
  }
  return null;
}

function usernsRefusedHint(f: EnvFacts, what: string): string {
  const off = usernsDisabledHint(f);
  if (off !== null) return off;
  if (f.apparmorRestrictUserns === 1) {
    return `${what}: unprivileged user namespaces are restricted by AppArmor (sysctl kernel.apparmor_restrict_unprivileged_userns = 1)`;
  }
  return `${what}: the kernel refused the user namespace (are unprivileged user namespaces allowed here?)`;
}

export function tunHint(errno: number, f: EnvFacts): { cause: Cause; hint: string } | null {
  if (errno === EACCES || errno === EPERM) {
    const mode = f.tunMode !== null ? ` (${f.tunMode})` : "";
    return {
      cause: "tun-inaccessible",
      hint: `/dev/net/tun is not accessible to uid ${f.uid}${mode}; rootless mode needs it world read-writable (chmod 0666 /dev/net/tun, the usual default), or run as root`,
    };
  }
  if (errno === ENOENT) {
    return { cause: "tun-missing", hint: "/dev/net/tun does not exist; load the tun module (modprobe tun)" };
  }
  return null;
}

/** Go's exec.ErrNotFound text, as os/exec would print it. */
export function toolMissingText(tool: string): string {
  return `exec: "${tool}": executable file not found in $PATH`;
}

export function toolMissingHint(tool: string): string {
  return `${tool} not found in PATH; rootless mode runs util-linux's ${tool} (install util-linux, or run as root)`;
}

export function pidGoneHint(pid: number, netns: string): string {
  return `process ${pid} is gone: its network namespace ${netns} no longer exists`;
}

/**
 * Explains a report from the helper (which step failed, the failed call and
 * its errno) as a DeviceError.
 */
export function classifyHelperReport(
  report: { step: DeviceStep; call: string; errno: number; detail?: string; command?: string },
  f: EnvFacts,
  where: { netns: string; ifname: string },
): DeviceError {
  const sys = new SysError(report.call, report.errno, report.detail || undefined);
  const base = { sys, netns: where.netns, ifname: where.ifname };
  if (report.step === "exec") {
    const cmd = report.command ?? report.detail ?? "command";
    if (report.errno === ENOENT) {
      return new DeviceError({ ...base, step: "exec", cause: "command-not-found", hint: `${cmd}: command not found`, exitCode: EXIT_NOT_FOUND });
    }
    return new DeviceError({
      ...base,
      step: "exec",
      cause: "command-not-executable",
      hint: `${cmd}: ${sys.text}`,
      exitCode: EXIT_NOT_EXECUTABLE,
    });
  }
  if (report.step === "open" && report.call === "open" && (report.detail ?? "").includes("/dev/net/tun")) {
    const h = tunHint(report.errno, f);
    if (h !== null) return new DeviceError({ ...base, step: "open", ...h });
  }
  return new DeviceError({ ...base, step: report.step });
}

/**
 * Explains how nsenter or unshare failed, from its stderr, when the helper
 * never got to report (the namespace could not be entered or created).
 */
export function classifyToolFailure(
  tool: "nsenter" | "unshare",
  stderr: string,
  f: EnvFacts,
  where: { netns: string; ifname: string; pid: number | null },
): DeviceError {
  const base = { netns: where.netns, ifname: where.ifname };
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const line = lines.find((l) => l.startsWith(`${tool}:`)) ?? lines[lines.length - 1] ?? "";
  const colon = line.lastIndexOf(": ");
  const errno = colon >= 0 ? errnoFromText(line.slice(colon + 2)) : null;
  const sys = errno !== null ? new SysError(tool, errno, line.slice(tool.length + 2, colon)) : null;

  if (tool === "nsenter") {
    const openFail = /cannot open (\S+?):? /.exec(line);
    if (openFail && errno === ENOENT && where.pid !== null && openFail[1]!.startsWith(`/proc/${where.pid}/`)) {
      return new DeviceError({ ...base, step: "netns", sys, cause: "pid-gone", hint: pidGoneHint(where.pid, where.netns) });
    }
    if (openFail && errno === ENOENT) {
      // The file may be the user namespace given with the netns (slirp4netns's --userns-path).
      const missing = openFail[1] === where.netns ? `network namespace ${where.netns}` : openFail[1];
      return new DeviceError({ ...base, step: "netns", sys, cause: "netns-missing", hint: `${missing} does not exist` });
    }
    if (openFail && errno === EACCES) {
      return new DeviceError({
        ...base,
        step: "netns",
        sys,
        cause: "netns-not-owned",
        hint: `cannot open ${openFail[1]}: it belongs to another user; rootless mode can only join namespaces of your own processes, or run as root`,
      });
    }
    if (/namespace 'ns\/user' failed/.test(line) && (errno === EPERM || errno === EINVAL)) {
      const off = usernsDisabledHint(f);
      if (off !== null) return new DeviceError({ ...base, step: "netns", sys, cause: "userns-disabled", hint: off });
      return new DeviceError({
        ...base,
        step: "netns",
        sys,
        cause: "netns-not-owned",
        hint: `cannot enter the user namespace owning ${where.netns}: ${sys?.text ?? "refused"}; it must be a user namespace you created (e.g. with unshare -Urn)`,
      });
    }
    if (/namespace 'ns\/net' failed/.test(line) && errno === EPERM) {
      return new DeviceError({
        ...base,
        step: "netns",
        sys,
        cause: "netns-not-owned",
        hint: `not allowed to join ${where.netns}: it is not owned by a user namespace of yours (create it with unshare -Urn), or run as root`,
      });
    }
  } else {
    if (errno === ENOSPC || errno === EUSERS) {
      const off = usernsDisabledHint(f);
      return new DeviceError({
        ...base,
        step: "netns",
        sys,
        cause: off !== null ? "userns-disabled" : "userns-limit",
        hint: off ?? `cannot create a user namespace: the limit (sysctl user.max_user_namespaces = ${f.maxUserNamespaces}) is reached`,
      });
    }
    if (errno === EPERM || errno === EINVAL || errno === EACCES) {
      const off = usernsDisabledHint(f);
      return new DeviceError({
        ...base,
        step: "netns",
        sys,
        cause: "userns-disabled",
        hint: off ?? usernsRefusedHint(f, `${tool} could not create the namespaces (${sys?.text})`),
      });
    }
  }
  return new DeviceError({
    ...base,
    step: "netns",
    sys,
    cause: "helper-failed",
    hint: line !== "" ? `${tool} failed: ${line.startsWith(`${tool}: `) ? line.slice(tool.length + 2) : line}` : `${tool} failed without a message`,
  });
}
