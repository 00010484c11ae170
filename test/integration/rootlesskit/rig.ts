// The setting of the RootlessKit tests: an ordinary user with subordinate
// uid and gid ranges (as rootlesskit's newuidmap needs), /dev/net/tun
// opened to everyone while the file runs (restored afterwards, also when a
// test fails or the process exits), and a world-readable directory holding
// a copy of the binary and the `slirp4netns` symlink: the user may not be
// able to reach the checkout (a clone under /root, a 0700 temporary
// directory). The "host" is a HostNs, so every server listens only inside
// a namespace the test made.
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "../../support/stack.ts";
import { track, untrack } from "../../support/cleanup.ts";
import { asUser, exec, processesOf, setTunMode, userEnv, type TestUser } from "../../support/unpriv.ts";

/** The user the RootlessKit tests run as; it stays (creating it again is a no-op). */
export const RK_USER = "slirprk-test";
/** Its subordinate uids and gids: 65536 from here, in /etc/subuid and /etc/subgid. */
const SUBID_FIRST = 3_000_000;
const SUBID_COUNT = 65_536;

async function must(argv: string[]): Promise<string> {
  const r = await exec(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Fails (never skips) with what to install when a tool is missing. */
export function requireTools(tools: [command: string, pkg: string][]): void {
  if (process.geteuid?.() !== 0) throw new Error("the RootlessKit tests run as root: they create a user and open /dev/net/tun to it");
  const missing = tools.filter(([cmd]) => Bun.which(cmd, { PATH: userEnv().PATH }) === null);
  if (missing.length > 0) throw new Error(`missing ${missing.map(([c]) => c).join(", ")}: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(" ")}`);
}

/** The user, created with its subordinate ranges if missing (idempotent). */
export async function ensureRkUser(): Promise<TestUser> {
  if ((await exec(["getent", "passwd", RK_USER])).code !== 0) {
    await must(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", RK_USER]);
  }
  const ids = { uid: Number((await must(["id", "-u", RK_USER])).trim()), gid: Number((await must(["id", "-g", RK_USER])).trim()) };
  const range = `${SUBID_FIRST}-${SUBID_FIRST + SUBID_COUNT - 1}`;
  for (const [file, flag] of [["/etc/subuid", "--add-subuids"], ["/etc/subgid", "--add-subgids"]] as const) {
    const text = await Bun.file(file).text().catch(() => "");
    if (!text.split("\n").some((l) => l.startsWith(`${RK_USER}:`) || l.startsWith(`${ids.uid}:`))) await must(["usermod", flag, range, RK_USER]);
  }
  return { name: RK_USER, ...ids };
}

export interface UserDir {
  /** The directory (0755, root's): the binary copy and the symlink. */
  dir: string;
  /** The `slirp4netns` symlink to the copy. */
  s4n: string;
  /** A directory the user owns, for state directories and markers. */
  userDir: string;
}

/** The world-readable directory with the binary, and /dev/net/tun at 0666; both undone at teardown (the mode by setTunMode's own entry). */
export function prepare(user: TestUser): UserDir {
  const dir = mkdtempSync(join(tmpdir(), "slirp-rootlesskit-"));
  chmodSync(dir, 0o755);
  copyFileSync(BINARY, join(dir, "slirpnetstack"));
  chmodSync(join(dir, "slirpnetstack"), 0o755);
  symlinkSync("slirpnetstack", join(dir, "slirp4netns"));
  const userDir = join(dir, "user");
  mkdirSync(userDir, { mode: 0o700 });
  chownSync(userDir, user.uid, user.gid);
  const entry = {
    destroy: async () => {
      untrack(entry);
      // The user's processes go first: nothing may still use the files.
      for (const pid of await processesOf(user)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  track(entry);
  setTunMode(0o666);
  return { dir, s4n: join(dir, "slirp4netns"), userDir };
}

/** argv running `cmd` as the user with a clean environment (setpriv execs). */
export function userCommand(user: TestUser, cmd: string[]): string[] {
  return asUser(user, ["env", "-i", ...Object.entries(userEnv()).map(([k, v]) => `${k}=${v}`), ...cmd]);
}

/** Waits for `path` to hold something (up to `ms`), failing with `why()` if `exited` settles first. */
export async function waitForContent(path: string, ms: number, exited: Promise<unknown>, why: () => Promise<string>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const end = Date.now() + ms;
  while (!(await Bun.file(path).exists()) || Bun.file(path).size === 0) {
    if (gone) throw new Error(`exited before ${path} appeared: ${await why()}`);
    if (Date.now() > end) throw new Error(`${path} did not appear within ${ms} ms: ${await why()}`);
    await Bun.sleep(20);
  }
}
