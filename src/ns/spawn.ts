// Starting the helper under nsenter/unshare and reading its reports.
import type { Subprocess } from "bun";
import { readFileSync, statSync } from "node:fs";
import { closeFd } from "../../ffi/sys.ts";
import { seqpacketPair, waitReadable, recvMessage } from "../../ffi/scm.ts";
import { libc } from "../../ffi/libc.ts";
import { userEnvironment } from "../runtime-env.ts";
import { decodeMessage, type HelperMessage } from "./protocol.ts";
import type { EnvFacts } from "./errors.ts";

function readSysctl(path: string): number | null {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** Snapshot of the facts the error messages need. */
export function envFacts(): EnvFacts {
  let tunMode: string | null = null;
  try {
    const st = statSync("/dev/net/tun");
    tunMode = `mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}, owner uid ${st.uid} gid ${st.gid}`;
  } catch {
    tunMode = null;
  }
  return {
    uid: libc.geteuid(),
    maxUserNamespaces: readSysctl("/proc/sys/user/max_user_namespaces"),
    unprivilegedUsernsClone: readSysctl("/proc/sys/kernel/unprivileged_userns_clone"),
    apparmorRestrictUserns: readSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
    tunMode,
  };
}

/**
 * The environment this process was started with, from /proc/self/environ.
 * Bun merges .env files of the working directory into process.env (from
 * source, and in compiled binaries unless built with
 * --no-compile-autoload-dotenv); a run-mode command must get the user's
 * environment, not that. Falls back to process.env.
 */
export function startupEnv(): Record<string, string> {
  return userEnvironment();
}

export function isRoot(): boolean {
  return libc.geteuid() === 0;
}

export interface SpawnedHelper {
  proc: Subprocess<"ignore" | "inherit", "ignore" | "inherit", "pipe">;
  /** Our end of the socketpair; the helper has the other as fd 3. */
  sock: number;
  /** Everything the helper (or nsenter/unshare) wrote to stderr before it closed the pipe. */
  stderr: Promise<string>;
}

export interface SpawnOptions {
  /** Descriptors for the helper's fd 4, 5, … */
  extraFds?: number[];
  stdin: "ignore" | "inherit";
  stdout: "ignore" | "inherit";
  env: Record<string, string | undefined>;
}

/**
 * Spawns argv with a fresh SOCK_SEQPACKET socketpair end as its fd 3 and a
 * pipe as its stderr. Bun.spawn throws (ENOENT, …) when argv[0] cannot be
 * started; the sockets are closed then.
 */
export function spawnHelper(argv: string[], o: SpawnOptions): SpawnedHelper {
  const [mine, theirs] = seqpacketPair();
  let proc: SpawnedHelper["proc"];
  try {
    proc = Bun.spawn(argv, {
      stdio: [o.stdin, o.stdout, "pipe", theirs, ...(o.extraFds ?? [])],
      env: o.env,
    }) as unknown as SpawnedHelper["proc"];
  } catch (e) {
    closeFd(mine);
    closeFd(theirs);
    throw e;
  }
  // Only the helper holds the other end now, so its death reads as EOF.
  closeFd(theirs);
  const stderr = new Response(proc.stderr).text().catch(() => "");
  return { proc, sock: mine, stderr };
}

export type Received =
  | { kind: "message"; msg: HelperMessage | null; fd: number | null }
  | { kind: "eof" }
  | { kind: "timeout" };

/**
 * The helper's next report, without blocking the event loop: the socket is
 * polled with zero timeout and we sleep briefly in between (1 ms rising to
 * 20 ms), which is only ever done while starting up.
 */
export async function nextMessage(sock: number, deadline: number): Promise<Received> {
  let delay = 1;
  for (;;) {
    if (waitReadable(sock, 0)) {
      const m = recvMessage(sock, 0);
      if (m === null) return { kind: "eof" };
      return { kind: "message", msg: decodeMessage(m.data), fd: m.fd };
    }
    const left = deadline - Date.now();
    if (left <= 0) return { kind: "timeout" };
    await Bun.sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, 20);
  }
}

/** Exit status like a shell's $?: the code, or 128 + the signal number. */
export function shellStatus(code: number | null, signal: string | number | null): number {
  if (code !== null) return code;
  const n = typeof signal === "number" ? signal : signal !== null ? (SIGNAL_NUMBERS[signal] ?? 0) : 0;
  return 128 + n;
}

const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8,
  SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22,
  SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29,
  SIGPWR: 30, SIGSYS: 31,
};

/** Waits for the process to end, killing it after `ms`. */
export async function reap(proc: Subprocess, ms: number): Promise<number> {
  const timer = setTimeout(() => proc.kill("SIGKILL"), ms);
  try {
    await proc.exited;
  } finally {
    clearTimeout(timer);
  }
  return shellStatus(proc.exitCode, proc.signalCode);
}

/** The last non-empty line of a text, for one-line summaries. */
export function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines[lines.length - 1] ?? "";
}
