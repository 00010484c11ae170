// Run mode routes to the outside by default, but the cloud metadata
// service (169.254.169.254, on the host's link) and every other link-local
// address stay out of reach unless -allow names them: a sandboxed program
// must not read the VM's instance credentials. The same policy holds in
// attach mode with -enable-routing, where a guest that keeps trying is
// refused every time while it is served otherwise (the hostile-case checks,
// test/support/hostile-checks.ts).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { HostNs } from "../../support/netns.ts";
import { BINARY } from "../../support/stack.ts";
import { createWorld } from "../../support/world-ns.ts";
import { PY_STOP, backgroundAttack, connects, beginCase, drops, hostileChecks, whileAttacking } from "../../support/hostile-checks.ts";
import { PYTHON } from "../../support/host-servers.ts";
import { createCoreRig, destroyCoreRig, hostileTarget } from "./core-rig.ts";

setDefaultTimeout(60_000);

const METADATA = "169.254.169.254";
const PORT = 80;

// Accepts and answers "creds" to every connection, until killed.
const SERVER = `
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("${METADATA}", ${PORT}))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"creds")
    c.close()
`;

// Prints "creds" when it got them, else the errno name.
const CLIENT = `
import errno, socket
try:
    c = socket.create_connection(("${METADATA}", ${PORT}), timeout=5)
    print(c.recv(16).decode())
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
`;

let host: HostNs;
let world: HostNs;

// The metadata service sits behind the host's default route, as on a cloud
// VM: no local route covers it, so only -enable-routing (run mode's
// default) decides.
beforeAll(async () => {
  host = await HostNs.create();
  world = await createWorld(host);
  await world.run(["ip", "addr", "add", `${METADATA}/32`, "dev", "w1"]);
  const server = world.spawn(["python3", "-c", SERVER]);
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  expect(new TextDecoder().decode(value)).toContain("ready");
  reader.releaseLock();
});

afterAll(async () => {
  await world?.destroy();
  await host?.destroy();
});

async function runClient(flags: string[]): Promise<string> {
  const r = await host.exec([BINARY, ...flags, "--", "python3", "-c", CLIENT], { timeoutMs: 20_000 });
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

describe("metadata address from run mode", () => {
  test("refused at once by default", async () => {
    const t0 = performance.now();
    expect(await runClient([])).toBe("ECONNREFUSED");
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  test("reached when -allow names it", async () => {
    expect(await runClient(["-allow", METADATA])).toBe("creds");
  });
});

// Connects to the metadata address n times, and more until stdin closes;
// prints {"tried", "refused", "other"} (other: outcomes but ECONNREFUSED).
const PROBER = `${PY_STOP}
import errno, json, socket, sys
n = int(sys.argv[1])
tried, refused, other = 0, 0, {}
while tried < n or not stop_requested():
    if tried == 50:
        print("started", flush=True)
    tried += 1
    try:
        c = socket.create_connection(("${METADATA}", ${PORT}), timeout=5)
        other["connected"] = other.get("connected", 0) + 1
        c.close()
    except ConnectionRefusedError:
        refused += 1
    except OSError as e:
        k = errno.errorcode.get(e.errno, str(e))
        other[k] = other.get(k, 0) + 1
print(json.dumps({"tried": tried, "refused": refused, "other": other}))
`;

describe("metadata address from attach mode with -enable-routing", () => {
  test("a guest that keeps trying is refused every time and served otherwise", async () => {
    const rig = await createCoreRig({ world: true, args: ["-enable-host", "-enable-routing"] });
    try {
      await rig.world!.run(["ip", "addr", "add", `${METADATA}/32`, "dev", "w1"]);
      const server = rig.world!.spawn(["python3", "-c", SERVER]);
      const reader = server.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("ready");
      reader.releaseLock();
      const t = hostileTarget(rig);
      const before = await beginCase(t);
      const moved = [drops("tcp-policy-denied"), connects("denied")];
      const probe = backgroundAttack<{ tried: number; refused: number; other: Record<string, number> }>(rig.guest, [PYTHON, "-c", PROBER, "2000"]);
      const r = await whileAttacking(probe, () => hostileChecks(t, { phase: "during", since: before, moved }));
      expect(r).toEqual({ tried: r.tried, refused: r.tried, other: {} });
      expect(r.tried).toBeGreaterThanOrEqual(2000);
      await hostileChecks(t, { phase: "after", since: before, moved });
    } finally {
      await destroyCoreRig(rig);
    }
  });
});
