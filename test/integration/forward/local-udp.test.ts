// -L udp, udprpc and udpspp (docs/compatibility.md: Local forwards, udprpc,
// UDP flows, SPP for udpspp): host clients reach a UDP echo server in the
// guest, for IPv4, IPv6 and crossed families; message boundaries are kept;
// the source the guest sees follows "Client address seen by the guest";
// udprpc closes each flow after its first reply (conn, done, conn,
// done); udpspp strips the 38-byte header toward the guest and puts the
// flow's first header in front of every reply.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  HOST_V4,
  HOST_V6,
  createForwardEnv,
  destroyForwardEnv,
  hp,
  listenPorts,
  payload,
  re,
  startStack,
  stopStacks,
  type ForwardEnv,
} from "../../support/forward-env.ts";
import type { Server } from "../../support/net-agent.ts";
import type { StackProcess } from "../../support/stack.ts";

setDefaultTimeout(60_000);

let env: ForwardEnv;
/** A dual-stack UDP echo server in the guest ([::]:Q). */
let echo: Server;

beforeAll(async () => {
  env = await createForwardEnv();
  echo = await env.g.udpListen("::");
});
afterEach(stopStacks);
afterAll(() => destroyForwardEnv(env));

async function guestPeers(sid = echo.sid): Promise<Array<[string, number]>> {
  return env.g.peers(sid);
}

const sorted = (xs: string[]) => [...xs].sort();

describe("-L udp: families and the source address the guest sees", () => {
  //   A 127.0.0.1 -> 10.0.2.100   B [::1] -> [fd00::100] (v6 default target)
  //   C [::1] (v6 default bind) -> [fd00::100]   D [::] (from 0.0.0.0) -> [fd00::100]   E [::] -> 10.0.2.100
  const specs = (q: number) => [
    "-L", `udp://:0::${q}`,
    "-L", `udp://[::1]:0::${q}`,
    "-L", `udp://:0:[fd00::100]:${q}`,
    "-L", `udp://0.0.0.0:0:[fd00::100]:${q}`,
    "-L", `udp://[::]:0:10.0.2.100:${q}`,
  ];
  const LISTENERS = ["A", "B", "C", "D", "E"] as const;
  type L = (typeof LISTENERS)[number];
  const target: Record<L, string> = { A: "10.0.2.100", B: "fd00::100", C: "fd00::100", D: "fd00::100", E: "10.0.2.100" };

  async function start(): Promise<{ stack: StackProcess; port: Record<L, number>; lines: string[] }> {
    const stack = await startStack(env, specs(echo.port));
    const { ports, lines } = await listenPorts(stack, LISTENERS.length);
    const port = Object.fromEntries(LISTENERS.map((l, i) => [l, ports[i]!])) as Record<L, number>;
    return { stack, port, lines };
  }

  test("listen lines: v4 and v6 defaults, [::] for 0.0.0.0 and ::", async () => {
    const { port, lines } = await start();
    expect(lines).toEqual([
      `[+] local-fwd Local listen udp://127.0.0.1:${port.A}`,
      `[+] local-fwd Local listen udp://[::1]:${port.B}`,
      `[+] local-fwd Local listen udp://[::1]:${port.C}`,
      `[+] local-fwd Local listen udp://[::]:${port.D}`,
      `[+] local-fwd Local listen udp://[::]:${port.E}`,
    ]);
  });

  const cases: Array<[string, L, string | undefined, string, string]> = [
    ["v4 loopback client -> v4 target: gateway 10.0.2.2", "A", undefined, "127.0.0.1", "10.0.2.2"],
    ["v4 non-loopback client (192.0.2.1) -> v4 target: real IP", "A", HOST_V4, "127.0.0.1", HOST_V4],
    ["v6 loopback client -> v6 target: gateway fd00::2", "B", undefined, "::1", "fd00::2"],
    ["v6 non-loopback client (2001:db8::1) -> v6 target: real IP", "C", HOST_V6, "::1", HOST_V6],
    ["dual-stack listener, v4 client -> v6 target: gateway fd00::2", "D", HOST_V4, HOST_V4, "fd00::2"],
    ["dual-stack listener, v6 non-loopback client -> v6 target: real IP", "D", HOST_V6, HOST_V6, HOST_V6],
    ["dual-stack listener, v6 client -> v4 target: gateway 10.0.2.2", "E", HOST_V6, HOST_V6, "10.0.2.2"],
    // (Dialled at its own address: a wildcard UDP listener answers from the address the kernel
    // picks toward the client, as upstream's wildcard-bound per-client sockets do.)
    ["dual-stack listener, v4 non-loopback client -> v4 target: real IP", "E", HOST_V4, HOST_V4, HOST_V4],
    ["dual-stack listener, v4 loopback client -> v4 target: gateway 10.0.2.2", "E", undefined, "127.0.0.1", "10.0.2.2"],
  ];

  for (const [name, l, bind, dial, seen] of cases) {
    test(`${name}; "ala", "ma", "kota" come back as 3 datagrams`, async () => {
      const { stack, port } = await start();
      const before = (await guestPeers()).length;
      // A connected client socket: replies must come from the address and port it dialled.
      const r = await env.h.udpExchange({ host: dial, port: port[l], bind, connect: true, send: ["ala", "ma", "kota"] });
      expect(r.error).toBeUndefined();
      expect(sorted(r.texts)).toEqual(sorted(["ala", "ma", "kota"]));
      const peers = (await guestPeers()).slice(before);
      expect(peers.length).toBe(3);
      expect(new Set(peers.map(([ip]) => ip))).toEqual(new Set([seen]));
      // One flow for the three datagrams, from one guest-side port.
      expect(new Set(peers.map(([, p]) => p)).size).toBe(1);
      // LISTENLOCAL: the address dialled; for a wildcard listener that one or [::] (one socket serves all clients).
      const wildcard = l === "D" || l === "E";
      const listenLocal = wildcard ? `(?:${re(hp(dial, port[l]))}|${re(hp("::", port[l]))})` : re(hp(dial, port[l]));
      const flow = `udp://${re(hp(r.local[0], r.local[1]))}-${listenLocal}/${re(hp(seen, peers[0]![1]))}-${re(hp(target[l], echo.port))}`;
      await stack.stdout.waitFor(new RegExp(`^\\[\\+\\] ${flow} local-fwd conn$`));
      await Bun.sleep(50);
      expect(stack.stdout.lines.filter((x) => x.includes("local-fwd conn")).length).toBe(1);
    });
  }

  test("65000-byte datagrams both ways, v4 and v6", async () => {
    const { port } = await start();
    const big4 = payload("big v4", 65000);
    const r4 = await env.h.udpExchange({ host: "127.0.0.1", port: port.A, send: [big4] });
    expect(r4.replies.length).toBe(1);
    expect(Buffer.from(r4.replies[0]!).equals(Buffer.from(big4))).toBe(true);
    const big6 = payload("big v6", 65000);
    const r6 = await env.h.udpExchange({ host: "::1", port: port.B, send: [big6] });
    expect(r6.replies.length).toBe(1);
    expect(Buffer.from(r6.replies[0]!).equals(Buffer.from(big6))).toBe(true);
  });

  test("two clients of one listener are separate flows", async () => {
    const { stack, port } = await start();
    const [a, b] = await Promise.all([
      env.h.udpExchange({ host: "127.0.0.1", port: port.A, send: ["one", "two"] }),
      env.h.udpExchange({ host: "127.0.0.1", port: port.A, bind: HOST_V4, send: ["three", "four"] }),
    ]);
    expect(sorted(a.texts)).toEqual(["one", "two"]);
    expect(sorted(b.texts)).toEqual(["four", "three"]);
    await stack.stdout.waitFor(`udp://127.0.0.1:${a.local[1]}-127.0.0.1:${port.A}/10.0.2.2:`);
    expect(stack.stdout.text()).toContain(`udp://${HOST_V4}:${b.local[1]}-127.0.0.1:${port.A}/${HOST_V4}:`);
  });
});

describe("-L udp: port-0 target rule", () => {
  test("-L udp://0 and -L udp://[::1]:0 target the guest at the listener's own port", async () => {
    const stack = await startStack(env, ["-L", "udp://0", "-L", "udp://[::1]:0"]);
    const { ports, lines } = await listenPorts(stack, 2);
    const [p4, p6] = ports as [number, number];
    expect(lines).toEqual([`[+] local-fwd Local listen udp://127.0.0.1:${p4}`, `[+] local-fwd Local listen udp://[::1]:${p6}`]);
    const s4 = await env.g.udpListen("10.0.2.100", p4);
    const s6 = await env.g.udpListen("fd00::100", p6);
    try {
      expect((await env.h.udpExchange({ host: "127.0.0.1", port: p4, send: ["zero4"] })).texts).toEqual(["zero4"]);
      expect((await env.h.udpExchange({ host: "::1", port: p6, send: ["zero6"] })).texts).toEqual(["zero6"]);
      expect((await env.g.peers(s4.sid)).length).toBe(1);
      expect((await env.g.peers(s6.sid)).length).toBe(1);
      await stack.stdout.waitFor(`-10.0.2.100:${p4} local-fwd conn`);
      await stack.stdout.waitFor(`-[fd00::100]:${p6} local-fwd conn`);
    } finally {
      await env.g.close(s4.sid);
      await env.g.close(s6.sid);
    }
  });
});

describe("-L udprpc", () => {
  test("two requests from one client socket: conn, done, conn, done", async () => {
    const stack = await startStack(env, ["-L", `udprpc://0:10.0.2.100:${echo.port}`]);
    const { ports, lines } = await listenPorts(stack, 1);
    expect(lines).toEqual([`[+] local-fwd Local listen udp://127.0.0.1:${ports[0]}`]);
    const r = await env.h.udpExchange({ host: "127.0.0.1", port: ports[0]!, send: ["request one", "request two"], lockstep: true });
    expect(r.error).toBeUndefined();
    expect(r.texts).toEqual(["request one", "request two"]);
    const flow = `udp://127\\.0\\.0\\.1:${r.local[1]}-127\\.0\\.0\\.1:${ports[0]}/10\\.0\\.2\\.2:\\d+-10\\.0\\.2\\.100:${echo.port}`;
    await stack.stdout.waitFor(new RegExp(`^\\[\\+\\] ${flow} local-fwd conn$`));
    await stack.stdout.waitFor(new RegExp(`^\\[-\\] ${flow} local-fwd done: l=`));
    await stack.stdout.waitFor(new RegExp(`^\\[\\+\\] ${flow} local-fwd conn$`));
    await stack.stdout.waitFor(new RegExp(`^\\[-\\] ${flow} local-fwd done: l=`));
    const flowLines = stack.stdout.lines.filter((l) => l.includes("local-fwd"));
    expect(flowLines.map((l) => l.slice(0, 3) + l.slice(l.lastIndexOf(" local-fwd")).split(":")[0])).toEqual([
      "[+] local-fwd Local listen udp",
      "[+] local-fwd conn",
      "[-] local-fwd done",
      "[+] local-fwd conn",
      "[-] local-fwd done",
    ]);
  });

  test("udprpc over IPv6", async () => {
    const stack = await startStack(env, ["-L", `udprpc://[::1]:0:[fd00::100]:${echo.port}`]);
    const { ports } = await listenPorts(stack, 1);
    const r = await env.h.udpExchange({ host: "::1", port: ports[0]!, send: ["six one", "six two"], lockstep: true });
    expect(r.texts).toEqual(["six one", "six two"]);
    await stack.stdout.waitFor("local-fwd done");
    await stack.stdout.waitFor("local-fwd done");
  });
});

// ---------------------------------------------------------------------------

function ip16(ip: string): number[] {
  if (!ip.includes(":")) return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split(".").map(Number)];
  const [a, b = ""] = ip.split("::") as [string, string?];
  const head = a === "" ? [] : a.split(":");
  const tail = b === "" ? [] : b.split(":");
  const groups = [...head, ...Array(8 - head.length - tail.length).fill("0"), ...tail].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** A 38-byte SPP header (Cloudflare's Simple Proxy Protocol). */
function sppHeader(client: string, proxy: string, cport: number, pport: number, magic = [0x56, 0xec]): Uint8Array {
  return new Uint8Array([...magic, ...ip16(client), ...ip16(proxy), cport >> 8, cport & 0xff, pport >> 8, pport & 0xff]);
}

function cat(...parts: Array<Uint8Array | string>): Uint8Array {
  return new Uint8Array(Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p)))));
}

describe("-L udpspp", () => {
  // SA 127.0.0.1 -> 10.0.2.100:Q, SB [::1] -> [fd00::100]:Q, SC 127.0.0.1 -> 10.0.2.100:(header's proxy port)
  async function start(): Promise<{ stack: StackProcess; SA: number; SB: number; SC: number }> {
    const stack = await startStack(env, [
      "-L", `udpspp://0:10.0.2.100:${echo.port}`,
      "-L", `udpspp://[::1]:0:[fd00::100]:${echo.port}`,
      "-L", "udpspp://0:10.0.2.100:0",
    ]);
    const { ports, lines } = await listenPorts(stack, 3);
    const [SA, SB, SC] = ports as [number, number, number];
    expect(lines).toEqual([
      `[+] local-fwd Local PP listen udp://127.0.0.1:${SA}`,
      `[+] local-fwd Local PP listen udp://[::1]:${SB}`,
      `[+] local-fwd Local PP listen udp://127.0.0.1:${SC}`,
    ]);
    return { stack, SA, SB, SC };
  }

  test("header stripped toward the guest; the first header in front of every reply; source 1.2.3.4", async () => {
    const { stack, SA } = await start();
    const before = (await guestPeers()).length;
    const h1 = sppHeader("1.2.3.4", "10.0.2.100", 1111, 2222);
    const junk = new Uint8Array(38).fill(0x77);
    const r = await env.h.udpExchange({
      host: "127.0.0.1",
      port: SA,
      // The first datagram carries the header; later ones lose their first 38 bytes, whatever they are.
      send: [cat(h1, "ala"), cat(new Uint8Array(38), "ma"), cat(junk, "kota")],
      lockstep: true,
    });
    expect(r.error).toBeUndefined();
    expect(r.replies.map((x) => Buffer.from(x).toString("hex"))).toEqual(
      [cat(h1, "ala"), cat(h1, "ma"), cat(h1, "kota")].map((x) => Buffer.from(x).toString("hex")),
    );
    const peers = (await guestPeers()).slice(before);
    expect(peers.map(([ip]) => ip)).toEqual(["1.2.3.4", "1.2.3.4", "1.2.3.4"]);
    await stack.stdout.waitFor(
      new RegExp(`^\\[\\+\\] udp://127\\.0\\.0\\.1:${r.local[1]}-127\\.0\\.0\\.1:${SA}/1\\.2\\.3\\.4:${peers[0]![1]}-10\\.0\\.2\\.100:${echo.port} local-fwd PP conn$`),
    );
  });

  test("a 38+9+65000-byte datagram passes whole, both ways", async () => {
    const { SA } = await start();
    const h1 = sppHeader("1.2.3.4", "10.0.2.100", 1, 2);
    const body = cat("123456789", payload("spp big", 65000));
    const dgram = cat(h1, body);
    expect(dgram.length).toBe(38 + 9 + 65000);
    const r = await env.h.udpExchange({ host: "127.0.0.1", port: SA, send: [dgram] });
    expect(r.replies.length).toBe(1);
    expect(Buffer.from(r.replies[0]!).equals(Buffer.from(dgram))).toBe(true);
  });

  test("IPv6 header source to a v6 target is the source; crossed or zero sources show as the gateway", async () => {
    const { SA, SB } = await start();
    const cases: Array<[number, string, Uint8Array, string]> = [
      [SB, "::1", sppHeader("2001:db8::99", "fd00::100", 5, 6), "2001:db8::99"],
      [SB, "::1", sppHeader("1.2.3.4", "10.0.2.100", 5, 6), "fd00::2"],
      [SA, "127.0.0.1", sppHeader("2001:db8::99", "fd00::100", 5, 6), "10.0.2.2"],
      [SA, "127.0.0.1", new Uint8Array([0x56, 0xec, ...new Array(36).fill(0)]), "10.0.2.2"],
      [SA, "127.0.0.1", sppHeader("127.0.0.9", "10.0.2.100", 5, 6), "10.0.2.2"],
    ];
    for (const [port, dial, header, seen] of cases) {
      const before = (await guestPeers()).length;
      const r = await env.h.udpExchange({ host: dial, port, send: [cat(header, `to ${seen}`)] });
      expect(r.texts).toEqual([Buffer.from(cat(header, `to ${seen}`)).toString("latin1")]);
      const peers = (await guestPeers()).slice(before);
      expect({ seen, peers: peers.map(([ip]) => ip) }).toEqual({ seen, peers: [seen] });
    }
  });

  test("port-0 target takes the header's proxy (destination) port", async () => {
    const { stack, SC } = await start();
    const h = sppHeader("1.2.3.4", "10.0.2.100", 1111, echo.port);
    const r = await env.h.udpExchange({ host: "127.0.0.1", port: SC, send: [cat(h, "port from header")] });
    expect(r.texts).toEqual([Buffer.from(cat(h, "port from header")).toString("latin1")]);
    await stack.stdout.waitFor(`-10.0.2.100:${echo.port} local-fwd PP conn`);
  });

  test("a short or bad first datagram: PP error line and no flow; a good one afterwards works", async () => {
    const { stack, SA } = await start();
    const before = (await guestPeers()).length;
    const bad: Array<[Uint8Array, string]> = [
      [cat("short"), "unexpected EOF"],
      [new Uint8Array(37).fill(0x56), "unexpected EOF"],
      [cat(sppHeader("1.2.3.4", "10.0.2.100", 1, 2, [0x56, 0xed]), "x"), "spp: bad magic number"],
      [cat(new Uint8Array(38), "zeros"), "spp: bad magic number"],
    ];
    for (const [dgram, err] of bad) {
      const r = await env.h.udpExchange({ host: "127.0.0.1", port: SA, send: [dgram], timeoutMs: 300 });
      expect(r.replies.length).toBe(0);
      await stack.stdout.waitFor(
        new RegExp(`^\\[!\\] udp://127\\.0\\.0\\.1:${r.local[1]}-127\\.0\\.0\\.1:${SA}/10\\.0\\.2\\.100:${echo.port} local-fwd PP error: ${re(err)}$`),
      );
    }
    expect((await guestPeers()).length).toBe(before);
    // The same client socket: a bad datagram, then a good header starts the flow.
    const h = sppHeader("1.2.3.4", "10.0.2.100", 1, 2);
    const r = await env.h.udpExchange({ host: "127.0.0.1", port: SA, send: [cat("bad"), cat(h, "good")], expect: 1 });
    expect(r.texts).toEqual([Buffer.from(cat(h, "good")).toString("latin1")]);
  });

  test("a later datagram shorter than 38 bytes is dropped; the flow goes on", async () => {
    const { SA } = await start();
    const h = sppHeader("1.2.3.4", "10.0.2.100", 1, 2);
    const before = (await guestPeers()).length;
    const r = await env.h.udpExchange({
      host: "127.0.0.1",
      port: SA,
      send: [cat(h, "first"), cat("tiny"), cat(new Uint8Array(38), "third")],
      gapMs: 50,
      expect: 2,
    });
    expect(r.texts).toEqual([Buffer.from(cat(h, "first")).toString("latin1"), Buffer.from(cat(h, "third")).toString("latin1")]);
    expect((await guestPeers()).length - before).toBe(2);
  });
});
