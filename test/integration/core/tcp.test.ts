// Core: TCP flow semantics through the stack, guest -> host server
// (-enable-host), IPv4 and IPv6: many concurrent connections, half-close
// both ways, resets both ways, and no leaked descriptors or flows.
import { afterAll, afterEach, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { expectedHash, guestClient } from "../../support/host-servers.ts";
import { GUEST4, GUEST6, HOST4, HOST6, LeakGuard, createCoreRig, destroyCoreRig, goHostPort, re, warmUp, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(60_000);

let rig: CoreRig;
let leaks: LeakGuard;

beforeAll(async () => {
  rig = await createCoreRig({ args: ["-enable-host"] });
  await warmUp(rig);
  leaks = await LeakGuard.take(rig);
});

afterAll(async () => {
  if (rig) await destroyCoreRig(rig);
});

afterEach(async () => {
  await leaks.check();
}, 30_000);

interface ShutWr {
  bytes: number;
  sha256: string;
  error: string | null;
  sent_sha256: string;
}

interface AfterFin {
  greeting: string;
  sent: number;
  sha256: string;
  error: string | null;
}

const FAMILIES = [
  { name: "IPv4", ip: HOST4, guest: GUEST4 },
  { name: "IPv6", ip: HOST6, guest: GUEST6 },
] as const;

describe.each(FAMILIES)("TCP over $name", ({ ip, guest }) => {
  test("200 concurrent connections, each echoing its own 64 KiB", async () => {
    const accepts0 = rig.servers.acceptCount("echo");
    const r = await guestClient<{ ok: number; failed: number; examples: string[]; ms: number }>(
      rig.guest,
      "concurrent",
      [ip, rig.servers.ports.echo, 200, 65536],
      90_000,
    );
    console.log(`200 concurrent echo connections over ${ip}: ${r.ms.toFixed(0)} ms`);
    expect(r).toMatchObject({ ok: 200, failed: 0, examples: [] });
    expect(rig.servers.acceptCount("echo") - accepts0).toBe(200);
  });

  test("half-close by the guest: it shuts its write side and still reads the whole 8 MiB reply", async () => {
    const want = 8 << 20;
    const r = await guestClient<ShutWr>(rig.guest, "shutwr", [ip, rig.servers.ports.reply, 1 << 20, want]);
    expect(r).toMatchObject({ bytes: want, sha256: await expectedHash(want, "reply"), error: null });
    // The server got all the guest sent before the FIN, and then EOF.
    const ev = await rig.servers.waitEvent("reply closed", (e) => e.svc === "reply" && e.event === "closed" && e.sha256 === r.sent_sha256);
    expect(ev).toMatchObject({ bytes: 1 << 20, error: null });
  });

  test("half-close by the guest, slow server: all 5 MiB sent before the FIN reach a server that half-closes before reading", async () => {
    // The guest's data and FIN are queued in the stack when the server's
    // FIN comes: the connection ends (LAST-ACK -> CLOSED) with data still
    // waiting for the host socket, and that data must still be written.
    const size = 5 << 20;
    const from = rig.servers.events.length;
    const r = await guestClient<ShutWr>(rig.guest, "shutwr", [ip, rig.servers.ports.lateclose, size, 0]);
    expect(r).toMatchObject({ bytes: 4, error: null });
    const ev = await rig.servers.waitEvent("lateclose closed", (e) => e.svc === "lateclose" && e.event === "closed", 10_000, from);
    expect({ bytes: ev.bytes, sha256: ev.sha256, error: ev.error }).toEqual({ bytes: size, sha256: r.sent_sha256, error: null });
  });

  test("half-close by the host: after the server's FIN the guest still sends 8 MiB and the server gets it all", async () => {
    const size = 8 << 20;
    const from = rig.servers.events.length;
    const r = await guestClient<AfterFin>(rig.guest, "afterfin", [ip, rig.servers.ports.halfclose, size]);
    expect(r).toMatchObject({ greeting: "hello\n", sent: size, error: null });
    expect(r.sha256).toBe(await expectedHash(size, "afterfin"));
    const ev = await rig.servers.waitEvent("halfclose closed", (e) => e.svc === "halfclose" && e.event === "closed", 10_000, from);
    expect({ bytes: ev.bytes, sha256: ev.sha256, error: ev.error }).toEqual({ bytes: size, sha256: r.sha256, error: null });
  });

  test("half-close by the host, slow server: the guest's 32 MiB after the server's FIN all arrive", async () => {
    // The guest's FIN reaches the stack (FIN-WAIT-2 -> TIME-WAIT) while
    // its last bytes still wait for the slowly read host socket.
    const size = 32 << 20;
    const from = rig.servers.events.length;
    const r = await guestClient<AfterFin>(rig.guest, "afterfin", [ip, rig.servers.ports["halfclose-slow"], size]);
    expect(r).toMatchObject({ greeting: "hello\n", sent: size, error: null });
    const ev = await rig.servers.waitEvent("halfclose-slow closed", (e) => e.svc === "halfclose-slow" && e.event === "closed", 10_000, from);
    expect({ bytes: ev.bytes, sha256: ev.sha256, error: ev.error }).toEqual({ bytes: size, sha256: r.sha256, error: null });
  });

  test("a host RST becomes a guest RST: the guest's recv fails with ECONNRESET", async () => {
    const r = await guestClient<{ error: string | null; eof?: boolean; ms: number }>(rig.guest, "rstrecv", [ip, rig.servers.ports.rst]);
    expect(r).toMatchObject({ error: "ECONNRESET" });
    expect(r.ms).toBeLessThan(1000);
  });

  test("a guest RST becomes a host RST: the server's recv fails with ECONNRESET", async () => {
    const from = rig.servers.events.length;
    await guestClient(rig.guest, "rstsend", [ip, rig.servers.ports.watch]);
    const ev = await rig.servers.waitEvent("watch closed", (e) => e.svc === "watch" && e.event === "closed", 10_000, from);
    // The data before the reset arrived; then a reset, not an orderly EOF.
    expect(ev).toMatchObject({ bytes: 10, error: "ECONNRESET" });
  });

  test("log lines: Routing conn new, then done with the l= summary", async () => {
    const r = await guestClient<{ ok: number }>(rig.guest, "connectmany", [ip, rig.servers.ports.echo, 1]);
    expect(r.ok).toBe(1);
    const dst = re(goHostPort(ip, rig.servers.ports.echo));
    const g = re(goHostPort(guest, "")) + "\\d+";
    const h = re(goHostPort(ip, "")) + "\\d+";
    const newLine = await rig.stack.stdout.waitFor(new RegExp(`^\\[\\+\\] tcp://${g}/${h}-${dst} Routing conn new$`));
    const port = /tcp:\/\/\S+?:(\d+)\//.exec(newLine)![1];
    const gp = re(goHostPort(guest, port!));
    // The guest sent its FIN first: l=[EOF]/0 r=EOF/0.
    await rig.stack.stdout.waitFor(new RegExp(`^\\[-\\] tcp://${gp}/${h}-${dst} Routing conn done: l=\\[EOF\\]/0 r=EOF/0$`));
  });

  test("log lines: the host's FIN first gives done: l=EOF/0 r=[EOF]/0", async () => {
    // Error summary: both copy loops ended with EOF, the remote one first.
    const r = await guestClient<AfterFin>(rig.guest, "afterfin", [ip, rig.servers.ports.halfclose, 0]);
    expect(r).toMatchObject({ greeting: "hello\n", error: null });
    const dst = re(goHostPort(ip, rig.servers.ports.halfclose));
    const line = await rig.stack.stdout.waitFor(new RegExp(`-${dst} Routing conn done: `));
    expect(line).toMatch(new RegExp(`^\\[-\\] tcp://${re(goHostPort(guest, ""))}\\d+/${re(goHostPort(ip, ""))}\\d+-${dst} Routing conn done: l=EOF/0 r=\\[EOF\\]/0$`));
  });
});

describe("descriptors", () => {
  test("a batch of 300 connections leaves the stack's fd count where it was", async () => {
    const before = await rig.stack.fdCount();
    const a = guestClient<{ ok: number }>(rig.guest, "connectmany", [HOST4, rig.servers.ports.echo, 150]);
    const b = guestClient<{ ok: number }>(rig.guest, "connectmany", [HOST6, rig.servers.ports.echo, 150]);
    expect((await a).ok).toBe(150);
    expect((await b).ok).toBe(150);
    const { fds } = await leaks.check();
    console.log(`fds: baseline ${leaks.baselineFds}, before batch ${before}, after ${fds}`);
    expect(fds).toBeLessThanOrEqual(before);
  });
});
