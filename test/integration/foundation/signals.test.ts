// Foundation: signals and the parent process (docs/compatibility.md,
// startup steps 10, 18 and 19, and Version, signals and supervision):
// SIGINT/SIGTERM give a prompt clean exit 0 with the "closing" line, the
// parent gets one SIGWINCH when the stack is ready, and -exit-with-parent
// turns the parent's death into a clean exit.
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { track } from "../../support/cleanup.ts";
import { GuestNs, HostNs } from "../../support/netns.ts";
import { cpuNs, processAlive, waitUntil, withRig } from "../../support/rig.ts";
import { BINARY, LineReader, type StackProcess } from "../../support/stack.ts";

const PARENT_PY = join(import.meta.dir, "..", "..", "support", "parent.py");

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function stopTimed(stack: StackProcess, send: () => void): Promise<{ code: number; ms: number }> {
  const t0 = performance.now();
  send();
  const code = await stack.exitCode(5000);
  return { code, ms: performance.now() - t0 };
}

describe("SIGINT / SIGTERM", () => {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    test(`${sig}: closing line, exit 0, promptly`, async () => {
      await withRig({}, async ({ guest, stack }) => {
        expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
        const { code, ms } = await stopTimed(stack, () => stack.proc.kill(sig));
        expect(code).toBe(0);
        expect(ms).toBeLessThan(1000);
        expect(stack.stderr.lines.at(-1)).toBe(`[-] #${stack.pid} Slirpnetstack closing`);
        expect(stack.stderr.lines.filter((l) => l.includes("closing")).length).toBe(1);
      });
    });
  }

  test("SIGINT immediately followed by SIGTERM (the upstream suite's teardown): exit 0", async () => {
    for (let round = 0; round < 3; round++) {
      await withRig({}, async ({ stack }) => {
        const { code, ms } = await stopTimed(stack, () => {
          stack.proc.kill("SIGINT");
          stack.proc.kill("SIGTERM");
        });
        expect(code).toBe(0);
        expect(ms).toBeLessThan(1000);
        expect(stack.stderr.lines.filter((l) => l.includes("Slirpnetstack closing")).length).toBe(1);
      });
    }
  });

  test("SIGTERM while the guest floods the stack: still a prompt exit 0", async () => {
    await withRig({}, async ({ guest, stack }) => {
      const flood = guest.spawn(["ping", "-f", "-s", "1000", "10.0.2.2"]);
      // Let the flood get going: wait until the stack has used some CPU.
      const cpu0 = cpuNs(stack.pid);
      await waitUntil("the flood to load the stack", () => cpuNs(stack.pid) - cpu0 > 100e6, 10_000, 10);
      const { code, ms } = await stopTimed(stack, () => stack.proc.kill("SIGTERM"));
      flood.kill("SIGKILL");
      expect(code).toBe(0);
      expect(ms).toBeLessThan(1000);
    });
  });
});

/** Runs parent.py (in the host namespace) with the stack as its child's command. */
function spawnParent(mode: "winch" | "orphan", host: HostNs, args: string[]) {
  const proc = Bun.spawn(["python3", PARENT_PY, mode, "--", ...host.enter([BINARY, ...args])], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const destroy = async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  };
  track({ destroy });
  cleanups.push(destroy);
  return { proc, stdout: new LineReader(proc.stdout), stderr: new LineReader(proc.stderr) };
}

async function namespaces(): Promise<{ host: HostNs; guest: GuestNs }> {
  const host = await HostNs.create();
  cleanups.push(() => host.destroy());
  const guest = await GuestNs.create();
  cleanups.push(() => guest.destroy());
  return { host, guest };
}

describe("parent process", () => {
  test("the parent receives exactly one SIGWINCH once the stack has started", async () => {
    const { host, guest } = await namespaces();
    const p = spawnParent("winch", host, ["-netns", guest.netnsPath]);
    const pid = Number((await p.stdout.waitFor(/^CHILD \d+$/)).split(" ")[1]);
    cleanups.push(async () => void (processAlive(pid) && process.kill(pid, "SIGKILL")));
    await p.stderr.waitFor(`[+] #${pid} Slirpnetstack started`);
    await p.stdout.waitFor("WINCH");
    // The stack is ready when the parent hears about it.
    expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
    process.kill(pid, "SIGINT");
    await p.stdout.waitFor("EXIT 0");
    expect(await p.stdout.waitFor(/^WINCHES /)).toBe("WINCHES 1");
    expect(await p.proc.exited).toBe(0);
  });

  test("-exit-with-parent: the parent's death makes the stack close cleanly", async () => {
    const { host, guest } = await namespaces();
    const p = spawnParent("orphan", host, ["-netns", guest.netnsPath, "-exit-with-parent"]);
    const pid = Number((await p.stdout.waitFor(/^CHILD \d+$/)).split(" ")[1]);
    cleanups.push(async () => void (processAlive(pid) && process.kill(pid, "SIGKILL")));
    await p.stderr.waitFor(`[+] #${pid} Slirpnetstack started`);
    p.proc.stdin.write("kill\n");
    p.proc.stdin.flush();
    const after = Number((await p.stdout.waitFor(/^AFTER \d+$/)).split(" ")[1]);
    console.log(`-exit-with-parent: stack exited ${after} ms after its parent was killed`);
    expect(await p.stdout.waitFor(/^(EXIT|SIGNAL|TIMEOUT)/)).toBe("EXIT 0");
    await p.stderr.waitFor(`[-] #${pid} Slirpnetstack closing`);
    expect(after).toBeLessThan(1000);
  });

  test("without -exit-with-parent the stack outlives its parent", async () => {
    const { host, guest } = await namespaces();
    const p = spawnParent("orphan", host, ["-netns", guest.netnsPath]);
    const pid = Number((await p.stdout.waitFor(/^CHILD \d+$/)).split(" ")[1]);
    cleanups.push(async () => void (processAlive(pid) && process.kill(pid, "SIGKILL")));
    await p.stderr.waitFor(`[+] #${pid} Slirpnetstack started`);
    p.proc.stdin.write("kill\n");
    p.proc.stdin.flush();
    // parent.py gives it 5 s, then reports TIMEOUT and kills it. Check it
    // still works while orphaned, then stop it ourselves.
    await p.stdout.waitFor("KILLED");
    expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
    expect(processAlive(pid)).toBe(true);
    process.kill(pid, "SIGTERM");
    expect(await p.stdout.waitFor(/^(EXIT|SIGNAL|TIMEOUT)/)).toBe("EXIT 0");
  });
});
