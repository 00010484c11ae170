// The preflight names every missing tool with its Debian package, in one line.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REQUIRED_TOOLS, preflight } from "../preflight/preflight.ts";

describe("preflight", () => {
  test("everything present: nothing to say", () => {
    const dir = mkdtempSync(join(tmpdir(), "preflight-"));
    try {
      for (const [cmd] of REQUIRED_TOOLS) symlinkSync("/bin/true", join(dir, cmd));
      expect(preflight(dir, true, true)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("missing tools, not root, no tun: one line with the packages to install", () => {
    const dir = mkdtempSync(join(tmpdir(), "preflight-"));
    try {
      for (const [cmd] of REQUIRED_TOOLS) if (cmd !== "ping" && cmd !== "tcpdump" && cmd !== "nsenter") symlinkSync("/bin/true", join(dir, cmd));
      const line = preflight(dir, false, false)!;
      expect(line.split("\n")).toHaveLength(1);
      expect(line).toBe(
        "npm test cannot run here: missing ping (iputils-ping), tcpdump (tcpdump), nsenter (util-linux): apt-get install iputils-ping tcpdump util-linux; " +
          "the suite creates namespaces and taps and runs as root; /dev/net/tun is missing (modprobe tun)",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
