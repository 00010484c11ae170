// The TCP caps: connections in every state, SYN-RECEIVED connections,
// handshakes waiting for the host, and the global budget for buffer
// storage (send, receive and out-of-order together). Virtual clock.
import { describe, expect, test } from "bun:test";
import { Harness, Guest, SYN, ACK } from "../../support/tcp-harness.ts";
import { AppConn, EnginePair, type TraceEntry } from "../../support/engine-pair.ts";
import { TcpState, type TcpConnection } from "../../../src/stack/tcp/connection.ts";
import { MIN_CONN_BYTES } from "../../../src/stack/tcp/budget.ts";

/** Storage held by a stack's connections: what the budget bounds. */
function storage(conns: Iterable<TcpConnection>): number {
  let n = 0;
  for (const c of conns) n += c.sendBuf.capacity + c.rcvBuf.capacity + c.ooo.bytes;
  return n;
}

describe("SYN-RECEIVED and pending handshakes", () => {
  test("a SYN flood beyond maxSynReceived SYN-RECEIVED connections is dropped and counted; the half-open ones give up early", () => {
    const h = new Harness({ tcp: { maxSynReceived: 8 } });
    // Forged SYNs that never complete the handshake: each is accepted by
    // the host side (a completed host connect), then waits in SYN-RECEIVED.
    for (let i = 0; i < 50; i++) h.inject(h.build(20000 + i, 80, { seq: i * 1000, flags: SYN }));
    expect(h.requests.length).toBe(8);
    expect(h.stack.tcp.connectionCount).toBe(8);
    expect([...h.stack.tcp.connections()].every((c) => c.state === TcpState.SynReceived)).toBe(true);
    expect(h.stats.limitCount("tcp-syn-received")).toBe(42);
    // Beyond half the cap, a SYN-ACK goes twice, not six times: half the
    // places are free after about 3 s rather than 63 s.
    h.advance(3_500);
    expect(h.stack.tcp.connectionCount).toBe(4);
    expect(h.apps.filter((a) => a.closed === "timeout").length).toBe(4);
    h.inject(h.build(30000, 80, { seq: 1, flags: SYN }));
    expect(h.requests.length).toBe(9);
  });

  test("a guest completing its handshake frees its SYN-RECEIVED place", () => {
    const h = new Harness({ tcp: { maxSynReceived: 2 } });
    const g1 = new Guest(h, { sport: 41000 });
    g1.handshake();
    expect(h.app.established).toBe(true);
    for (let i = 0; i < 2; i++) h.inject(h.build(20000 + i, 80, { seq: i, flags: SYN }));
    h.take();
    h.inject(h.build(20002, 80, { seq: 9, flags: SYN }));
    h.none();
    expect(h.stats.limitCount("tcp-syn-received")).toBe(1);
    expect(h.stack.tcp.connectionCount).toBe(3);
  });

  test("the cap on handshakes waiting for the host is reported as a limit", () => {
    const h = new Harness({ tcp: { maxSynReceived: 4 } });
    h.policy = "hold";
    for (let i = 0; i < 6; i++) h.inject(h.build(20000 + i, 80, { seq: i, flags: SYN }));
    expect(h.requests.length).toBe(4);
    expect(h.stats.limitCount("tcp-syn-pending")).toBe(2);
  });
});

describe("connection cap", () => {
  test("at maxConnections a new SYN is dropped and a -L open is refused; TIME-WAIT makes room", () => {
    const h = new Harness({ tcp: { maxConnections: 5 } });
    const guests: Guest[] = [];
    for (let i = 0; i < 5; i++) {
      const g = new Guest(h, { sport: 42000 + i });
      g.handshake();
      guests.push(g);
    }
    h.take();
    expect(h.stack.tcp.connectionCount).toBe(5);
    new Guest(h, { sport: 43000 }).syn();
    h.none();
    expect(h.requests.length).toBe(5);
    expect(h.stats.limitCount("tcp-connections")).toBe(1);

    // -L: the open is refused, and the host side hears it at the next poll.
    const fwd = new AppConn(null, h);
    fwd.conn = h.stack.tcp.connectV4(0xc0000201, 0, 0x0a000264, 8080, fwd, h.now);
    expect(fwd.closed).toBe(null);
    h.advance(0);
    expect(fwd.closed).toBe("refused");
    h.none();
    expect(h.stats.limitCount("tcp-connections")).toBe(2);
    expect(h.stack.tcp.connectionCount).toBe(5);

    // We close one first: it ends in TIME-WAIT, which a new SYN may reap.
    const g0 = guests[0]!;
    h.apps[0]!.conn.shutdownWrite(h.now);
    g0.absorb(h.one());
    g0.send({ flags: ACK | 0x01 });
    g0.seq++;
    h.take();
    expect(h.apps[0]!.conn.state).toBe(TcpState.TimeWait);
    const late = new Guest(h, { sport: 43001 });
    late.handshake();
    expect(h.app.established).toBe(true);
    expect(h.stack.tcp.connectionCount).toBe(5);
  });
});

describe("buffer budget", () => {
  const BUDGET = 2 * 1024 * 1024;

  /** N guest connections downloading from stack A into guests that never read (their windows close). */
  function stalledDownloads(pair: EnginePair, n: number): AppConn[] {
    pair.a.onAccept = (app) => app.writeStream(64 << 20, false);
    const guests: AppConn[] = [];
    for (let i = 0; i < n; i++) {
      const g = pair.connect("B", 80);
      g.readMode = "manual";
      guests.push(g);
    }
    pair.run(() => false, 20_000);
    return guests;
  }

  test("connections downloading into zero windows stay within the budget (plus each one's minimum)", () => {
    const pair = new EnginePair({ tcpA: { bufferBudget: BUDGET }, tcpB: { rcvBuf: 64 * 1024 } });
    const guests = stalledDownloads(pair, 64);
    expect(guests.every((g) => g.established && g.buffered > 0)).toBe(true);
    const held = storage(pair.a.tcp.connections());
    expect(held).toBeLessThanOrEqual(BUDGET + 64 * MIN_CONN_BYTES);
    expect(pair.a.stats.limitCount("tcp-buffer-bytes")).toBeGreaterThan(0);
  });

  test("with the budget spent by stalled downloads, a new connection still completes a transfer", () => {
    const pair = new EnginePair({ tcpA: { bufferBudget: BUDGET }, tcpB: { rcvBuf: 64 * 1024 } });
    stalledDownloads(pair, 64);
    expect(pair.a.stats.limitCount("tcp-buffer-bytes")).toBeGreaterThan(0);
    pair.a.onAccept = (app) => app.writeStream(1 << 20, true);
    const fresh = pair.connect("B", 80);
    fresh.collect = false;
    pair.runUntil(() => fresh.peerFin, "the fresh download", 120_000);
    expect(fresh.received).toBe(1 << 20);
    expect(fresh.checker.firstMismatch).toBe(-1);
  });

  test("under pressure receive windows shrink without retracting an advertised edge, and recover once the host reads", () => {
    const N = 16;
    const EACH = 512 * 1024;
    const pair = new EnginePair({ tcpA: { bufferBudget: 1 << 20 }, trace: true });
    const hosts: AppConn[] = [];
    pair.a.onAccept = (app) => {
      app.readMode = "manual";
      app.collect = false;
      hosts.push(app);
    };
    const guests: AppConn[] = [];
    for (let i = 0; i < N; i++) {
      const g = pair.connect("B", 80);
      g.writeStream(EACH, true);
      guests.push(g);
    }
    pair.run(() => false, 30_000);
    // The host reads nothing: what is buffered is bounded by the budget.
    const buffered = hosts.reduce((n, h) => n + h.buffered, 0);
    expect(buffered).toBeLessThanOrEqual((1 << 20) + N * MIN_CONN_BYTES);
    expect(buffered).toBeLessThan(N * EACH);
    expect(pair.a.stats.limitCount("tcp-buffer-bytes")).toBeGreaterThan(0);
    // Now it reads: every upload completes, byte-exact.
    const drain = (): void => {
      for (const h of hosts) h.read();
      pair.after(1, drain);
    };
    drain();
    pair.runUntil(() => hosts.length === N && hosts.every((h) => h.peerFin && h.buffered === 0 && h.received === EACH), "the uploads", 600_000);
    expect(hosts.every((h) => h.checker.firstMismatch === -1)).toBe(true);
    // The right edge A advertised never moved left on any connection (by
    // more than the scaling rounds off, RFC 7323 §2.4).
    expect(retractedEdges(pair.trace)).toEqual([]);
  });
});

/**
 * Connections (by port pair) on which A advertised a right edge left of
 * one it advertised before, by a unit of its window scale or more (a
 * scaled window is rounded down, so the announced edge may step back by
 * less than a unit; the edge the stack holds itself to never does).
 */
function retractedEdges(trace: TraceEntry[]): string[] {
  const shift = new Map<string, number>();
  const edge = new Map<string, number>();
  const bad: string[] = [];
  for (const t of trace) {
    const p = t.p;
    if (t.dir !== "A>B" || p === null || p.proto !== "tcp") continue;
    const key = `${p.sport}>${p.dport}`;
    if (p.flags & SYN) {
      shift.set(key, Math.max(0, p.options.windowScale));
      continue;
    }
    if (!(p.flags & ACK)) continue;
    const e = (p.ack + p.window * 2 ** (shift.get(key) ?? 0)) >>> 0;
    const prev = edge.get(key);
    if (prev !== undefined && ((e - prev) | 0) <= -(2 ** (shift.get(key) ?? 0)) && !bad.includes(key)) bad.push(key);
    if (prev === undefined || ((e - prev) | 0) > 0) edge.set(key, e);
  }
  return bad;
}
