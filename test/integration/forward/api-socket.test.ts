// -api-socket: -L style forwards added, listed and removed while running
// (slirp4netns's JSON API), IPv4 and IPv6, TCP and UDP; the guest sees the
// client's real address; a removed port stops answering; list_flows shows a
// live connection.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HOST_V4, HOST_V6, createForwardEnv, destroyForwardEnv, runStackToExit, startStack, stopStacks, type ForwardEnv } from "../../support/forward-env.ts";
import type { Server } from "../../support/net-agent.ts";
import { apiRequest } from "../../support/api-client.ts";

setDefaultTimeout(60_000);

let env: ForwardEnv;
let tcpEcho: Server;
let udpEcho: Server;

beforeAll(async () => {
  env = await createForwardEnv();
  tcpEcho = await env.g.tcpListen("::");
  udpEcho = await env.g.udpListen("::");
});
afterEach(stopStacks);
afterAll(() => destroyForwardEnv(env));

const add = (proto: string, hostAddr: string, hostPort: number, guestAddr: string, guestPort: number) => ({
  execute: "add_hostfwd",
  arguments: { proto, host_addr: hostAddr, host_port: hostPort, guest_addr: guestAddr, guest_port: guestPort },
});

describe("-api-socket", () => {
  test("add, list, use, list_flows and remove forwards at runtime", async () => {
    const path = join(tmpdir(), `api-socket-it-${process.pid}.sock`);
    const stack = await startStack(env, ["-api-socket", path]);
    await stack.stdout.waitFor(`[+] API socket ${path}`);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const q = tcpEcho.port;
    const u = udpEcho.port;

    expect(await apiRequest(path, add("tcp", "0.0.0.0", 21001, "10.0.2.100", q))).toBe(`{"return":{"id":1}}`);
    expect(await apiRequest(path, add("tcp", "::", 21002, "fd00::100", q))).toBe(`{"return":{"id":2}}`);
    expect(await apiRequest(path, add("udp", "0.0.0.0", 21003, "", u))).toBe(`{"return":{"id":3}}`);
    expect(await apiRequest(path, add("udp", HOST_V6, 21004, "fd00::100", u))).toBe(`{"return":{"id":4}}`);
    // The same port again: the listen fails, in slirp4netns's words.
    expect(await apiRequest(path, add("tcp", "0.0.0.0", 21001, "10.0.2.100", q))).toBe(`{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}`);
    expect(await apiRequest(path, { execute: "list_hostfwd" })).toBe(
      `{"entries":[` +
        `{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":21001,"guest_addr":"10.0.2.100","guest_port":${q}},` +
        `{"id":2,"proto":"tcp","host_addr":"::","host_port":21002,"guest_addr":"fd00::100","guest_port":${q}},` +
        `{"id":3,"proto":"udp","host_addr":"0.0.0.0","host_port":21003,"guest_addr":"10.0.2.100","guest_port":${u}},` +
        `{"id":4,"proto":"udp","host_addr":"${HOST_V6}","host_port":21004,"guest_addr":"fd00::100","guest_port":${u}}]}`,
    );

    // Each forward carries traffic, and the guest sees the client's own address.
    const tcpPeers = (await env.g.peers(tcpEcho.sid)).length;
    await env.h.tcpEcho({ host: HOST_V4, port: 21001, bind: HOST_V4, data: "tcp four" });
    await env.h.tcpEcho({ host: HOST_V6, port: 21002, bind: HOST_V6, data: "tcp six" });
    expect((await env.g.peers(tcpEcho.sid)).slice(tcpPeers).map(([ip]) => ip)).toEqual([HOST_V4, HOST_V6]);
    const udpPeers = (await env.g.peers(udpEcho.sid)).length;
    expect((await env.h.udpExchange({ host: HOST_V4, port: 21003, bind: HOST_V4, send: ["udp four"] })).texts).toEqual(["udp four"]);
    expect((await env.h.udpExchange({ host: HOST_V6, port: 21004, bind: HOST_V6, send: ["udp six"] })).texts).toEqual(["udp six"]);
    expect((await env.g.peers(udpEcho.sid)).slice(udpPeers).map(([ip]) => ip)).toEqual([HOST_V4, HOST_V6]);

    // A live connection shows in list_flows.
    const conn = await env.h.connect({ host: HOST_V4, port: 21001, bind: HOST_V4 });
    try {
      await conn.send("live");
      expect((await conn.recv(4, 5000)).text).toBe("live");
      const reply = JSON.parse(await apiRequest(path, { execute: "list_flows" })) as { return: { flows: Array<Record<string, unknown>> } };
      // The guest's end is the echo server, the other the client's address
      // (its port is the stack's own); the earlier ones are in TIME-WAIT.
      const live = reply.return.flows.filter((f) => f.proto === "tcp" && f.state === "ESTABLISHED");
      expect(live.map((f) => [f.guest, String(f.destination).split(":")[0]])).toEqual([[`10.0.2.100:${q}`, HOST_V4]]);
    } finally {
      await conn.close();
    }

    // Removed: the port stops answering; the others stay.
    expect(await apiRequest(path, { execute: "remove_hostfwd", arguments: { id: 1 } })).toBe(`{"return":{}}`);
    expect(await apiRequest(path, { execute: "remove_hostfwd", arguments: { id: 4 } })).toBe(`{"return":{}}`);
    expect(await apiRequest(path, { execute: "remove_hostfwd", arguments: { id: 4 } })).toBe(`{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}`);
    expect(await env.h.tryConnect({ host: HOST_V4, port: 21001, bind: HOST_V4 })).toBe("ECONNREFUSED");
    expect((await env.h.udpExchange({ host: HOST_V6, port: 21004, bind: HOST_V6, send: ["gone"], timeoutMs: 1000 })).texts).toEqual([]);
    await env.h.tcpEcho({ host: HOST_V6, port: 21002, bind: HOST_V6, data: "still here" });
    expect((await env.h.udpExchange({ host: HOST_V4, port: 21003, send: ["still here"] })).texts).toEqual(["still here"]);
    expect(await apiRequest(path, { execute: "list_hostfwd" })).toBe(
      `{"entries":[` +
        `{"id":2,"proto":"tcp","host_addr":"::","host_port":21002,"guest_addr":"fd00::100","guest_port":${q}},` +
        `{"id":3,"proto":"udp","host_addr":"0.0.0.0","host_port":21003,"guest_addr":"10.0.2.100","guest_port":${u}}]}`,
    );
  });

  test("a socket that cannot be listened on: one line, exit 247", async () => {
    const path = join(tmpdir(), `no-such-dir-${process.pid}`, "api.sock");
    const r = await runStackToExit(env, ["-api-socket", path]);
    expect(r.code).toBe(247);
    expect(r.stderr.filter((l) => l.includes("API socket"))).toEqual([expect.stringMatching(new RegExp(`^\\[!\\] Failed to listen on API socket ${path}: .+`))]);
  });
});
