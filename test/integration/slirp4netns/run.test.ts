// slirp4netns mode running the network. Mostly called the way Podman calls
// slirp4netns: from inside the user namespace that owns the container's
// bare network namespace (this test runs as root and gets there with
// `nsenter -U --preserve-credentials`), with --configure, --ready-fd,
// --exit-fd and --api-socket, the tap created by us in the target
// namespace; once the way RootlessKit calls it (a PID target, from the
// initial user namespace). The stack runs in a HostNs whose lo carries
// 192.0.2.1, a host address the guest reaches by the slirp4netns policy
// (everything the host can reach).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { BINARY } from "../../support/stack.ts";
import { HostNs } from "../../support/netns.ts";
import { BareNs, closeExit, lineClient, lineServer, startSlirp4netns, untilOutput, waitForSlaac, waitReady, type Running } from "./s4n-rig.ts";
import { apiRequest } from "../../support/api-client.ts";

const HOST4 = "192.0.2.1";
const HTTP_PORT = 8000;
const FWD_PORT = 18080;
const LOOPBACK_PORT = 8001;
/** What the guests download from the host's server. */
const payload = "x".repeat(200_000);

const dir = mkdtempSync(join(tmpdir(), "slirp4netns-run-"));
const S4N = join(dir, "slirp4netns");
symlinkSync(BINARY, S4N);

let host: HostNs;
let server: Subprocess;

beforeAll(async () => {
  await Bun.write(join(dir, "payload"), payload);
  host = await HostNs.create([`${HOST4}/32`]);
  server = host.spawn(["python3", "-m", "http.server", "--bind", HOST4, "--directory", dir, String(HTTP_PORT)]);
  for (let i = 0; i < 200 && (await host.exec(["curl", "-s", "-o", "/dev/null", `http://${HOST4}:${HTTP_PORT}/`])).code !== 0; i++) await Bun.sleep(20);
}, 15_000);
afterAll(async () => {
  server.kill("SIGKILL");
  await host.destroy();
  rmSync(dir, { recursive: true, force: true });
});


/**
 * slirp4netns with fd 3 reading a FIFO (--exit-fd) and fd 4 writing a
 * file (--ready-fd). Podman's way (`podman`, its exact command line with
 * the sandbox and seccomp): inside the user namespace
 * that owns `guest`'s network namespace, the target a path. RootlessKit's
 * way (`rootlesskit`): from the parent's (here the initial) user
 * namespace, the target the PID of the child.
 */
function start(guest: BareNs, name: string, way: "podman" | "rootlesskit", hostLoopback = false): Running {
  const loopback = hostLoopback ? [] : ["--disable-host-loopback"];
  const args = (api: string) =>
    way === "podman"
      ? ["--api-socket", api, ...loopback, "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6", "-c", "-e", "3", "-r", "4", "--netns-type=path", `/proc/${guest.pid}/ns/net`, "tap0"]
      : ["--mtu", "65520", "-r", "4", "-e", "3", "--configure", ...loopback, "--api-socket", api, String(guest.pid), "tap0"];
  return startSlirp4netns({ host, dir, s4n: S4N, name, args, enterUserns: way === "podman" ? guest.pid : null });
}

describe("slirp4netns mode runs the network", () => {
  test("ready on fd 4; -c configures tap0; a host address downloads; the gateway is refused; add_hostfwd works; closing fd 3 exits 0 within a second", async () => {
    const guest = await BareNs.create();
    const r = start(guest, "podman", "podman");
    expect(await waitReady(r)).toBe("1");

    // --configure: 10.0.2.100/24 on tap0, MTU 65520, up; default route via 10.0.2.2 (IPv4 only, as slirp4netns).
    const addr = await guest.exec(["ip", "-4", "-o", "addr", "show", "dev", "tap0"]);
    expect(addr.stdout).toContain("inet 10.0.2.100/24");
    const link = await guest.exec(["ip", "-o", "link", "show", "dev", "tap0"]);
    expect(link.stdout).toContain("mtu 65520");
    expect(link.stdout).toContain(",UP");
    expect((await guest.exec(["ip", "route", "show", "default"])).stdout).toContain("default via 10.0.2.2 dev tap0");

    // A file from the host's server, through the stack.
    const get = await guest.exec(["curl", "-sS", "-m", "10", `http://${HOST4}:${HTTP_PORT}/payload`]);
    expect(get.stderr).toBe("");
    expect(get.stdout).toBe(payload);

    // --disable-host-loopback: the gateway's ports are refused at once.
    const t0 = performance.now();
    const gw = await guest.exec(["curl", "-sS", "-m", "5", "http://10.0.2.2:1/"]);
    expect(gw.code).toBe(7); // CURLE_COULDNT_CONNECT: refused, not timed out (28)
    expect(performance.now() - t0).toBeLessThan(2000);

    // add_hostfwd through the API socket: the host's 127.0.0.1:FWD_PORT reaches the guest's port 80.
    expect(await apiRequest(r.api, { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: FWD_PORT, guest_port: 80 } })).toBe('{"return":{"id":1}}');
    const guestServer = Bun.spawn(guest.enter(lineServer("10.0.2.100", 80, "hello from the guest")), { stdout: "ignore", stderr: "inherit" });
    try {
      expect((await untilOutput((c) => host.exec(c), lineClient("127.0.0.1", FWD_PORT))).stdout).toBe("hello from the guest\n");
    } finally {
      guestServer.kill("SIGKILL");
    }

    // --exit-fd: closing our end ends the process, status 0, within a second.
    const t1 = performance.now();
    closeExit(r);
    expect(await r.proc.exited).toBe(0);
    expect(performance.now() - t1).toBeLessThan(1000);
    await guest.destroy();
  }, 30_000);

  test("without --disable-host-loopback, 10.0.2.2:PORT reaches the host's 127.0.0.1:PORT and [fd00::2]:PORT its [::1]:PORT", async () => {
    const server = host.spawn(lineServer("::", LOOPBACK_PORT, "hello from the host loopback"));
    try {
      const guest = await BareNs.create();
      const r = start(guest, "loopback", "podman", true);
      expect(await waitReady(r)).toBe("1");
      await waitForSlaac(guest);
      expect(await untilOutput((c) => guest.exec(c), lineClient("10.0.2.2", LOOPBACK_PORT))).toEqual({ stdout: "hello from the host loopback\n", stderr: "" });
      expect(await untilOutput((c) => guest.exec(c), lineClient("fd00::2", LOOPBACK_PORT))).toEqual({ stdout: "hello from the host loopback\n", stderr: "" });
      closeExit(r);
      expect(await r.proc.exited).toBe(0);
      await guest.destroy();
    } finally {
      server.kill("SIGKILL");
    }
  }, 30_000);

  test("RootlessKit's way: a PID target from the initial user namespace; -c configures tap0 and a host address downloads", async () => {
    const guest = await BareNs.create();
    const r = start(guest, "rootlesskit", "rootlesskit");
    expect(await waitReady(r)).toBe("1");
    expect((await guest.exec(["ip", "-4", "-o", "addr", "show", "dev", "tap0"])).stdout).toContain("inet 10.0.2.100/24");
    const get = await guest.exec(["curl", "-sS", "-m", "10", `http://${HOST4}:${HTTP_PORT}/payload`]);
    expect({ stderr: get.stderr, ok: get.stdout === payload }).toEqual({ stderr: "", ok: true });
    closeExit(r);
    expect(await r.proc.exited).toBe(0);
    await guest.destroy();
  }, 30_000);
});
