// -L tcp and tcppp (docs/compatibility.md: Local forwards, PROXY protocol
// for tcppp, Default addresses, Printed form of a spec, Stdout lines): host
// clients in the host namespace reach an echo server in the guest through
// the stack's listeners, for IPv4, IPv6 and crossed families.
//
// What the guest sees as the source: a non-loopback client's real
// IP, the gateway (10.0.2.2 / fd00::2) for loopback clients, for
// statically denied addresses and across families; with tcppp the PROXY
// header's source (v1 text, and v2 binary as our addition). Port-0 targets
// take the listener's port, or the PROXY destination port. Wildcard binds
// listen dual-stack and print [::]:PORT.
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
  runStackToExit,
  startStack,
  stopStacks,
  type ForwardEnv,
} from "../../support/forward-env.ts";
import type { Server } from "../../support/net-agent.ts";
import type { StackProcess } from "../../support/stack.ts";

setDefaultTimeout(60_000);

let env: ForwardEnv;
/** A dual-stack echo server in the guest ([::]:P), the target of most forwards. */
let echo: Server;

beforeAll(async () => {
  env = await createForwardEnv();
  echo = await env.g.tcpListen("::");
});
afterEach(stopStacks);
afterAll(() => destroyForwardEnv(env));

/** The last client the guest server saw: [ip, port]. */
async function lastGuestPeer(sid = echo.sid): Promise<[string, number]> {
  const peers = await env.g.peers(sid);
  expect(peers.length).toBeGreaterThan(0);
  return peers[peers.length - 1]!;
}

describe("-L tcp: families and the source address the guest sees", () => {
  // Listeners, in this order:
  //   A 127.0.0.1 -> 10.0.2.100   B [::1] -> [fd00::100]
  //   C [::] (from 0.0.0.0) -> [fd00::100]   D [::] -> 10.0.2.100
  //   E 192.0.2.1 -> 10.0.2.100 (default target)   F [2001:db8::1] -> [fd00::100] (v6 default target)
  const specs = (p: number) => [
    "-L", `tcp://127.0.0.1:0:10.0.2.100:${p}`,
    "-L", `tcp://[::1]:0:[fd00::100]:${p}`,
    "-L", `tcp://0.0.0.0:0:[fd00::100]:${p}`,
    "-L", `tcp://[::]:0:10.0.2.100:${p}`,
    "-L", `tcp://${HOST_V4}:0::${p}`,
    "-L", `tcp://[${HOST_V6}]:0::${p}`,
  ];
  const LISTENERS = ["A", "B", "C", "D", "E", "F"] as const;
  type L = (typeof LISTENERS)[number];
  const target: Record<L, string> = { A: "10.0.2.100", B: "fd00::100", C: "fd00::100", D: "10.0.2.100", E: "10.0.2.100", F: "fd00::100" };

  // [name, listener, client bind, address dialled, source the guest must see]
  const cases: Array<[string, L, string | undefined, string, string]> = [
    ["v4 loopback client -> v4 target: gateway 10.0.2.2", "A", undefined, "127.0.0.1", "10.0.2.2"],
    ["v4 non-loopback client (192.0.2.1) -> loopback listener: real IP", "A", HOST_V4, "127.0.0.1", HOST_V4],
    ["v6 loopback client -> v6 target: gateway fd00::2", "B", undefined, "::1", "fd00::2"],
    ["v6 non-loopback client (2001:db8::1) -> v6 target: real IP", "B", HOST_V6, "::1", HOST_V6],
    ["dual-stack listener, v4 loopback client -> v6 target: gateway fd00::2", "C", undefined, "127.0.0.1", "fd00::2"],
    ["dual-stack listener, v4 non-loopback client -> v6 target: crossed family, gateway fd00::2", "C", HOST_V4, HOST_V4, "fd00::2"],
    ["dual-stack listener, v6 non-loopback client -> v6 target: real IP", "C", HOST_V6, HOST_V6, HOST_V6],
    ["dual-stack listener, v6 loopback client -> v6 target: gateway fd00::2", "C", undefined, "::1", "fd00::2"],
    ["dual-stack listener, v6 loopback client -> v4 target: gateway 10.0.2.2", "D", undefined, "::1", "10.0.2.2"],
    ["dual-stack listener, v6 non-loopback client -> v4 target: crossed family, gateway 10.0.2.2", "D", HOST_V6, HOST_V6, "10.0.2.2"],
    ["dual-stack listener, v4 non-loopback client -> v4 target: real IP (IPv4-mapped peer treated as IPv4)", "D", HOST_V4, "127.0.0.1", HOST_V4],
    ["listener on 192.0.2.1, default v4 target: real IP", "E", HOST_V4, HOST_V4, HOST_V4],
    ["listener on [2001:db8::1], default v6 target: real IP", "F", HOST_V6, HOST_V6, HOST_V6],
  ];

  let stack: StackProcess;
  const port: Partial<Record<L, number>> = {};

  test("listen lines: bound addresses in Go style, [::] for 0.0.0.0 and ::", async () => {
    stack = await startStack(env, specs(echo.port));
    const { ports, lines } = await listenPorts(stack, LISTENERS.length);
    LISTENERS.forEach((l, i) => (port[l] = ports[i]));
    expect(lines).toEqual([
      `[+] local-fwd Local listen tcp://127.0.0.1:${port.A}`,
      `[+] local-fwd Local listen tcp://[::1]:${port.B}`,
      `[+] local-fwd Local listen tcp://[::]:${port.C}`,
      `[+] local-fwd Local listen tcp://[::]:${port.D}`,
      `[+] local-fwd Local listen tcp://${HOST_V4}:${port.E}`,
      `[+] local-fwd Local listen tcp://[${HOST_V6}]:${port.F}`,
    ]);
    for (const p of ports) expect(p).toBeGreaterThan(0);
  });

  // The cases share the stack started above (stopStacks runs after each
  // test, so each case starts its own when needed).
  for (const [name, l, bind, dial, seen] of cases) {
    test(name, async () => {
      stack = await startStack(env, specs(echo.port));
      const { ports } = await listenPorts(stack, LISTENERS.length);
      LISTENERS.forEach((x, i) => (port[x] = ports[i]));
      const data = payload(`${l}-${name}`, 100_000);
      const r = await env.h.tcpEcho({ host: dial, port: port[l]!, bind, data });
      expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
      const [ip, guestSidePort] = await lastGuestPeer();
      expect(ip).toBe(seen);
      // [+] tcp://CLIENT-LISTENLOCAL/GUESTSIDELOCAL-TARGET local-fwd conn, then the done line.
      const flow = `tcp://${re(hp(r.local[0], r.local[1]))}-${re(hp(r.peer[0], r.peer[1]))}/${re(hp(seen, guestSidePort))}-${re(hp(target[l], echo.port))}`;
      await stack.stdout.waitFor(new RegExp(`^\\[\\+\\] ${flow} local-fwd conn$`));
      await stack.stdout.waitFor(new RegExp(`^\\[-\\] ${flow} local-fwd done: l=`));
    });
  }
});

describe("-L tcp: port-0 target rule, wildcard binds, refused targets", () => {
  test("-L 0 and -L tcp://[::1]:0 target the guest at the listener's own port", async () => {
    const stack = await startStack(env, ["-L", "0", "-L", "tcp://[::1]:0"]);
    const { ports, lines } = await listenPorts(stack, 2);
    const [p4, p6] = ports as [number, number];
    expect(lines).toEqual([`[+] local-fwd Local listen tcp://127.0.0.1:${p4}`, `[+] local-fwd Local listen tcp://[::1]:${p6}`]);
    // Servers at exactly those ports in the guest, on the default targets.
    const s4 = await env.g.tcpListen("10.0.2.100", p4);
    const s6 = await env.g.tcpListen("fd00::100", p6);
    try {
      const r4 = await env.h.tcpEcho({ host: "127.0.0.1", port: p4, data: "port zero v4" });
      expect(r4.text).toBe("port zero v4");
      expect((await lastGuestPeer(s4.sid))[0]).toBe("10.0.2.2");
      await stack.stdout.waitFor(new RegExp(`local-fwd conn$`));
      const r6 = await env.h.tcpEcho({ host: "::1", port: p6, data: "port zero v6" });
      expect(r6.text).toBe("port zero v6");
      expect((await lastGuestPeer(s6.sid))[0]).toBe("fd00::2");
      expect(stack.stdout.text()).toMatch(new RegExp(`-10\\.0\\.2\\.100:${p4} local-fwd conn`));
      expect(stack.stdout.text()).toMatch(new RegExp(`-\\[fd00::100\\]:${p6} local-fwd conn`));
    } finally {
      await env.g.close(s4.sid);
      await env.g.close(s6.sid);
    }
  });

  test("0.0.0.0 and :: binds accept IPv4 and IPv6 clients and print [::]:PORT", async () => {
    const stack = await startStack(env, ["-L", `tcp://0.0.0.0:0::${echo.port}`, "-L", `tcp://[::]:0::${echo.port}`]);
    const { ports, lines } = await listenPorts(stack, 2);
    const [pa, pb] = ports as [number, number];
    expect(lines).toEqual([`[+] local-fwd Local listen tcp://[::]:${pa}`, `[+] local-fwd Local listen tcp://[::]:${pb}`]);
    // 0.0.0.0 with an omitted target: a v4 spec, target 10.0.2.100.
    for (const dial of ["127.0.0.1", "::1", HOST_V4, HOST_V6]) {
      const r = await env.h.tcpEcho({ host: dial, port: pa, data: `a ${dial}` });
      expect(r.text).toBe(`a ${dial}`);
      await stack.stdout.waitFor(new RegExp(`-10\\.0\\.2\\.100:${echo.port} local-fwd conn$`));
    }
    // [::] is a static v6 literal: a v6 spec, target fd00::100.
    for (const dial of ["127.0.0.1", "::1"]) {
      const r = await env.h.tcpEcho({ host: dial, port: pb, data: `b ${dial}` });
      expect(r.text).toBe(`b ${dial}`);
      await stack.stdout.waitFor(new RegExp(`-\\[fd00::100\\]:${echo.port} local-fwd conn$`));
    }
  });

  test("a bind name is resolved once at startup, IPv4 preferred: localhost -> 127.0.0.1", async () => {
    const stack = await startStack(env, ["-L", `localhost:0:10.0.2.100:${echo.port}`]);
    const { ports, lines } = await listenPorts(stack, 1);
    expect(lines).toEqual([`[+] local-fwd Local listen tcp://127.0.0.1:${ports[0]}`]);
    expect((await env.h.tcpEcho({ host: "127.0.0.1", port: ports[0]!, data: "by name" })).text).toBe("by name");
  });

  test("a bind name that cannot be resolved exits 247", async () => {
    const r = await runStackToExit(env, ["-L", "tcp://127.0.0.1:0::80", "-L", "tcp://no.such.label@srv-1:0::80"]);
    expect(r.code).toBe(247);
    expect(r.stdout).toEqual([expect.stringMatching(/^\[\+\] local-fwd Local listen tcp:\/\/127\.0\.0\.1:\d+$/)]);
    expect(r.stderr.at(-1)).toBe("[!] Failed to listen on tcp://no.such.label@srv-1-failed: DNS lookup failed");
  });

  test("a guest port with no listener: the client is accepted, then closed, and an error line is logged", async () => {
    const stack = await startStack(env, ["-L", "tcp://0:10.0.2.100:1"]);
    const { ports } = await listenPorts(stack, 1);
    const r = await env.h.tcpExchange({ host: "127.0.0.1", port: ports[0]!, send: ["nobody home"], timeoutMs: 10_000 });
    // Accepted by the host listener, then closed once the guest refused (reset or EOF, never a hang).
    expect(r.error === undefined ? "eof" : r.error).toMatch(/^(eof|ECONNRESET|EPIPE)$/);
    expect(r.data.length).toBe(0);
    await stack.stdout.waitFor(new RegExp(`^\\[!\\] tcp://127\\.0\\.0\\.1:\\d+-127\\.0\\.0\\.1:${ports[0]}/10\\.0\\.2\\.100:1 local-fwd error: `));
  });

  test("half-close passes through: the guest's reply after the client's FIN still arrives", async () => {
    const stack = await startStack(env, ["-L", `tcp://0:10.0.2.100:${echo.port}`]);
    const { ports } = await listenPorts(stack, 1);
    // shut: the client half-closes right after sending; the echo comes back afterwards, then EOF.
    const r = await env.h.tcpExchange({ host: "127.0.0.1", port: ports[0]!, send: ["half", "-closed"], gapMs: 50, shut: true });
    expect(r.error).toBeUndefined();
    expect(r.text).toBe("half-closed");
    expect(r.eof).toBe(true);
  });
});

// ---------------------------------------------------------------------------

const SIG = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function ipBytes(ip: string): number[] {
  if (!ip.includes(":")) return ip.split(".").map(Number);
  const [a, b = ""] = ip.split("::") as [string, string?];
  const head = a === "" ? [] : a.split(":");
  const tail = b === "" ? [] : b.split(":");
  const groups = [...head, ...Array(8 - head.length - tail.length).fill("0"), ...tail].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** A PROXY v2 header: PROXY (or LOCAL) over TCP4/TCP6. */
function proxyV2(cmd: "PROXY" | "LOCAL", src?: string, dst?: string, sport = 0, dport = 0): Uint8Array {
  let fam = 0x00;
  let body: number[] = [];
  if (src !== undefined && dst !== undefined) {
    fam = src.includes(":") ? 0x21 : 0x11;
    body = [...ipBytes(src), ...ipBytes(dst), sport >> 8, sport & 0xff, dport >> 8, dport & 0xff];
  }
  const out = new Uint8Array(16 + body.length);
  out.set(SIG);
  out.set([cmd === "PROXY" ? 0x21 : 0x20, fam, body.length >> 8, body.length & 0xff], 12);
  out.set(body, 16);
  return out;
}

describe("-L tcppp: PROXY v1 and v2 headers", () => {
  // PA 127.0.0.1 -> 10.0.2.100:P, PB [::1] -> [fd00::100]:P, PC 127.0.0.1 -> 10.0.2.100:(header's dst port)
  const specs = (p: number) => ["-L", `tcppp://0:10.0.2.100:${p}`, "-L", `tcppp://[::1]:0:[fd00::100]:${p}`, "-L", "tcppp://0:10.0.2.100:0"];
  let stack: StackProcess;
  let PA: number;
  let PB: number;
  let PC: number;

  async function start(): Promise<void> {
    stack = await startStack(env, specs(echo.port));
    const { ports, lines } = await listenPorts(stack, 3);
    [PA, PB, PC] = ports as [number, number, number];
    expect(lines).toEqual([
      `[+] local-fwd Local PP listen tcp://127.0.0.1:${PA}`,
      `[+] local-fwd Local PP listen tcp://[::1]:${PB}`,
      `[+] local-fwd Local PP listen tcp://127.0.0.1:${PC}`,
    ]);
  }

  /** Sends header+payload in one write; checks the echo of the payload alone and the guest-seen source. */
  async function viaProxy(o: { listener: "A" | "B"; header: Uint8Array | string; seen: string; bind?: string }): Promise<void> {
    const lport = o.listener === "A" ? PA : PB;
    const dial = o.listener === "A" ? "127.0.0.1" : "::1";
    const target = o.listener === "A" ? hp("10.0.2.100", echo.port) : hp("fd00::100", echo.port);
    const header = typeof o.header === "string" ? new Uint8Array(Buffer.from(o.header, "latin1")) : o.header;
    const body = payload(`pp-${o.seen}`, 5000);
    const both = new Uint8Array(header.length + body.length);
    both.set(header);
    both.set(body, header.length);
    const r = await env.h.tcpExchange({ host: dial, port: lport, bind: o.bind, send: [both], expect: body.length });
    expect(r.error).toBeUndefined();
    expect(Buffer.from(r.data).equals(Buffer.from(body))).toBe(true);
    const [ip, gport] = await lastGuestPeer();
    expect(ip).toBe(o.seen);
    const flow = `tcp://${re(hp(r.local[0], r.local[1]))}-${re(hp(r.peer[0], r.peer[1]))}/${re(hp(o.seen, gport))}-${re(target)}`;
    await stack.stdout.waitFor(new RegExp(`^\\[\\+\\] ${flow} local-fwd PP conn$`));
    await stack.stdout.waitFor(new RegExp(`^\\[-\\] ${flow} local-fwd PP done: l=`));
  }

  test("v1 TCP4 source reaches the guest as the source (1.2.3.4)", async () => {
    await start();
    await viaProxy({ listener: "A", header: "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n", seen: "1.2.3.4" });
  });

  test("v1 TCP6 source to a v6 target reaches the guest (2001:db8::99)", async () => {
    await start();
    await viaProxy({ listener: "B", header: "PROXY TCP6 2001:db8::99 fd00::100 1111 2222\r\n", seen: "2001:db8::99" });
  });

  test("v1 source of the other family than the target shows as the gateway", async () => {
    await start();
    await viaProxy({ listener: "A", header: "PROXY TCP6 abcd::1 dcba::1 1 2\r\n", seen: "10.0.2.2" });
    await viaProxy({ listener: "B", header: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", seen: "fd00::2" });
  });

  test("v1 statically denied sources (127.0.0.5, 10.0.2.77, ::1) show as the gateway", async () => {
    await start();
    await viaProxy({ listener: "A", header: "PROXY TCP4 127.0.0.5 5.6.7.8 1 2\r\n", seen: "10.0.2.2" });
    await viaProxy({ listener: "A", header: "PROXY TCP4 10.0.2.77 5.6.7.8 1 2\r\n", seen: "10.0.2.2" });
    await viaProxy({ listener: "B", header: "PROXY TCP6 ::1 ::1 1 2\r\n", seen: "fd00::2" });
  });

  test("v1 TCP4 word with IPv6 addresses is accepted (the word is not checked)", async () => {
    await start();
    await viaProxy({ listener: "B", header: "PROXY TCP4 2001:db8::77 fd00::100 1 2\r\n", seen: "2001:db8::77" });
  });

  test("v2 binary PROXY TCP4 and TCP6 sources reach the guest", async () => {
    await start();
    await viaProxy({ listener: "A", header: proxyV2("PROXY", "1.2.3.4", "10.0.2.100", 4660, 80), seen: "1.2.3.4" });
    await viaProxy({ listener: "B", header: proxyV2("PROXY", "2001:db8::99", "fd00::100", 4660, 80), seen: "2001:db8::99" });
    await viaProxy({ listener: "B", header: proxyV2("PROXY", "1.2.3.4", "10.0.2.100", 1, 2), seen: "fd00::2" });
  });

  test("v2 LOCAL uses the real peer: gateway for loopback, the real IP for 192.0.2.1", async () => {
    await start();
    await viaProxy({ listener: "A", header: proxyV2("LOCAL"), seen: "10.0.2.2" });
    await viaProxy({ listener: "A", header: proxyV2("LOCAL"), seen: HOST_V4, bind: HOST_V4 });
  });

  test("the guest is dialled on the header alone: conn is logged before any payload", async () => {
    await start();
    const before = (await env.g.peers(echo.sid)).length;
    const c = await env.h.connect({ host: "127.0.0.1", port: PA });
    try {
      await c.send("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n");
      await stack.stdout.waitFor(new RegExp(`^\\[\\+\\] tcp://127\\.0\\.0\\.1:${c.local[1]}-127\\.0\\.0\\.1:${PA}/1\\.2\\.3\\.4:\\d+-10\\.0\\.2\\.100:${echo.port} local-fwd PP conn$`));
      expect((await env.g.peers(echo.sid)).length).toBe(before + 1);
      await c.send("after the conn line");
      expect((await c.recv("after the conn line".length)).text).toBe("after the conn line");
    } finally {
      await c.close();
    }
  });

  test("a v1 header split over two writes: only the first read counts (unexpected EOF)", async () => {
    await start();
    const c = await env.h.connect({ host: "127.0.0.1", port: PA });
    try {
      await c.send("PROXY TCP4 1.2.3.4");
      await stack.stdout.waitFor(
        new RegExp(`^\\[!\\] tcp://127\\.0\\.0\\.1:${c.local[1]}-127\\.0\\.0\\.1:${PA}/10\\.0\\.2\\.100:${echo.port} local-fwd PP error: unexpected EOF$`),
      );
      await c.send(" 5.6.7.8 1 2\r\nlate");
      const r = await c.recv(undefined, 5000);
      expect(r.data.length).toBe(0);
      expect(r.eof || r.error === "ECONNRESET").toBe(true);
    } finally {
      await c.close();
    }
  });

  test("port-0 target takes the PROXY header's destination port (v1 and v2)", async () => {
    await start();
    const r1 = await env.h.tcpExchange({ host: "127.0.0.1", port: PC, send: [`PROXY TCP4 1.2.3.4 10.0.2.100 5555 ${echo.port}\r\nv1 port`], expect: 7 });
    expect(r1.text).toBe("v1 port");
    expect((await lastGuestPeer())[0]).toBe("1.2.3.4");
    await stack.stdout.waitFor(new RegExp(`-10\\.0\\.2\\.100:${echo.port} local-fwd PP conn$`));
    const v2 = proxyV2("PROXY", "1.2.3.5", "10.0.2.100", 5555, echo.port);
    const r2 = await env.h.tcpExchange({ host: "127.0.0.1", port: PC, send: [Buffer.concat([v2, Buffer.from("v2 port")])], expect: 7 });
    expect(r2.text).toBe("v2 port");
    expect((await lastGuestPeer())[0]).toBe("1.2.3.5");
  });

  test("bad headers: PP error line, the client is closed, the guest is never dialled", async () => {
    await start();
    const before = (await env.g.peers(echo.sid)).length;
    const bad: Array<[string | Uint8Array, string]> = [
      ["PROXY UNKNOWN\r\n", "spp: bad magic number"],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "spp: bad magic number"],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n", "spp: bad magic number"],
      ["PROXY TCP4 999.1.1.1 5.6.7.8 1 2\r\n", "spp: bad magic number"],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "spp: bad magic number"],
      ["GET / HTTP/1.0\r\n\r\n", "spp: bad magic number"],
      ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2", "unexpected EOF"],
      [SIG, "unexpected EOF"],
    ];
    for (const [header, err] of bad) {
      const r = await env.h.tcpExchange({ host: "127.0.0.1", port: PA, send: [header], timeoutMs: 5000 });
      expect({ header: String(header), got: r.error === undefined ? (r.eof ? "eof" : "open") : r.error }).toMatchObject({ got: expect.stringMatching(/^(eof|ECONNRESET)$/) });
      expect(r.data.length).toBe(0);
      await stack.stdout.waitFor(
        new RegExp(`^\\[!\\] tcp://127\\.0\\.0\\.1:${r.local[1]}-127\\.0\\.0\\.1:${PA}/10\\.0\\.2\\.100:${echo.port} local-fwd PP error: ${re(err)}$`),
      );
    }
    expect((await env.g.peers(echo.sid)).length).toBe(before);
  });
});
