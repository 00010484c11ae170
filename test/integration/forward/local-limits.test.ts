// -L under a flood of local clients, against the built binary:
//
// - 30000 loopback clients on one -L port whose guest drops the SYNs (its
//   replies to 10.0.2.2 are blackholed, so every connection toward the
//   guest sits in SYN-SENT for a minute). Before the caps, each held a
//   host fd and a guest-side port until the port search threw in the SIGIO
//   handler and ended the process. Now -max-local-clients (default 4096)
//   holds that many and resets the rest at once, the process survives,
//   and a fresh 8 MiB download through another -L (IPv6, not blackholed)
//   and a UDP echo still work. (Running out of guest-side ports needs more
//   fds than a process may have here; test/unit/host/fault.test.ts covers
//   that.)
// - slowloris on -L tcppp: clients beyond -max-local-clients are reset at
//   once, clients that never send their PROXY header are reset at
//   -proxy-header-timeout, and a client that sends one is served.
// Both make the hostile-case checks (test/support/hostile-checks.ts) while
// the clients are held and after they are gone: the guest's own download
// from a host server and UDP echo go through -enable-host.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HOST_V4, createForwardEnv, destroyForwardEnv, listenPorts, startStack, stopStacks, type ForwardEnv } from "../../support/forward-env.ts";
import { HostServers } from "../../support/host-servers.ts";
import { PY_STOP, backgroundAttack, beginCase, hostileChecks, limitHits, whileAttacking, type HostileTarget } from "../../support/hostile-checks.ts";
import { processAlive, waitUntil } from "../../support/rig.ts";
import type { StackProcess } from "../../support/stack.ts";

setDefaultTimeout(180_000);

const CLIENTS = 30_000;
/** -max-local-clients' default. */
const MAX_CLIENTS = 4096;

let env: ForwardEnv;
let servers: HostServers;
let dir: string;
beforeAll(async () => {
  env = await createForwardEnv();
  servers = await HostServers.start(env.host);
  dir = mkdtempSync(join(tmpdir(), "slirp-local-limits-"));
  // 30000 clients of one address and port need more than 28232 ephemeral ports.
  await env.host.run(["sysctl", "-w", "net.ipv4.ip_local_port_range=1024 65000"]);
});
afterEach(stopStacks);
afterAll(async () => {
  await servers?.destroy();
  await destroyForwardEnv(env);
  rmSync(dir, { recursive: true, force: true });
});

/** /metrics of a stack started with -m unix://`sock`, as name{labels} -> value. */
async function metrics(sock: string): Promise<Map<string, number>> {
  const text = await (await fetch("http://localhost/metrics", { unix: sock })).text();
  const out = new Map<string, number>();
  for (const l of text.split("\n")) {
    const m = /^(\S+) (\S+)$/.exec(l);
    if (m !== null) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

// Non-blocking clients; each one the stack resets is counted and closed.
// Prints one JSON line once `want` resets were seen or the file `report`
// exists (or `wait` seconds passed), then holds the rest open for `hold`
// seconds.
const CLIENTS_PY = `
import json, os, resource, select, socket, sys, time
host, port, n, want, wait, hold, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ep = select.epoll()
socks = {}
resets = []
t0 = time.time()
def poll(timeout):
    for fd, ev in ep.poll(timeout):
        s = socks.get(fd)
        if s is None:
            continue
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                if s.recv(1, socket.MSG_PEEK) != b"":
                    continue
            except BlockingIOError:
                continue
            except OSError as e:
                err = e.errno
        resets.append((err, round(time.time() - t0, 3)))
        ep.unregister(fd)
        del socks[fd]
        s.close()
for i in range(n):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((host, port))
    socks[s.fileno()] = s
    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    if i % 500 == 499:
        poll(0)
end = time.time() + wait
while len(resets) < want and time.time() < end and not (report and os.path.exists(report)):
    poll(0.1)
poll(0.2)
print(json.dumps({"resets": len(resets), "errnos": sorted(set(e for e, _ in resets)), "times": [t for _, t in resets], "open": len(socks), "secs": round(time.time() - t0, 2)}), flush=True)
end = time.time() + hold
while time.time() < end:
    poll(0.1)
`;

interface Flood {
  result: Promise<{ resets: number; errnos: number[]; times: number[]; open: number; secs: number }>;
  kill(): void;
}

function clients(host: string, port: number, n: number, want: number, waitS: number, holdS: number, report = ""): Flood {
  const p = Bun.spawn(env.host.enter(["python3", "-c", CLIENTS_PY, host, String(port), String(n), String(want), String(waitS), String(holdS), report]), {
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = p.stdout.getReader();
  const result = (async () => {
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`clients exited before reporting: ${text}`);
      text += new TextDecoder().decode(value);
      const nl = text.indexOf("\n");
      if (nl >= 0) return JSON.parse(text.slice(0, nl));
    }
  })();
  return { result, kill: () => p.kill("SIGKILL") };
}

function target(stack: StackProcess, sock: string): HostileTarget {
  return {
    host: env.host,
    guest: env.guest,
    servers,
    serverAddr: HOST_V4,
    pid: stack.pid,
    metrics: async () => (await fetch("http://localhost/metrics", { unix: sock })).text(),
  };
}

// Slowloris that does not give up: keeps n connections open that never
// send a byte, opening a new one for each the stack resets, until stdin
// closes; prints {"resets": N}.
const SLOWLORIS_PY = `${PY_STOP}
import json, select, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ep = select.epoll()
socks = {}
resets = 0
def open_one():
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    socks[s.fileno()] = s
    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
for _ in range(n):
    open_one()
print("started", flush=True)
while not stop_requested():
    for fd, ev in ep.poll(0.1):
        s = socks.pop(fd)
        ep.unregister(fd)
        s.close()
        resets += 1
        open_one()
print(json.dumps({"resets": resets}))
`;

async function alive(stack: StackProcess): Promise<void> {
  expect(processAlive(stack.pid)).toBe(true);
}

describe("-L under a flood of local clients", () => {
  test(`${CLIENTS} loopback clients, the guest dropping SYNs: the clients beyond -max-local-clients are reset at once, the process survives, other forwards work`, async () => {
    const source = await env.g.tcpListen("::", 0, "source");
    const echo = await env.g.udpListen("::");
    // Nothing the guest sends to 10.0.2.2 leaves it: its SYN-ACKs and RSTs vanish.
    await env.guest.run(["ip", "route", "add", "blackhole", "10.0.2.2/32"]);
    const sock = join(dir, "m1.sock");
    const floods: Flood[] = [];
    try {
      const stack = await startStack(env, [
        "-m", `unix://${sock}`,
        "-enable-host",
        "-L", "tcp://127.0.0.1:0:10.0.2.100:9",
        "-L", `tcp://[::1]:0:[fd00::100]:${source.port}`,
        "-L", `udp://[::1]:0:[fd00::100]:${echo.port}`,
      ]);
      const { ports } = await listenPorts(stack, 3);
      const t = target(stack, sock);
      const before = await beginCase(t);
      // Two processes: one may not hold 30000 fds here.
      const want = CLIENTS - MAX_CLIENTS;
      const half = CLIENTS / 2;
      const report = join(dir, "report");
      // Generous waits: alone this takes ~5 s, but one full-suite run on a
      // loaded machine needed more than 40 s.
      for (let i = 0; i < 2; i++) floods.push(clients("127.0.0.1", ports[0]!, half, half, 110, 30, report));
      const hits = async () => (await metrics(sock)).get('slirpnetstack_limit_hits_total{limit="local-fwd-clients"}') ?? 0;
      await waitUntil("the clients beyond the cap reset", async () => (await hits()) >= want, 100_000, 200);
      await Bun.write(report, "");
      const rs = await Promise.all(floods.map((f) => f.result));
      // MAX_CLIENTS connections sit in SYN-SENT (the guest's SYN retries
      // take a minute); the clients beyond them were reset at once.
      expect(rs[0]!.resets + rs[1]!.resets).toBe(want);
      expect([...new Set([...rs[0]!.errnos, ...rs[1]!.errnos])]).toEqual([104]);
      await alive(stack);
      const m = await metrics(sock);
      expect(m.get('slirpnetstack_limit_hits_total{limit="local-fwd-clients"}')).toBe(want);
      expect([...m.keys()].some((k) => k.startsWith("slirpnetstack_handler_faults_total"))).toBe(false);
      // With the flood still held: a fresh download and a UDP echo.
      const size = 8 << 20;
      const down = await env.h.tcpDownload({ host: "::1", port: ports[1]!, size, seed: 5, timeoutMs: 20_000 });
      expect(down.error).toBeUndefined();
      expect(down.bytes).toBe(size);
      expect(down.sha).toBe(down.expected);
      const u = await env.h.udpExchange({ host: "::1", port: ports[2]!, send: ["ping"] });
      expect(u.texts).toEqual(["ping"]);
      await hostileChecks(t, { phase: "during", since: before, moved: [limitHits("local-fwd-clients")] });
      for (const f of floods) f.kill();
      await hostileChecks(t, { phase: "after", since: before, moved: [limitHits("local-fwd-clients")] });
    } finally {
      for (const f of floods) f.kill();
      await env.guest.run(["ip", "route", "del", "blackhole", "10.0.2.2/32"]);
      await env.g.close(source.sid);
      await env.g.close(echo.sid);
    }
  });

  test("slowloris on -L tcppp: beyond -max-local-clients reset at once, no PROXY header reset at -proxy-header-timeout, a header is served", async () => {
    const echo = await env.g.tcpListen("::");
    const sock = join(dir, "m2.sock");
    let flood: Flood | null = null;
    try {
      const stack = await startStack(env, [
        "-m", `unix://${sock}`,
        "-enable-host",
        "-max-local-clients", "20",
        "-proxy-header-timeout", "3s",
        "-L", `tcppp://127.0.0.1:0:[fd00::100]:${echo.port}`,
      ]);
      const { ports } = await listenPorts(stack, 1);
      const t = target(stack, sock);
      const before = await beginCase(t);
      flood = clients("127.0.0.1", ports[0]!, 30, 30, 20, 0);
      const r = await flood.result;
      expect(r.resets).toBe(30);
      expect(r.errnos).toEqual([104]);
      const times = [...r.times].sort((a, b) => a - b);
      // Ten beyond the cap at once, twenty once their 3 s are up.
      expect(times.filter((x) => x < 2).length).toBe(10);
      expect(times.filter((x) => x >= 2.9 && x < 15).length).toBe(20);
      const m = await metrics(sock);
      expect(m.get('slirpnetstack_limit_hits_total{limit="local-fwd-clients"}')).toBe(10);
      expect(m.get('slirpnetstack_limit_hits_total{limit="local-fwd-proxy-header"}')).toBe(20);
      await stack.stdout.waitFor("local-fwd PP error: no PROXY header in 3000 ms");
      // Slowloris that reopens what is reset: the guest is served meanwhile.
      const moved = [limitHits("local-fwd-clients"), limitHits("local-fwd-proxy-header")];
      const loris = backgroundAttack<{ resets: number }>(env.host, ["python3", "-c", SLOWLORIS_PY, "127.0.0.1", String(ports[0]), "40"]);
      const lr = await whileAttacking(loris, () => hostileChecks(t, { phase: "during", since: m, moved }));
      expect(lr.resets).toBeGreaterThan(0);
      await hostileChecks(t, { phase: "after", since: before, moved });
      // The slots are free again once the held ones time out: a client with a header is served.
      const header = `PROXY TCP4 192.0.2.7 127.0.0.1 4000 ${ports[0]}\r\n`;
      await waitUntil("the held slowloris clients timed out", async () => {
        const ex = await env.h.tcpExchange({ host: "127.0.0.1", port: ports[0]!, send: [`${header}hello`], expect: 5 });
        return ex.error === undefined && ex.text === "hello";
      }, 20_000, 500);
      await alive(stack);
    } finally {
      flood?.kill();
      await env.g.close(echo.sid);
    }
  });
});
