// The hidden-command dispatcher (src/ns/helper.ts) and its entry point.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { runHiddenCommand } from "../../../src/ns/helper.ts";

const ENTRY = join(import.meta.dir, "../../../src/ns/helper-main.ts");

test("ordinary command lines are not hidden commands", async () => {
  expect(await runHiddenCommand([])).toBe(false);
  expect(await runHiddenCommand(["-netns", "/proc/1/ns/net"])).toBe(false);
  expect(await runHiddenCommand(["--", "__ns-helper"])).toBe(false);
  expect(await runHiddenCommand(["__ns-helperx", "attach"])).toBe(false);
});

async function helper(args: string[]): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn([process.execPath, ENTRY, ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, stderr };
}

test("bad helper arguments exit 2 with one line", async () => {
  const r = await helper(["__ns-helper", "attach", "--offloads", "1"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe("slirpnetstack __ns-helper: Missing required argument: --ifname\n");
  const u = await helper(["__ns-helper", "frobnicate"]);
  expect(u.code).toBe(2);
  expect(u.stderr).toStartWith("slirpnetstack __ns-helper: Unknown command");
});

test("a socket descriptor that was not passed is EBADF", async () => {
  const r = await helper(["__ns-helper", "attach", "--ifname", "tun0", "--sock-fd", "77"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe("slirpnetstack __ns-helper: fcntl: EBADF\n");
});
