// Run mode as a user or a supervisor sees it: invisible, like unshare or
// `pasta -q` (the terminal shows the command's own output and nothing of
// ours unless something goes wrong; -quiet=false brings the lifecycle and
// per-flow lines back), -interface names the device, and -exit-fd ends the
// command and then us.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { HostNs } from "../../support/netns.ts";
import { BINARY } from "../../support/stack.ts";

setDefaultTimeout(30_000);

let host: HostNs;
beforeAll(async () => {
  host = await HostNs.create();
});
afterAll(async () => {
  await host?.destroy();
});

describe("run mode output", () => {
  test("by default: only the command's output, and its status", async () => {
    const r = await host.exec([BINARY, "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
  });

  test("-quiet=false: the started line is back", async () => {
    const r = await host.exec([BINARY, "-quiet=false", "--", "true"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^\[\+\] #\d+ Slirpnetstack started\n$/);
  });

  test("errors still show: a command that does not exist", async () => {
    const r = await host.exec([BINARY, "--", "/nonexistent/cmd"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("/nonexistent/cmd");
  });
});

describe("run mode flags", () => {
  test("-interface names the guest's device", async () => {
    const r = await host.exec([BINARY, "-interface", "eth7", "--", "ip", "-o", "link", "show", "eth7"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^2: eth7: <.*UP.*> mtu 65520 /);
  });

  test("-exit-fd: closing it ends the command (SIGTERM) and then the stack, with the command's status", async () => {
    const script = `
import os, subprocess, sys, time
r, w = os.pipe()
p = subprocess.Popen([sys.argv[1], "-exit-fd", str(r), "--", "sleep", "30"], pass_fds=[r])
os.close(r)
time.sleep(1)
t = time.time()
os.close(w)
rc = p.wait(timeout=10)
print(rc, "fast" if time.time() - t < 3 else "slow")
`;
    const r = await host.exec(["python3", "-c", script, BINARY], { timeoutMs: 20_000 });
    expect(r.stdout.trim()).toBe("143 fast");
  });
});
