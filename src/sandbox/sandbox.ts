// -enable-sandbox (slirp4netns --enable-sandbox): once the stack is set
// up, the process sees a read-only tmpfs as its root, holding only /etc
// (read-only) and, when /etc/resolv.conf leads out of /etc, the directory
// of its real file; the main thread drops every capability but
// CAP_NET_BIND_SERVICE. docs/sandbox.md
// has the design; in short:
//
// Bun is multi-threaded from its first instruction, and unshare(CLONE_NEWNS)
// moves only the calling thread into the new mount namespace. So the whole
// process is re-executed, before anything is set up, under util-linux
// `unshare --mount` (preceded by `nsenter --user` into the user namespace
// that owns the target network namespace when we lack CAP_SYS_ADMIN, as
// slirp4netns joins the target's user namespace then): every thread Bun
// starts is then in a mount namespace of ours, and pivot_root(2) from the
// main thread moves the root of all of them.
import { readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { SysError, ENOENT } from "../../ffi/libc.ts";
import { bindMountReadOnly, chdir, detachMount, mkdir, mountTmpfs, pivotRoot, remountTmpfsReadOnly, rmdir } from "../../ffi/mount.ts";
import { CAP_NET_BIND_SERVICE, dropCapabilities, setNoNewPrivs } from "../../ffi/caps.ts";
import { closeFd, fdIsOpen, setCloseOnExec } from "../../ffi/sys.ts";
import { openOwnerUserns } from "../../ffi/nsfs.ts";
import { execve } from "../../ffi/exec.ts";
import { netnsPid } from "../ns/args.ts";

/**
 * Set by the process that re-executes itself for the sandbox, for the
 * process after it: "MNTNS USERNSFD", the mount namespace it left (the
 * new one must differ: pivot_root in a namespace shared with other
 * processes would move their root too) and the user namespace fd handed
 * to nsenter ("-" for none), which the new process closes.
 */
const SANDBOX_ENV = "SLIRPNETSTACK_SANDBOX";

/** Where the new root is built before pivot_root (inside our own mount namespace; slirp4netns uses the same place). */
const STAGING = "/tmp";
/** The tmpfs only holds directories and mount points. */
const TMPFS_SIZE = "64k";
const CAP_SYS_ADMIN = 21;

/** A step of the sandbox that failed: the call, its argument and errno, or what else went wrong. */
export class SandboxError extends Error {
  constructor(
    readonly step: string,
    readonly sys: SysError | null,
  ) {
    super(sys !== null ? `${step}: ${sys.message} (${sys.text})` : step);
    this.name = "SandboxError";
  }
}

/** Runs one step; its SysError becomes a SandboxError naming the step. */
function sysStep<T>(step: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof SysError) throw new SandboxError(step, e);
    throw e;
  }
}

/** Whether this thread has CAP_SYS_ADMIN in its user namespace (needed for unshare --mount and the mounts). */
function hasSysAdmin(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m !== null && (BigInt(`0x${m[1]}`) & (1n << BigInt(CAP_SYS_ADMIN))) !== 0n;
}

/** The tool's path in PATH, or a SandboxError naming it. */
function tool(name: "unshare" | "nsenter"): string {
  const path = Bun.which(name);
  if (path === null) throw new SandboxError(`${name} (util-linux) not found in PATH`, new SysError("exec", ENOENT, name));
  return path;
}

/**
 * The command that starts this program again: the compiled binary under
 * the name it was started by (slirp4netns mode depends on it, and unshare
 * gives its program's path as argv[0]) when that name leads to this very
 * file, else its real path; from source, bun and the script.
 */
function selfArgv(): string[] {
  const compiled = process.argv[1]?.startsWith("/$bunfs") ?? false;
  if (!compiled) return [process.execPath, ...process.argv.slice(1)];
  return [leadsHere(process.argv0) ? process.argv0 : process.execPath, ...process.argv.slice(2)];
}

/** Whether `name` (a path, or a command looked up in PATH as unshare will) is this binary; in slirp4netns mode it must be. */
function leadsHere(name: string): boolean {
  const path = name.includes("/") ? name : Bun.which(name);
  try {
    const a = statSync(path ?? "");
    const b = statSync(process.execPath);
    if (a.ino === b.ino && a.dev === b.dev) return true;
  } catch {
    // Not there: not this binary.
  }
  if (name.slice(name.lastIndexOf("/") + 1) === "slirp4netns") {
    throw new SandboxError(`cannot start this program again under the name ${name}: that name does not lead to ${process.execPath}`, null);
  }
  return false;
}

/**
 * The user namespace to enter before unshare --mount when we lack
 * CAP_SYS_ADMIN: the one that owns the target network namespace (as
 * slirp4netns does), as a path for nsenter --user, and the fd behind it if
 * one had to be opened. -fd has no target: a new user namespace of our own.
 */
function ownerUserns(netns: string): { path: string; fd: number | null } | null {
  if (netns === "") return null;
  const pid = netnsPid(netns);
  if (pid !== null) return { path: `/proc/${pid}/ns/user`, fd: null };
  const fd = sysStep(`cannot find the user namespace that owns ${netns}`, () => openOwnerUserns(netns));
  if (fd === null) throw new SandboxError(`the user namespace that owns ${netns} is not below ours`, null);
  return { path: `/proc/self/fd/${fd}`, fd };
}

/**
 * Before anything is set up: re-executes the whole process inside a new
 * mount namespace (see the top of this file), keeping `passedFds` (-fd,
 * -ready-fd, -exit-fd) open at their numbers and the PID (neither tool
 * forks). In the process after it, closes the user namespace fd and
 * returns. Throws SandboxError when the tools are missing or execve fails.
 */
export function reexecInSandboxNamespace(netns: string, passedFds: readonly number[]): void {
  const marker = process.env[SANDBOX_ENV];
  if (marker !== undefined) {
    const fd = marker.split(" ")[1];
    if (fd !== undefined && /^[0-9]+$/.test(fd) && fdIsOpen(Number(fd))) closeFd(Number(fd));
    return;
  }
  const mountNs = [tool("unshare"), "--mount", "--propagation", "private", "--"];
  let prefix = mountNs;
  let usernsFd: number | null = null;
  if (!hasSysAdmin()) {
    const owner = ownerUserns(netns);
    if (owner === null) {
      prefix = [mountNs[0]!, "--user", "--map-root-user", ...mountNs.slice(1)];
    } else {
      // --preserve-credentials: no setgroups (denied in a user namespace
      // made by `unshare -Ur`); our uid is that namespace's root.
      prefix = [tool("nsenter"), `--user=${owner.path}`, "--preserve-credentials", "--", ...mountNs];
      usernsFd = owner.fd;
    }
  }
  const argv = [...prefix, ...selfArgv()];
  const keep = [...passedFds.filter(fdIsOpen), ...(usernsFd !== null ? [usernsFd] : [])];
  const env = { ...process.env, [SANDBOX_ENV]: `${readlinkSync("/proc/self/ns/mnt")} ${usernsFd ?? "-"}` };
  for (const fd of keep) setCloseOnExec(fd, false);
  throw new SandboxError(`cannot start ${prefix[0]}`, execve(prefix[0]!, argv, Object.entries(env).map(([k, v]) => `${k}=${v}`)));
}

/**
 * After setup (device open, forwards listening, API socket bound): the
 * root becomes a read-only tmpfs holding /etc (read-only; resolv.conf,
 * hosts, nsswitch.conf for the DNS forwarder, DHCP, router advertisements
 * and the resolver of -R names, which read them again while running) and,
 * when /etc/resolv.conf leads out of /etc (systemd-resolved's
 * /run/systemd/resolve), the directory of the file it leads to, read-only,
 * so that a replaced resolv.conf is still seen; then no_new_privs and
 * every capability but CAP_NET_BIND_SERVICE dropped (slirp4netns keeps
 * that one so that forwards added at run time may use low ports), on the
 * main thread. Throws SandboxError naming the failed call, its path and
 * errno.
 */
export function enterSandbox(): void {
  const marker = process.env[SANDBOX_ENV];
  const left = marker?.split(" ")[0];
  if (left === undefined || readlinkSync("/proc/self/ns/mnt") === left) throw new SandboxError("not in a mount namespace of its own (the re-execution under unshare --mount did not happen)", null);
  let resolvDir: string | null = null;
  try {
    const real = realpathSync("/etc/resolv.conf");
    if (!real.startsWith("/etc/")) resolvDir = dirname(real);
  } catch {
    // No resolv.conf: the forwarder uses 127.0.0.1, and a file created later in /etc is still seen.
  }
  sysStep(`cannot mount a tmpfs on ${STAGING}`, () => mountTmpfs(STAGING, TMPFS_SIZE));
  sysStep(`cannot create ${STAGING}/etc`, () => mkdir(`${STAGING}/etc`, 0o755));
  sysStep(`cannot bind /etc read-only`, () => bindMountReadOnly("/etc", `${STAGING}/etc`));
  if (resolvDir !== null) {
    const dir = resolvDir;
    let path = STAGING;
    for (const part of dir.split("/").filter((p) => p !== "")) {
      path += `/${part}`;
      const at = path;
      sysStep(`cannot create ${at}`, () => mkdir(at, 0o755));
    }
    sysStep(`cannot bind ${dir} (where /etc/resolv.conf leads) read-only`, () => bindMountReadOnly(dir, `${STAGING}${dir}`));
  }
  sysStep(`cannot create ${STAGING}/old`, () => mkdir(`${STAGING}/old`, 0o755));
  sysStep(`cannot enter ${STAGING}`, () => chdir(STAGING));
  sysStep(`cannot pivot_root into the tmpfs on ${STAGING}`, () => pivotRoot(".", "old"));
  sysStep("cannot enter the new root", () => chdir("/"));
  sysStep("cannot detach the old root", () => detachMount("/old"));
  sysStep("cannot remove /old", () => rmdir("/old"));
  sysStep("cannot make the new root read-only", () => remountTmpfsReadOnly("/"));
  sysStep("cannot set no_new_privs", () => setNoNewPrivs());
  sysStep("cannot drop capabilities", () => dropCapabilities([CAP_NET_BIND_SERVICE]));
}
