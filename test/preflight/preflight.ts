// `npm test`'s first step: the suite drives real tools in real namespaces,
// so before anything runs, check that every tool is there and say in one
// line what to install, instead of dozens of failures with exit code 127.
//
//   bun test/preflight/preflight.ts      exit 0, or one line and exit 1
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** Every command the tests run, and the Debian package that provides it. */
export const REQUIRED_TOOLS: ReadonlyArray<readonly [command: string, pkg: string]> = [
  ["ip", "iproute2"],
  ["ping", "iputils-ping"],
  ["tcpdump", "tcpdump"],
  ["python3", "python3"],
  ["unshare", "util-linux"],
  ["nsenter", "util-linux"],
  ["setpriv", "util-linux"],
  ["pgrep", "procps"],
  ["sysctl", "procps"],
  ["curl", "curl"],
  ["useradd", "passwd"],
  ["userdel", "passwd"],
  ["usermod", "passwd"],
  ["getent", "libc-bin"],
  ["rdisc6", "ndisc6"],
  ["dhclient", "isc-dhcp-client"],
  ["busybox", "busybox-static"],
  ["rootlesskit", "rootlesskit"],
  ["rootlessctl", "rootlesskit"],
  ["newuidmap", "uidmap"],
  ["strace", "strace"],
];

function onPath(command: string, path: string): boolean {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** What is missing, as one line (null: nothing). */
export function preflight(path: string, isRoot: boolean, hasTun: boolean): string | null {
  const problems: string[] = [];
  const missing = REQUIRED_TOOLS.filter(([cmd]) => !onPath(cmd, path));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
    problems.push(`missing ${missing.map(([cmd, pkg]) => `${cmd} (${pkg})`).join(", ")}: apt-get install ${pkgs.join(" ")}`);
  }
  if (!isRoot) problems.push("the suite creates namespaces and taps and runs as root");
  if (!hasTun) problems.push("/dev/net/tun is missing (modprobe tun)");
  return problems.length === 0 ? null : `npm test cannot run here: ${problems.join("; ")}`;
}

if (import.meta.main) {
  let hasTun = true;
  try {
    accessSync("/dev/net/tun", constants.F_OK);
  } catch {
    hasTun = false;
  }
  const line = preflight(process.env.PATH ?? "", process.geteuid?.() === 0, hasTun);
  if (line !== null) {
    process.stderr.write(`${line}\n`);
    process.exit(1);
  }
}
