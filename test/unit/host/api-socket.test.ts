// The API socket against replies recorded from slirp4netns 1.2.0
// (test/fixtures/slirp4netns-api: NN-name.request.json sent in order to one
// slirp4netns process, NN-name.reply.json its exact reply).
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_LIMITS, ApiState, startApiSocket, type ApiDeps, type HostFwd } from "../../../src/host/control/api-socket.ts";
import { apiRequest } from "../../support/api-client.ts";

const DIR = join(import.meta.dir, "../../fixtures/slirp4netns-api");

const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith(".request.json"))
  .sort()
  .map((f) => {
    const name = f.slice(0, -".request.json".length);
    return {
      name,
      request: new Uint8Array(readFileSync(join(DIR, f))),
      reply: readFileSync(join(DIR, `${name}.reply.json`), "latin1"),
    };
  });

/** Forwards that "listen" on a set of ports: a second add of a live proto/port fails, as a bind would. */
function fakeForwards(): ApiDeps & { live: Set<string>; added: HostFwd[] } {
  const live = new Set<string>();
  const added: HostFwd[] = [];
  return {
    live,
    added,
    defaultGuestAddr: "10.0.2.100",
    addForward(fwd) {
      const key = `${fwd.proto}:${fwd.hostPort}`;
      if (live.has(key)) return "bind: address already in use";
      live.add(key);
      added.push(fwd);
      return { stop: () => live.delete(key) };
    },
  };
}

describe("ApiState against slirp4netns's recorded replies", () => {
  test("every fixture but the oversized one, in the recorded order, byte for byte", () => {
    const deps = fakeForwards();
    const api = new ApiState(deps);
    expect(fixtures.length).toBeGreaterThan(15);
    for (const f of fixtures) {
      // Too large is decided by the reader, not the handler.
      if (f.name.endsWith("too-large")) continue;
      expect({ name: f.name, reply: api.handle(f.request) }).toEqual({ name: f.name, reply: f.reply });
    }
    expect([...deps.live]).toEqual(["udp:18081"]);
  });

  test("IPv6 host and guest addresses are accepted and listed normalised", () => {
    const deps = fakeForwards();
    const api = new ApiState(deps);
    const req = (s: string) => new TextEncoder().encode(s);
    expect(api.handle(req(`{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"::1","host_port":9000,"guest_addr":"fd00:0:0::100","guest_port":80}}`))).toBe(`{"return":{"id":1}}`);
    expect(api.handle(req(`{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"::","host_port":9001,"guest_addr":"10.0.2.100","guest_port":53}}`))).toBe(`{"return":{"id":2}}`);
    expect(api.handle(req(`{"execute":"list_hostfwd"}`))).toBe(
      `{"entries":[{"id":1,"proto":"tcp","host_addr":"::1","host_port":9000,"guest_addr":"fd00::100","guest_port":80},` +
        `{"id":2,"proto":"udp","host_addr":"::","host_port":9001,"guest_addr":"10.0.2.100","guest_port":53}]}`,
    );
    expect(deps.added.map((f) => f.guestAddr)).toEqual(["fd00::100", "10.0.2.100"]);
  });

  test("ports out of range and a missing proto are bad arguments", () => {
    const api = new ApiState(fakeForwards());
    const req = (s: string) => new TextEncoder().encode(s);
    expect(api.handle(req(`{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":65536,"guest_port":80}}`))).toBe(`{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_port"}}`);
    expect(api.handle(req(`{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":80,"guest_port":-1}}`))).toBe(`{"error":{"desc":"bad request: add_hostfwd: bad arguments.guest_port"}}`);
    expect(api.handle(req(`{"execute":"add_hostfwd","arguments":{"host_port":80,"guest_port":80}}`))).toBe(`{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}`);
  });

  test("list_flows: unknown without a flow table; with one, a bounded page", () => {
    const req = (s: string) => new TextEncoder().encode(s);
    expect(new ApiState(fakeForwards()).handle(req(`{"execute":"list_flows"}`))).toBe(`{"error":{"desc":"bad request: unknown execute"}}`);
    const pages: [number, number][] = [];
    const api = new ApiState({
      ...fakeForwards(),
      flowRows: (offset, limit) => {
        pages.push([offset, limit]);
        return [{ proto: "tcp", state: "established" }];
      },
    });
    expect(api.handle(req(`{"execute":"list_flows"}`))).toBe(`{"return":{"flows":[{"proto":"tcp","state":"established"}]}}`);
    api.handle(req(`{"execute":"list_flows","arguments":{"offset":5,"limit":1000000}}`));
    expect(pages).toEqual([
      [0, 1000],
      [5, 10000],
    ]);
  });
});

describe("startApiSocket", () => {
  test("serves the recorded session over a 0600 unix socket, too-large included; stop closes the forwards", async () => {
    const path = join(tmpdir(), `api-socket-test-${process.pid}.sock`);
    const deps = fakeForwards();
    const sock = startApiSocket(path, deps);
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      for (const f of fixtures) {
        expect({ name: f.name, reply: await apiRequest(path, f.request) }).toEqual({ name: f.name, reply: f.reply });
      }
    } finally {
      sock.stop();
    }
    expect(deps.live.size).toBe(0);
    expect(() => statSync(path)).toThrow();
  });

  test("a client that never shuts down still gets no more than the connection cap; others are served", async () => {
    const path = join(tmpdir(), `api-socket-cap-${process.pid}.sock`);
    const sock = startApiSocket(path, fakeForwards());
    const idle: { end(): void }[] = [];
    try {
      for (let i = 0; i < API_LIMITS.maxConnections; i++) {
        idle.push(await Bun.connect({ unix: path, socket: { data() {} } }));
      }
      // Over the cap: closed with no reply.
      expect(await apiRequest(path, new TextEncoder().encode(`{"execute":"list_hostfwd"}`))).toBe("");
      idle.pop()!.end();
      await Bun.sleep(50);
      expect(await apiRequest(path, new TextEncoder().encode(`{"execute":"list_hostfwd"}`))).toBe(`{"entries":[]}`);
    } finally {
      for (const s of idle) s.end();
      sock.stop();
    }
  });

  test("a client that does not shut down: a whole request is answered at once; a partial one after the read timeout, on what it sent; both closed", async () => {
    const path = join(tmpdir(), `api-socket-timeout-${process.pid}.sock`);
    const sock = startApiSocket(path, fakeForwards(), { ...API_LIMITS, readTimeoutMs: 1000 });
    const talk = async (request: string): Promise<{ reply: string; ms: number }> => {
      const t0 = performance.now();
      const chunks: Buffer[] = [];
      const { promise, resolve } = Promise.withResolvers<void>();
      await Bun.connect({
        unix: path,
        socket: {
          open(s) {
            s.write(request);
          },
          data(_s, d) {
            chunks.push(Buffer.from(d));
          },
          close() {
            resolve();
          },
        },
      });
      await promise;
      return { reply: Buffer.concat(chunks).toString(), ms: performance.now() - t0 };
    };
    try {
      const whole = await talk(`{"execute":"list_hostfwd"}`);
      expect(whole.reply).toBe(`{"entries":[]}`);
      expect(whole.ms).toBeLessThan(500);
      const partial = await talk(`{"execute":"list_hostfwd"`);
      expect(partial.reply).toBe(`{"error":{"desc":"bad request: cannot parse JSON"}}`);
      expect(partial.ms).toBeGreaterThanOrEqual(900);
      // Valid JSON that is not an object may still be the start of a longer request: wait.
      const number = await talk(`1`);
      expect(number.reply).toBe(`{"error":{"desc":"bad request: json_object() failed"}}`);
      expect(number.ms).toBeGreaterThanOrEqual(900);
      expect((await talk("")).reply).toBe(`{"error":{"desc":"bad request: cannot parse JSON"}}`);
    } finally {
      sock.stop();
    }
  });
});
