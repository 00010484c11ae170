// slirp4netns mode's --userns-path, as an ordinary user from the initial
// user namespace (rig.ts): the namespace helper joins that user namespace,
// then the target network namespace, which is how RootlessKit's
// detach-netns mode calls slirp4netns (`--userns-path=/proc/CHILD/ns/user
// --netns-type=path PATH`, the netns not a process's). The user makes the
// namespaces with `unshare -Urn`; the stack runs in a HostNs whose lo
// carries 192.0.2.1 with an HTTP server.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { HostNs } from "../../support/netns.ts";
import { exec, processesOf, restoreTun, tunMode, type TestUser } from "../../support/unpriv.ts";
import { ensureRkUser, prepare, requireTools, userCommand, waitForContent, type UserDir } from "./rig.ts";

const HOST4 = "192.0.2.1";
const HTTP_PORT = 8000;
const payload = "y".repeat(100_000);

let user: TestUser;
let dirs: UserDir;
let host: HostNs;
let originalTunMode: number;

beforeAll(async () => {
  requireTools([["usermod", "passwd"], ["curl", "curl"], ["python3", "python3"]]);
  originalTunMode = tunMode();
  user = await ensureRkUser();
  dirs = prepare(user);
  await Bun.write(join(dirs.dir, "payload"), payload);
  host = await HostNs.create([`${HOST4}/32`]);
  host.spawn(["python3", "-m", "http.server", "--bind", HOST4, "--directory", dirs.dir, String(HTTP_PORT)]);
  for (let i = 0; i < 250 && (await host.exec(["curl", "-s", "-o", "/dev/null", `http://${HOST4}:${HTTP_PORT}/`])).code !== 0; i++) await Bun.sleep(20);
}, 30_000);

afterAll(async () => {
  await host?.destroy();
  restoreTun();
  expect(tunMode()).toBe(originalTunMode);
});

const started: Subprocess[] = [];
afterEach(async () => {
  for (const p of started.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
  expect(await processesOf(user)).toEqual([]);
});

/** A user + network namespace the user makes (`unshare -Urn`), bare: lo down, no tap. */
async function userNamespace(name: string): Promise<number> {
  const marker = join(dirs.userDir, `${name}.ns`);
  const p = Bun.spawn(userCommand(user, ["unshare", "-Urn", "sh", "-c", `echo up > ${marker}; exec sleep infinity`]), { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  started.push(p);
  await waitForContent(marker, 5000, p.exited, () => new Response(p.stderr).text());
  return p.pid;
}

/** Our slirp4netns in the HostNs as the user, ready file on fd 4. */
function slirp4netns(name: string, args: string[]): { proc: Subprocess<"ignore", "pipe", "pipe">; ready: string } {
  const ready = join(dirs.userDir, `${name}.ready`);
  const proc = Bun.spawn(host.enter(userCommand(user, ["sh", "-c", 'exec 4>"$0"; exec "$@"', ready, dirs.s4n, "-r", "4", ...args])), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  started.push(proc);
  return { proc, ready };
}

/** Runs `cmd` as the user in the namespaces of `pid` (its user namespace's root). */
function inside(pid: number, cmd: string[]) {
  return exec(userCommand(user, ["nsenter", "-U", "-n", "--preserve-credentials", "-t", String(pid), "--", ...cmd]));
}

describe("--userns-path as an ordinary user", () => {
  test("RootlessKit's detach-netns arguments: the user namespace, then the netns by path; -c configures tap0 and a host address downloads", async () => {
    const pid = await userNamespace("target");
    // A path that is not /proc/PID/ns/net, as RootlessKit's detached netns is.
    const netns = join(dirs.userDir, "netns");
    symlinkSync(`/proc/${pid}/ns/net`, netns);
    const s = slirp4netns("detach", ["--mtu", "65520", "-c", `--userns-path=/proc/${pid}/ns/user`, "--netns-type=path", netns, "tap0"]);
    await waitForContent(s.ready, 10_000, s.proc.exited, () => new Response(s.proc.stderr).text());
    expect((await inside(pid, ["ip", "-4", "-o", "addr", "show", "dev", "tap0"])).stdout).toContain("inet 10.0.2.100/24");
    const get = await inside(pid, ["curl", "-sS", "-m", "10", `http://${HOST4}:${HTTP_PORT}/payload`]);
    expect({ stderr: get.stderr, ok: get.stdout === payload }).toEqual({ stderr: "", ok: true });
  }, 30_000);

  test("the user namespace given is the one joined: another one cannot reach the target's netns, a missing one is named", async () => {
    const target = await userNamespace("owner");
    const other = await userNamespace("other");
    const wrong = slirp4netns("wrong", ["-c", `--userns-path=/proc/${other}/ns/user`, "--netns-type=path", `/proc/${target}/ns/net`, "tap0"]);
    expect(await wrong.proc.exited).toBe(253);
    expect((await new Response(wrong.proc.stderr).text()).split("\n")[1]).toBe(`[!] not allowed to join /proc/${target}/ns/net: it is not owned by a user namespace of yours (create it with unshare -Urn), or run as root`);
    const missing = slirp4netns("missing", ["-c", `--userns-path=${join(dirs.userDir, "nope")}`, String(target), "tap0"]);
    expect(await missing.proc.exited).toBe(253);
    expect((await new Response(missing.proc.stderr).text()).split("\n")[1]).toBe(`[!] ${join(dirs.userDir, "nope")} does not exist`);
    expect(await Bun.file(wrong.ready).text()).toBe("");
  }, 30_000);
});
