// Run mode is invisible, like unshare or `pasta -q`: the terminal shows the
// command's own output and nothing of ours unless something goes wrong;
// -quiet=false brings the lifecycle and per-flow lines back.
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
