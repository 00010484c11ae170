// Pure argument building for the rootless paths: which nsenter/unshare
// flags, how we re-execute ourselves, and the hidden helper command line.
import { join } from "node:path";
import { guestNetV4Text } from "../wire/guest-net.ts";
import { formatMac } from "../wire/ethernet.ts";
import type { TapCreation } from "./tap-setup.ts";

/** The hidden subcommand: `slirpnetstack __ns-helper attach|run …`. */
export const HIDDEN_COMMAND = "__ns-helper";

/** The descriptor number the helper finds its socket on (first extra stdio slot). */
export const HELPER_SOCK_FD = 3;
/** Run mode: the descriptor holding the real stderr while fd 2 is a pipe to us. */
export const HELPER_STDERR_FD = 4;
/** Attach mode with an owning user namespace passed by descriptor. */
export const HELPER_USERNS_FD = 4;

/** Run-mode defaults (docs/compatibility.md, Fixed addresses and Run mode). */
export const RUN_DEFAULTS = {
  ifname: "tun0",
  mtu: 65520,
  guestV6: "fd00::100",
  guestV6Prefix: 64,
  gatewayV6: "fd00::2",
} as const;

/**
 * The PID whose namespace a `/proc/PID/ns/net` (or `/proc/PID/task/TID/ns/net`)
 * path names; null for any other path (ip-netns bind mounts, /proc/self, …).
 */
export function netnsPid(path: string): number | null {
  const m = /^\/proc\/([1-9][0-9]*)(?:\/task\/[1-9][0-9]*)?\/ns\/net\/?$/.exec(path);
  if (m === null) return null;
  const pid = Number(m[1]);
  return Number.isSafeInteger(pid) ? pid : null;
}

/** How nsenter should reach the target network namespace. */
export type NsenterTarget =
  /** `-t PID -n`, with `-U` when the process is in another user namespace than ours. */
  | { kind: "pid"; pid: number; enterUser: boolean }
  /** `--net=PATH`, with `--user=USERNS` when the netns is owned by another user namespace. */
  | { kind: "path"; netns: string; userns: string | null };

/** nsenter's flags (before `--`) for a target. */
export function nsenterArgs(t: NsenterTarget): string[] {
  if (t.kind === "pid") {
    return t.enterUser ? ["--preserve-credentials", "-U", "-n", "-t", String(t.pid)] : ["-n", "-t", String(t.pid)];
  }
  return t.userns !== null ? ["--preserve-credentials", `--user=${t.userns}`, `--net=${t.netns}`] : [`--net=${t.netns}`];
}

/**
 * unshare's flags for run mode: new user, network and mount namespaces,
 * our uid and gid mapped to root inside (so the helper may configure the
 * network, and an ordinary user gets a working root shell there). unshare
 * does not fork: the helper, and after execve the command, keep its PID.
 * With --mount, util-linux also makes the copied mounts private
 * (--propagation private is its default).
 */
export function unshareArgs(): string[] {
  return ["--user", "--map-root-user", "--net", "--mount"];
}

export interface AttachHelperArgs {
  ifname: string;
  offloads: number;
  sockFd?: number;
  /** Create the tap (with this MTU), and maybe configure it, rather than open an existing device. */
  create?: TapCreation;
}

/** `__ns-helper attach --ifname X --offloads N --sock-fd 3 [--create-mtu M --create-net NET/PREFIX [--configure [--create-mac MAC]]]` */
export function attachHelperArgs(a: AttachHelperArgs): string[] {
  const c = a.create;
  const create = c ? ["--create-mtu", String(c.mtu), "--create-net", guestNetV4Text(c.net), ...(c.configure ? ["--configure"] : []), ...(c.mac !== null ? ["--create-mac", formatMac(c.mac)] : [])] : [];
  return [HIDDEN_COMMAND, "attach", "--ifname", a.ifname, "--offloads", String(a.offloads), "--sock-fd", String(a.sockFd ?? HELPER_SOCK_FD), ...create];
}

export interface RunHelperArgs {
  ifname: string;
  mtu: number;
  offloads: number;
  resolvConf: string | null;
  /** Empty: the helper runs $SHELL, else /bin/sh. */
  command: readonly string[];
  sockFd?: number;
  stderrFd?: number;
  /** Signal the command gets when we die (PR_SET_PDEATHSIG); 0: none. */
  parentDeathSignal?: number;
}

/** `__ns-helper run --ifname tun0 --mtu 65520 … -- COMMAND ARGS…` */
export function runHelperArgs(a: RunHelperArgs): string[] {
  const out = [
    HIDDEN_COMMAND,
    "run",
    "--ifname",
    a.ifname,
    "--mtu",
    String(a.mtu),
    "--offloads",
    String(a.offloads),
    "--sock-fd",
    String(a.sockFd ?? HELPER_SOCK_FD),
    "--stderr-fd",
    String(a.stderrFd ?? HELPER_STDERR_FD),
    "--pdeathsig",
    String(a.parentDeathSignal ?? 0),
  ];
  if (a.resolvConf !== null) out.push("--resolv-conf", a.resolvConf);
  out.push("--", ...a.command);
  return out;
}

/** True when running as a `bun build --compile` binary (its modules live in /$bunfs). */
export function isCompiled(modulePath: string = import.meta.path): boolean {
  return modulePath.startsWith("/$bunfs/") || modulePath.startsWith("B:/~BUN/");
}

/**
 * How to start ourselves again: the compiled binary is process.execPath
 * itself (main.ts dispatches the hidden command); from source, execPath is
 * bun and we name the helper entry point next to this file.
 */
export function selfCommand(execPath: string = process.execPath, compiled: boolean = isCompiled()): string[] {
  return compiled ? [execPath] : [execPath, join(import.meta.dir, "helper-main.ts")];
}

/**
 * The command run mode executes: the given one, else $SHELL, else /bin/sh.
 */
export function defaultCommand(command: readonly string[], env: Record<string, string | undefined>): string[] {
  if (command.length > 0) return [...command];
  const shell = env.SHELL;
  return [shell !== undefined && shell !== "" ? shell : "/bin/sh"];
}

/**
 * PATH lookup like execvp: a name with a slash is used as is; otherwise the
 * first executable regular file in PATH. Returns the path, or the errno a
 * shell would report (ENOENT: not found -> 127; EACCES: found but not
 * executable -> 126).
 */
export function findExecutable(
  name: string,
  pathVar: string | undefined,
  probe: (path: string) => "exec" | "noexec" | "missing",
): { path: string } | { errno: number } {
  if (name === "") return { errno: 2 };
  if (name.includes("/")) {
    const r = probe(name);
    return r === "exec" ? { path: name } : { errno: r === "noexec" ? 13 : 2 };
  }
  let sawNoExec = false;
  for (const dir of (pathVar ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    const p = dir === "" ? `./${name}` : join(dir, name);
    const r = probe(p);
    if (r === "exec") return { path: p };
    if (r === "noexec") sawNoExec = true;
  }
  return { errno: sawNoExec ? 13 : 2 };
}
