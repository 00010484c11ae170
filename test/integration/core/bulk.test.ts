// Core: bulk TCP through the stack. A 1 GiB download and a 1 GiB upload,
// over IPv4 and IPv6, between curl in the guest and an HTTP server in the
// host namespace (-enable-host), each checked end to end by SHA-256. The
// data is a deterministic stream (host-servers.py gen), never stored.
import { afterAll, afterEach, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { PYTHON, SCRIPT, expectedHash, sq, urlHost } from "../../support/host-servers.ts";
import { HOST4, HOST6, LeakGuard, createCoreRig, destroyCoreRig, warmUp, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(60_000);

const GiB = 1 << 30;
/** curl's own limit; 1 GiB takes a few seconds when things work. */
const MAX_SECONDS = 60;

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
});

function report(what: string, bytes: number, ms: number): void {
  console.log(`${what}: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${ms.toFixed(0)} ms, ${((bytes / 2 ** 20) / (ms / 1000)).toFixed(0)} MiB/s`);
}

async function download(ip: string, size: number): Promise<void> {
  const seed = `download-${ip}`;
  const want = expectedHash(size, seed);
  const url = `http://${urlHost(ip)}:${rig.servers.ports.http}/download?size=${size}&seed=${seed}`;
  const t0 = performance.now();
  const r = await rig.guest.exec(
    ["bash", "-o", "pipefail", "-c", `curl -sS --fail --noproxy '*' --max-time ${MAX_SECONDS} ${sq(url)} | ${PYTHON} ${SCRIPT} sha256`],
    { timeoutMs: (MAX_SECONDS + 10) * 1000 },
  );
  const ms = performance.now() - t0;
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  const got = JSON.parse(r.stdout) as { bytes: number; sha256: string };
  expect(got).toEqual({ bytes: size, sha256: await want });
  report(`download ${ip}`, size, ms);
}

async function upload(ip: string, size: number): Promise<void> {
  const seed = `upload-${ip}`;
  const want = expectedHash(size, seed);
  const url = `http://${urlHost(ip)}:${rig.servers.ports.http}/upload`;
  const t0 = performance.now();
  // -T - reads stdin and sends it with chunked encoding, as a PUT.
  const r = await rig.guest.exec(
    ["bash", "-o", "pipefail", "-c", `${PYTHON} ${SCRIPT} gen ${size} ${sq(seed)} | curl -sS --fail --noproxy '*' --max-time ${MAX_SECONDS} -T - ${sq(url)}`],
    { timeoutMs: (MAX_SECONDS + 10) * 1000 },
  );
  const ms = performance.now() - t0;
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  const got = JSON.parse(r.stdout) as { bytes: number; sha256: string };
  expect(got).toEqual({ bytes: size, sha256: await want });
  report(`upload ${ip}`, size, ms);
}

describe("1 GiB through the stack, SHA-256 checked", () => {
  test("download over IPv4", async () => {
    await download(HOST4, GiB);
  });

  test("download over IPv6", async () => {
    await download(HOST6, GiB);
  });

  test("upload over IPv4", async () => {
    await upload(HOST4, GiB);
  });

  test("upload over IPv6", async () => {
    await upload(HOST6, GiB);
  });
});
