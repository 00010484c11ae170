// Volume through forwards: 1 GiB each way through a -L TCP forward and
// through a -R TCP forward, checked with SHA-256 and byte counts, and 200
// concurrent forwarded connections (all open at once) each echoing its own
// bytes, through -L and through -R. Throughputs are printed.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createForwardEnv, destroyForwardEnv, listenPorts, startStack, stopStacks, type ForwardEnv } from "../../support/forward-env.ts";

setDefaultTimeout(120_000);

const GIB = 1 << 30;
const CONCURRENT = 200;

let env: ForwardEnv;
beforeAll(async () => {
  env = await createForwardEnv();
});
afterEach(stopStacks);
afterAll(() => destroyForwardEnv(env));

function report(what: string, bytes: number, secs: number): void {
  console.log(`${what}: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${secs.toFixed(2)} s = ${((bytes * 8) / secs / 1e9).toFixed(2)} Gbit/s`);
}

describe("1 GiB transfers with matching SHA-256", () => {
  test("-L: host -> guest (v4) and guest -> host (v6 client, v4 guest)", async () => {
    const sink = await env.g.tcpListen("10.0.2.100", 0, "sink");
    const source = await env.g.tcpListen("10.0.2.100", 0, "source");
    try {
      const stack = await startStack(env, ["-L", `tcp://127.0.0.1:0::${sink.port}`, "-L", `tcp://[::1]:0:10.0.2.100:${source.port}`]);
      const { ports } = await listenPorts(stack, 2);
      const up = await env.h.tcpUpload({ host: "127.0.0.1", port: ports[0]!, size: GIB, seed: 11 });
      expect(up.error).toBeUndefined();
      expect(up.answer).toBe(`${GIB} ${up.sha}`);
      report("-L upload (host -> guest)", GIB, up.secs);
      const down = await env.h.tcpDownload({ host: "::1", port: ports[1]!, size: GIB, seed: 12 });
      expect(down.error).toBeUndefined();
      expect(down.bytes).toBe(GIB);
      expect(down.sha).toBe(down.expected);
      report("-L download (guest -> host)", GIB, down.secs);
      await stack.stdout.waitFor("local-fwd done: l=");
      await stack.stdout.waitFor("local-fwd done: l=");
    } finally {
      await env.g.close(sink.sid);
      await env.g.close(source.sid);
    }
  });

  test("-R: guest -> host (v4) and host -> guest (v6 guest, v4 host)", async () => {
    const sink = await env.h.tcpListen("127.0.0.1", 0, "sink");
    const source = await env.h.tcpListen("127.0.0.1", 0, "source");
    try {
      const stack = await startStack(env, ["-R", `3001:127.0.0.1:${sink.port}`, "-R", `tcp://[fd00::2]:3002:127.0.0.1:${source.port}`]);
      const up = await env.g.tcpUpload({ host: "10.0.2.2", port: 3001, size: GIB, seed: 21 });
      expect(up.error).toBeUndefined();
      expect(up.answer).toBe(`${GIB} ${up.sha}`);
      report("-R upload (guest -> host)", GIB, up.secs);
      const down = await env.g.tcpDownload({ host: "fd00::2", port: 3002, size: GIB, seed: 22 });
      expect(down.error).toBeUndefined();
      expect(down.bytes).toBe(GIB);
      expect(down.sha).toBe(down.expected);
      report("-R download (host -> guest)", GIB, down.secs);
      await stack.stdout.waitFor("remote-fwd conn done: l=");
      await stack.stdout.waitFor("remote-fwd conn done: l=");
    } finally {
      await env.h.close(sink.sid);
      await env.h.close(source.sid);
    }
  });
});

describe(`${CONCURRENT} concurrent forwarded connections`, () => {
  test("-L: all open at once, each echoes its own 64 KiB", async () => {
    const echo = await env.g.tcpListen("10.0.2.100");
    try {
      const stack = await startStack(env, ["-L", `tcp://127.0.0.1:0::${echo.port}`]);
      const { ports } = await listenPorts(stack, 1);
      const t0 = performance.now();
      const r = await env.h.tcpMany({ host: "127.0.0.1", port: ports[0]!, n: CONCURRENT, size: 65536 });
      console.log(`-L ${CONCURRENT} concurrent echoes in ${(performance.now() - t0).toFixed(0)} ms`);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(CONCURRENT);
      expect((await env.g.peers(echo.sid)).length).toBe(CONCURRENT);
      // Every flow logged its conn and done line.
      for (let i = 0; i < CONCURRENT; i++) await stack.stdout.waitFor("local-fwd done: l=");
      expect(stack.stdout.lines.filter((l) => l.endsWith(" local-fwd conn")).length).toBe(CONCURRENT);
    } finally {
      await env.g.close(echo.sid);
    }
  });

  test("-R: all open at once, each echoes its own 64 KiB", async () => {
    const echo = await env.h.tcpListen("127.0.0.1");
    try {
      const stack = await startStack(env, ["-R", `3003:127.0.0.1:${echo.port}`]);
      const t0 = performance.now();
      const r = await env.g.tcpMany({ host: "10.0.2.2", port: 3003, n: CONCURRENT, size: 65536 });
      console.log(`-R ${CONCURRENT} concurrent echoes in ${(performance.now() - t0).toFixed(0)} ms`);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(CONCURRENT);
      expect((await env.h.peers(echo.sid)).length).toBe(CONCURRENT);
      for (let i = 0; i < CONCURRENT; i++) await stack.stdout.waitFor("remote-fwd conn done: l=");
    } finally {
      await env.h.close(echo.sid);
    }
  });
});
