// Core: the -m debug server: /health, /metrics in Prometheus text format,
// the pprof index that scripts probe, the live flow table in pages, the
// guarded heap snapshot, and the unix socket's mode. The server listens on
// 127.0.0.1 inside the host namespace, so it is fetched with curl run there.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FLOWS_PAGE, FLOWS_PAGE_MAX, HEAP_MAX_BYTES, MetricsServer, type FlowSource } from "../../../src/host/control/metrics.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { PYTHON, SCRIPT } from "../../support/host-servers.ts";
import { GuestNs } from "../../support/netns.ts";
import { LineReader, StackProcess } from "../../support/stack.ts";
import { GUEST4, HOST4, LeakGuard, createCoreRig, debugGet, destroyCoreRig, endpointIs, flowTable, warmUp, type CoreRig, type FlowRow } from "./core-rig.ts";

setDefaultTimeout(60_000);

let rig: CoreRig;

beforeAll(async () => {
  rig = await createCoreRig({ args: ["-enable-host"] });
  await warmUp(rig);
});

afterAll(async () => {
  if (rig) await destroyCoreRig(rig);
});

/** Status line, headers and body of one request (no redirects followed). */
async function fetchRaw(path: string, extra: string[] = []): Promise<{ status: number; headers: string; body: string }> {
  const r = await debugGet(rig, path, ["-i", ...extra]);
  expect(r.code).toBe(0);
  // With -L there may be several responses; the last one counts.
  const parts = r.stdout.split(/\r\n\r\n/);
  let i = 0;
  while (i + 1 < parts.length && /^HTTP\/1\.1 3\d\d /.test(parts[i]!) && extra.includes("-L")) i++;
  const headers = parts[i]!;
  const body = parts.slice(i + 1).join("\r\n\r\n");
  return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(headers)![1]), headers, body };
}

describe("-m debug server", () => {
  test("/health: 200 ok", async () => {
    const r = await fetchRaw("/health");
    expect(r.status).toBe(200);
    expect(r.body).toBe("ok");
  });

  test("/metrics: Prometheus text that counts the traffic so far", async () => {
    const r = await fetchRaw("/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.toLowerCase()).toContain("content-type: text/plain; version=0.0.4");
    const lines = r.body.trimEnd().split("\n");
    const declared = new Map<string, string>();
    const values = new Map<string, number>();
    for (const l of lines) {
      let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(l);
      if (m) {
        if (m[1] === "TYPE") {
          expect(["counter", "gauge", "histogram", "summary", "untyped"]).toContain(m[3]!);
          declared.set(m[2]!, m[3]!);
        }
        continue;
      }
      m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/.exec(l);
      expect({ line: l, ok: m !== null }).toEqual({ line: l, ok: true });
      expect(declared.has(m![1]!)).toBe(true);
      values.set(m![1]! + (m![2] ?? ""), Number(m![3]));
    }
    expect(values.get('slirpnetstack_frames_total{direction="rx"}')).toBeGreaterThan(0);
    expect(values.get('slirpnetstack_frames_total{direction="tx"}')).toBeGreaterThan(0);
    expect(values.get('slirpnetstack_bytes_total{direction="rx"}')).toBeGreaterThan(0);
    // warmUp made two connections.
    expect(values.get('slirpnetstack_connects_total{outcome="ok"}')).toBeGreaterThanOrEqual(2);
    expect(declared.get("slirpnetstack_flows")).toBe("gauge");
  });

  test("/debug/pprof redirects to /debug/pprof/, whose first 300 bytes hold the profiles heading", async () => {
    const redirect = await fetchRaw("/debug/pprof");
    expect(redirect.status).toBe(301);
    expect(redirect.headers).toMatch(/\r\nlocation: \/debug\/pprof\/(\r\n|$)/i);
    // As test_metric does: follow the redirect, look at the first 300 bytes.
    const page = await fetchRaw("/debug/pprof", ["-L"]);
    expect(page.status).toBe(200);
    expect(Buffer.from(page.body).subarray(0, 300).toString()).toContain("Types of profiles available:");
  });

  test("anything else: 404 page not found", async () => {
    const r = await fetchRaw("/nope");
    expect(r.status).toBe(404);
    expect(r.body).toBe("404 page not found\n");
  });

  test("/debug/pprof/flows shows a held connection, and forgets it once closed", async () => {
    const leaks = await LeakGuard.take(rig);
    const p = rig.guest.spawn([PYTHON, SCRIPT, "client", "hold", HOST4, String(rig.servers.ports.echo)], { stdin: "pipe" });
    const out = new LineReader(p.stdout);
    const port = (JSON.parse(await out.waitFor('"port"')) as { port: number }).port;
    const rows = await flowTable(rig);
    expect(rows).toContainEqual(
      expect.objectContaining({ proto: "tcp", state: "ESTABLISHED", guest: `${GUEST4}:${port}`, destination: `${HOST4}:${rig.servers.ports.echo}` }),
    );
    expect(rows.filter((f) => endpointIs(f.guest, GUEST4, port)).length).toBe(1);
    const m = await fetchRaw("/metrics");
    expect(m.body).toContain('slirpnetstack_flows{proto="tcp",state="ESTABLISHED"} 1');
    p.stdin!.end();
    await p.exited;
    await leaks.check();
  });

  test("/debug/pprof/flows comes in pages (?offset=&limit=) that add up to the whole table", async () => {
    const held = [];
    for (let i = 0; i < 5; i++) {
      const p = rig.guest.spawn([PYTHON, SCRIPT, "client", "hold", HOST4, String(rig.servers.ports.echo)], { stdin: "pipe" });
      await new LineReader(p.stdout).waitFor('"port"');
      held.push(p);
    }
    try {
      const key = (f: FlowRow) => `${f.proto} ${f.state} ${f.guest} ${f.destination}`;
      const whole = await fetchRaw("/debug/pprof/flows");
      expect(whole.status).toBe(200);
      const all = (JSON.parse(whole.body) as FlowRow[]).map(key);
      expect(all.length).toBeGreaterThanOrEqual(5);
      expect(whole.headers).toMatch(new RegExp(`\r\nx-total-count: ${all.length}(\r\n|$)`, "i"));
      expect(whole.headers).not.toMatch(/\r\nlink:/i);
      // Follow the Link header from the first page of two.
      const paged: string[] = [];
      let next: string | null = "/debug/pprof/flows?limit=2";
      let pages = 0;
      while (next !== null) {
        const r = await fetchRaw(next);
        expect(r.status).toBe(200);
        expect(r.headers).toMatch(new RegExp(`\r\nx-total-count: ${all.length}(\r\n|$)`, "i"));
        const rows = JSON.parse(r.body) as FlowRow[];
        expect(rows.length).toBeLessThanOrEqual(2);
        paged.push(...rows.map(key));
        next = /\r\nlink: <([^>]+)>; rel="next"/i.exec(r.headers)?.[1] ?? null;
        pages++;
      }
      expect(pages).toBe(Math.ceil(all.length / 2));
      expect(paged).toEqual(all);
      // Past the end: an empty page.
      const past = await fetchRaw(`/debug/pprof/flows?offset=${all.length}&limit=2`);
      expect(JSON.parse(past.body)).toEqual([]);
    } finally {
      for (const p of held) p.stdin!.end();
      await Promise.all(held.map((p) => p.exited));
    }
  });

  test("/debug/pprof/flows: a malformed offset or limit, or a limit over the maximum, is a 400", async () => {
    for (const q of ["limit=0", `limit=${FLOWS_PAGE_MAX + 1}`, "limit=abc", "offset=-1", "offset=1.5", "limit=1e3"]) {
      const r = await fetchRaw(`/debug/pprof/flows?${q}`);
      expect({ q, status: r.status }).toEqual({ q, status: 400 });
    }
    expect((await fetchRaw(`/debug/pprof/flows?limit=${FLOWS_PAGE_MAX}`)).status).toBe(200);
  });

  test("/debug/pprof/heap: only with ?stall=1, and one snapshot for a burst of requests", async () => {
    const plain = await fetchRaw("/debug/pprof/heap");
    expect(plain.status).toBe(400);
    expect(plain.body).toContain("?stall=1");
    // Three at once: each snapshot stops every flow, so only one is taken.
    const burst = await Promise.all([0, 1, 2].map(() => fetchRaw("/debug/pprof/heap?stall=1")));
    expect(burst.map((r) => r.status).sort()).toEqual([200, 429, 429]);
    const ok = burst.find((r) => r.status === 200)!;
    expect(Object.keys(JSON.parse(ok.body) as object)).toEqual(expect.arrayContaining(["snapshot", "nodes", "edges", "strings"]));
    for (const r of burst.filter((b) => b.status === 429)) expect(r.headers).toMatch(/\r\nretry-after: \d+(\r\n|$)/i);
    // And still refused a moment later.
    expect((await fetchRaw("/debug/pprof/heap?stall=1")).status).toBe(429);
  });

  test("-m unix://PATH: the socket is created 0600 whatever the umask", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slirpnetstack-m-"));
    const sock = join(dir, "debug.sock");
    const guest = await GuestNs.create();
    let stack: StackProcess | null = null;
    try {
      // The stack inherits the umask; 0 would make the socket 0777.
      const umask = process.umask(0);
      try {
        stack = StackProcess.spawn(["-netns", guest.netnsPath, "-m", `unix://${sock}`], { host: rig.host });
      } finally {
        process.umask(umask);
      }
      await stack.stderr.waitFor("Slirpnetstack started", 15_000);
      expect((statSync(sock).mode & 0o777).toString(8)).toBe("600");
      const health = await rig.host.exec(["curl", "-sS", "--max-time", "10", "--unix-socket", sock, "http://x/health"]);
      expect(health).toEqual({ code: 0, stdout: "ok", stderr: "" });
    } finally {
      await stack?.destroy();
      await guest.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("-m debug server in this process", () => {
  // Thousands of live flows, or a heap over the snapshot bound, cost a real
  // stack seconds and file descriptors; paging and the bound are the
  // server's, so they are checked here, on a table of synthetic rows and
  // this process's heap.
  const rows = Array.from({ length: 2 * FLOWS_PAGE + 500 }, (_, i) => ({ proto: "udp", n: i }));
  const source: FlowSource = {
    flowCount: rows.length,
    flowRows: (offset, limit) => rows.slice(offset, offset + limit),
    flowCounts: () => [],
  };
  const server = new MetricsServer(new Stats(), source);
  let base = "";

  beforeAll(() => {
    base = `http://${server.start({ network: "tcp", address: "127.0.0.1:0", ip: "127.0.0.1", port: 0 })}`;
  });

  afterAll(() => server.stop());

  test(`pages of ${FLOWS_PAGE} by default, linked to the next, add up to the whole table`, async () => {
    const seen: unknown[] = [];
    const sizes: number[] = [];
    let next: string | null = "/debug/pprof/flows";
    while (next !== null) {
      const r: Response = await fetch(base + next);
      expect(r.status).toBe(200);
      expect(r.headers.get("x-total-count")).toBe(String(rows.length));
      const page = (await r.json()) as unknown[];
      sizes.push(page.length);
      seen.push(...page);
      next = /^<([^>]+)>; rel="next"$/.exec(r.headers.get("link") ?? "")?.[1] ?? null;
    }
    expect(sizes).toEqual([FLOWS_PAGE, FLOWS_PAGE, 500]);
    expect(seen).toEqual(rows);
  });

  test("/debug/pprof/heap?stall=1 is refused (503) while the heap is over the bound", async () => {
    const ballast: Array<{ i: number; s: string }> = [];
    while (process.memoryUsage().heapUsed <= HEAP_MAX_BYTES && ballast.length < 10_000_000) {
      for (let i = 0; i < 100_000; i++) ballast.push({ i, s: `row ${i}` });
    }
    expect(process.memoryUsage().heapUsed).toBeGreaterThan(HEAP_MAX_BYTES);
    const r = await fetch(`${base}/debug/pprof/heap?stall=1`);
    expect(r.status).toBe(503);
    expect(await r.text()).toContain("MiB");
    expect(ballast.length).toBeGreaterThan(0);
  });
});
