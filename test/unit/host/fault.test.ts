// A handler that throws is a bug, but it ends only its own flow: the
// engine confines a throw while processing one connection's segment, timer
// or connect request to that connection (RST toward the peer, "aborted" to
// the host side), a throw elsewhere in a frame's processing drops that
// frame, and every fault is counted and reported, with the stack trace the
// first time. Two engines back to back (test/support/engine-pair.ts) on a
// virtual clock. And a -L dial that finds no free guest-side port resets
// its client instead of throwing inside the reactor.
import { describe, expect, test } from "bun:test";
import { EnginePair, type AppConn } from "../../support/engine-pair.ts";
import { FaultReporter } from "../../../src/host/control/faults.ts";
import { REPORT_MS } from "../../../src/host/control/quiet-periods.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { Stack } from "../../../src/stack/stack.ts";
import { FlowSecret } from "../../../src/stack/secret.ts";
import { DEFAULT_TCP_CONFIG } from "../../../src/stack/tcp/connection.ts";
import { Reactor } from "../../../src/io/reactor.ts";
import { TcpSocket, type TcpSocketOwner } from "../../../src/io/tcp-socket.ts";
import { DialError } from "../../../src/io/dial-error.ts";
import { StackClock } from "../../../src/host/clock.ts";
import { LocalForwards } from "../../../src/host/flows/local-forward.ts";
import { HostKeepalive } from "../../../src/host/flows/tcp-splice.ts";
import { LineSink, Logger } from "../../../src/host/control/log.ts";
import type { Resolver } from "../../../src/host/control/resolve.ts";
import { applyForwardDefaults, parseForwardSpec } from "../../../src/cli/forward.ts";
import { EAGAIN } from "../../../ffi/libc.ts";
import { waitUntil } from "../../support/rig.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../../src/wire/guest-net.ts";

/** Collects the faults `stats` reports, as main's FaultReporter would print them. */
function collect(stats: Stats): unknown[] {
  const seen: unknown[] = [];
  stats.onFault = (_where, e) => seen.push(e);
  return seen;
}

/** Makes the app's onData throw, as a buggy host splice would. */
function throwOnData(app: AppConn): void {
  app.onData = () => {
    throw new Error("bug in onData");
  };
}

/** An established connection A -> B, with some data both ways to show it works. */
function established(pair: EnginePair, port: number): { a: AppConn; b: AppConn } {
  const a = pair.connect("A", port);
  pair.runUntil(() => a.established && pair.b.lastApp.established, "handshake");
  return { a, b: pair.b.lastApp };
}

describe("the engine confines a throw to its connection", () => {
  test("a host handler that throws in onData: that connection is reset both ways and counted; another one carries on", () => {
    const pair = new EnginePair();
    const faults = collect(pair.b.stats);
    const one = established(pair, 80);
    const two = established(pair, 81);
    throwOnData(one.b);

    one.a.send("boom");
    two.a.send("fine");
    pair.runUntil(() => one.a.closed !== null && two.b.received === 4, "fault and data");
    // The guest side (A) got our RST; the host side heard "aborted" and resets its peer.
    expect(one.a.closed).toBe("reset");
    expect(one.b.closed).toBe("aborted");
    expect(pair.b.stats.faultCount("tcp-connection")).toBe(1);
    expect((faults[0] as Error).message).toBe("bug in onData");
    expect(pair.b.stack.tcp.connectionCount).toBe(1);

    // The other connection is untouched, both ways.
    expect(two.b.text()).toBe("fine");
    two.b.send("back");
    pair.runUntil(() => two.a.received === 4, "reply");
    expect(two.a.text()).toBe("back");
    expect(two.a.closed).toBeNull();
  });

  test("a connection timer that throws aborts that connection", () => {
    const pair = new EnginePair();
    collect(pair.a.stats);
    const one = established(pair, 80);
    const two = established(pair, 81);
    (one.a.conn as unknown as { onTimer(now: number): void }).onTimer = () => {
      throw new Error("bug in a timer");
    };
    // Lost data arms the retransmission timer.
    pair.dropFrom("A", (p) => p !== null && p.payloadLen > 0 && p.dport === 80);
    one.a.send("lost");
    pair.runUntil(() => one.b.closed !== null, "the abort's RST");
    expect(one.a.closed).toBe("aborted");
    expect(one.b.closed).toBe("reset");
    expect(pair.a.stats.faultCount("tcp-connection")).toBe(1);
    two.a.send("fine");
    pair.runUntil(() => two.b.received === 4, "data on the other connection");
  });

  test("a connect request handler that throws refuses that SYN; the next one is served", () => {
    const pair = new EnginePair();
    collect(pair.b.stats);
    const side = pair.b;
    const accept = side.tcpConnectRequest.bind(side);
    let first = true;
    side.tcpConnectRequest = (conn) => {
      if (first) {
        first = false;
        throw new Error("bug in tcpConnectRequest");
      }
      accept(conn);
    };
    const refused = pair.connect("A", 80);
    pair.runUntil(() => refused.closed !== null, "refusal");
    expect(refused.closed).toBe("refused");
    expect(pair.b.stats.faultCount("tcp-connection")).toBe(1);
    expect(pair.b.stack.tcp.connectionCount).toBe(0);
    const ok = pair.connect("A", 80);
    pair.runUntil(() => ok.established, "second handshake");
  });

  test("when closing the connection throws too, it still leaves the table", () => {
    const pair = new EnginePair();
    collect(pair.b.stats);
    const one = established(pair, 80);
    throwOnData(one.b);
    one.b.onClosed = () => {
      throw new Error("bug in onClosed");
    };
    one.a.send("boom");
    pair.runUntil(() => one.a.closed !== null, "RST");
    expect(pair.b.stats.faultCount("tcp-connection")).toBe(2);
    expect(pair.b.stack.tcp.connectionCount).toBe(0);
  });

  test("a throw outside any connection drops that frame only", () => {
    const pair = new EnginePair();
    collect(pair.b.stats);
    let first = true;
    const side = pair.b;
    const open = side.udpNewFlow.bind(side);
    side.udpNewFlow = (flow) => {
      if (first) {
        first = false;
        throw new Error("bug in udpNewFlow");
      }
      return open(flow);
    };
    const a = pair.a.stack.udp.openV4(pair.a.v4, 0, pair.b.v4, 53, { onDatagram() {}, onClosed() {} }, pair.now);
    a.send(new Uint8Array([1]), 0, 1, pair.now);
    pair.run(() => false, 10);
    const total = pair.b.stats.faultTable().reduce((n, [, c]) => n + c, 0);
    expect(total).toBe(1);
    a.send(new Uint8Array([2]), 0, 1, pair.now);
    pair.runUntil(() => side.udpApps.length === 1 && side.udpApps[0]!.datagrams.length === 1, "the next datagram");
  });

  test("without a listener the error is thrown on, so unit tests and the fuzzer see the bug itself", () => {
    const pair = new EnginePair();
    const one = established(pair, 80);
    throwOnData(one.b);
    one.a.send("boom");
    expect(() => pair.runUntil(() => one.a.closed !== null, "RST")).toThrow("bug in onData");
  });
});

describe("FaultReporter", () => {
  test("one line per call site per REPORT_MS, the first with the stack trace, later ones with the count hidden", () => {
    const lines: string[] = [];
    const clock = { now: 0 };
    const pair = new EnginePair();
    const stats = pair.b.stats;
    new FaultReporter((l) => lines.push(l), () => clock.now).attach(stats);
    const e = new TypeError("x is undefined");
    stats.fault("tcp-connection", e);
    stats.fault("tcp-connection", e);
    stats.fault("io-handler", new Error("other"));
    expect(lines.length).toBe(2);
    const first = lines[0]!.split("\n");
    expect(first[0]).toBe("[!] Internal error in tcp-connection, confined to its flow: TypeError: x is undefined");
    expect(first.length).toBeGreaterThan(1);
    expect(first[1]).toMatch(/^\s+at /);
    expect(lines[1]!.split("\n")[0]).toBe("[!] Internal error in io-handler, confined to its flow: Error: other");
    clock.now = REPORT_MS;
    stats.fault("tcp-connection", e);
    expect(lines[2]).toBe("[!] Internal error in tcp-connection, confined to its flow: TypeError: x is undefined; 1 more since the last report");
    expect(stats.faultTable()).toEqual([
      ["io-handler", 1],
      ["tcp-connection", 3],
    ]);
  });
});

describe("-L when every guest-side port is taken", () => {
  test("the new client is reset at once and counted (local-fwd-ports); nothing throws in the reactor", async () => {
    // The engine's frames go nowhere: like a guest that drops our SYNs, so
    // every connection toward it stays in SYN-SENT holding its port.
    const stats = new Stats();
    const errors: unknown[] = [];
    stats.onFault = (_where, e) => errors.push(e);
    const reactor = new Reactor();
    reactor.start();
    reactor.setFaultSink(stats);
    const clock = new StackClock();
    const caps = { medium: "ip" as const, mtu: 1500, txChecksumOffload: false, txTcpSegmentation: false };
    const stack = new Stack(caps, { transmit() {} }, { tcpConnectRequest() {}, udpNewFlow: () => false }, stats, {
      mac: new Uint8Array(6),
      netV4: DEFAULT_GUEST_NET_V4,
      gatewayV6: new Uint8Array(16),
      tcp: { ...DEFAULT_TCP_CONFIG, maxConnections: 40_000 },
      secret: new FlowSecret(new Uint8Array(16)),
    });
    clock.attach(stack, stats);
    reactor.setSettle(clock.settle);
    const spec = applyForwardDefaults(parseForwardSpec("tcp://127.0.0.1:0:10.0.2.100:9", "local"), "local");
    const fwd = new LocalForwards([spec], { resolveLabel: () => Promise.reject(new Error("no names here")) } as unknown as Resolver);
    const listen: string[] = [];
    const log = new Logger(false, { stdout: new LineSink(-1), stderr: new LineSink(-1) });
    log.listen = (l: string) => listen.push(l);
    const held = { onEstablished() {}, onData: () => 0, onReadable() {}, onPeerFin() {}, onSendSpace() {}, onClosed() {} };
    try {
      await fwd.start(
        {
          stack,
          clock,
          log,
          stats,
          gateways: { v4: { family: 4, bytes: new Uint8Array([10, 0, 2, 2]) }, v6: { family: 6, bytes: new Uint8Array(16) } },
          keepalive: new HostKeepalive(),
          reactor,
          maxClients: 0,
          proxyHeaderTimeoutMs: 0,
        },
        (line) => {
          throw new Error(line);
        },
      );
      const port = Number(listen[0]!.slice(listen[0]!.lastIndexOf(":") + 1));
      // Every local port from 10.0.2.2 toward 10.0.2.100:9 is in use.
      for (let i = 0; i <= 28232; i++) {
        const p = stack.tcp.freePortV4(GATEWAY, GUEST, 9);
        if (p === 0) break;
        stack.tcp.connectV4(GATEWAY, p, GUEST, 9, held, clock.now());
      }
      expect(stack.tcp.connectionCount).toBe(28232);
      const client = new Recorder();
      const c = TcpSocket.dial(reactor, new Uint8Array([127, 0, 0, 1]), port, null, client);
      if (c instanceof DialError) throw new Error(c.text);
      await waitUntil("the client's reset", () => client.error !== 0 || client.eof, 3000, 2);
      expect(client.error).toBe(104);
      expect(stats.limitCount("local-fwd-ports")).toBe(1);
      expect(errors).toEqual([]);
      expect(stack.tcp.connectionCount).toBe(28232);
      c.close();
    } finally {
      fwd.stop();
      clock.stop();
      reactor.stop();
    }
  });
});

const GATEWAY = 0x0a000202;
const GUEST = 0x0a000264;

/** A client socket's owner: records its outcome and reads what comes. */
class Recorder implements TcpSocketOwner {
  error = 0;
  eof = false;
  private readonly buf = new Uint8Array(new ArrayBuffer(4096));
  tcpConnected(_s: TcpSocket, err: number): void {
    if (err !== 0) this.error = err;
  }
  tcpReadable(s: TcpSocket): void {
    for (;;) {
      const n = s.read(this.buf, 0, this.buf.length);
      if (n === 0) this.eof = true;
      else if (n < 0 && n !== -EAGAIN) this.error = -n;
      if (n <= 0) return;
    }
  }
  tcpWritable(): void {}
  tcpFault(): void {}
}
