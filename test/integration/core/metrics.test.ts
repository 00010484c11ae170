// Core: the -m debug server (contract §14 and our additions): /health,
// /metrics in Prometheus text format, the pprof index that scripts probe,
// and the live flow table. The server listens on 127.0.0.1 inside the host
// namespace, so it is fetched with curl run there.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { PYTHON, SCRIPT } from "../../support/host-servers.ts";
import { LineReader } from "../../support/stack.ts";
import { GUEST4, HOST4, LeakGuard, createCoreRig, debugGet, destroyCoreRig, endpointIs, flowTable, warmUp, type CoreRig } from "./core-rig.ts";

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
});
