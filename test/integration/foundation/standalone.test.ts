// Foundation: the built binary is self-contained. A copy of it alone in an
// empty directory runs with an empty environment (env -i), while the whole
// project tree (sources, node_modules) is hidden under an empty tmpfs in a
// private mount namespace.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withRig } from "../../support/rig.ts";
import { BINARY, StackProcess } from "../../support/stack.ts";
import { GuestNs, HostNs } from "../../support/netns.ts";

/** The project tree, hidden from the binary under test. */
const PROJECT = join(import.meta.dir, "..", "..", "..");
let dir = "";
let copy = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "slirp-standalone-"));
  copy = join(dir, "slirpnetstack");
  copyFileSync(BINARY, copy);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * argv that runs `./slirpnetstack ARGS` from `dir` with nothing else
 * visible; `newNetns` adds a private network namespace for runs that are
 * not already inside a HostNs.
 */
function isolated(args: string[], newNetns = false): string[] {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const script = `mount -t tmpfs -o size=1m tmpfs '${PROJECT}' && cd '${dir}' && exec env -i ./slirpnetstack ${quoted}`;
  return ["unshare", "-m", ...(newNetns ? ["-n"] : []), "--propagation", "private", "sh", "-c", script];
}

async function runIsolated(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(isolated(args, true), { env: {}, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

describe("standalone binary", () => {
  test("the copy is alone in its directory", () => {
    expect(readdirSync(dir)).toEqual(["slirpnetstack"]);
    expect(statSync(copy).mode & 0o111).not.toBe(0);
  });

  test("-version with env -i and the project tree hidden", async () => {
    const { code, out, err } = await runIsolated(["-version"]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    const lines = out.trimEnd().split("\n");
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(/^slirpnetstack version \S+$/);
    expect(lines[0]).not.toContain("DEV");
    expect(lines[1]).toMatch(/^build time .*UTC$/);
  });

  test("-h names the program as it was run", async () => {
    const { code, out, err } = await runIsolated(["-h"]);
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err.split("\n")[0]).toBe("Usage of ./slirpnetstack:");
  });

  test("the hiding works: the project's files are not visible inside", async () => {
    const probe = ["unshare", "-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs '${PROJECT}' && ls -A '${PROJECT}'`];
    const p = Bun.spawn(probe, { stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    expect(out.trim()).toBe("");
  });

  test("a ping through it works", async () => {
    const host = await HostNs.create();
    let guest: GuestNs | null = null;
    let stack: StackProcess | null = null;
    try {
      guest = await GuestNs.create();
      // StackProcess runs `BINARY ARGS` inside the host namespace; here the
      // "binary" is unshare, which execs sh, which execs env, which execs
      // the copy: the pid stays the stack's.
      const [bin, ...rest] = isolated(["-netns", guest.netnsPath]);
      stack = await StackProcess.start(rest, { host, binary: bin, env: {} });
      expect(stack.stderr.lines).toEqual([
        `[.] Joininig netns ${guest.netnsPath}`,
        "[.] Opening tun interface tun0",
        `[+] #${stack.pid} Slirpnetstack started`,
      ]);
      expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
      expect((await guest.exec(["ping", "-6", "-c1", "-W5", "fd00::2"])).code).toBe(0);
      expect((await guest.exec(["ping", "-c1", "-W5", "-s", "65000", "10.0.2.2"])).code).toBe(0);
      expect(await stack.stop()).toBe(0);
    } finally {
      await stack?.destroy();
      await guest?.destroy();
      await host.destroy();
    }
  });

  test("the reference rig is unaffected (binary in place still works)", async () => {
    await withRig({}, async ({ guest }) => {
      expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
    });
  });
});
