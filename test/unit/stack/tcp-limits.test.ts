// The TCP caps: connections in every state, SYN-RECEIVED connections,
// handshakes waiting for the host, and the global budget for buffer
// storage (send, receive and out-of-order together). Virtual clock.
import { describe, expect, test } from "bun:test";
import { Harness, Guest, SYN, ACK } from "../../support/tcp-harness.ts";
import { A_V4, AppConn, EnginePair, type TraceEntry } from "../../support/engine-pair.ts";
import { inetChecksum, ipv4Packet } from "../../support/frames.ts";
import { TcpState, type TcpConnection } from "../../../src/stack/tcp/connection.ts";
import { MIN_CONN_BYTES } from "../../../src/stack/tcp/budget.ts";

/** Storage held by a stack's connections: what the budget bounds. */
function storage(conns: Iterable<TcpConnection>): number {
  let n = 0;
  for (const c of conns) n += c.sendBuf.capacity + c.rcvBuf.capacity + c.ooo.bytes;
  return n;
}

/** A SYN to A's port 80 from 198.18.0.0/15, an address nobody on the link owns (as a SYN flood forges them). */
function forgedSyn(i: number): Uint8Array {
  const src = Uint8Array.of(198, 18 + ((i >> 16) & 1), (i >> 8) & 255, i & 255);
  const dst = Uint8Array.of(A_V4 >>> 24, (A_V4 >>> 16) & 255, (A_V4 >>> 8) & 255, A_V4 & 255);
  const tcp = new Uint8Array(20);
  const v = new DataView(tcp.buffer);
  v.setUint16(0, 1024 + (i % 60000));
  v.setUint16(2, 80);
  v.setUint32(4, (i * 2654435761) >>> 0);
  tcp[12] = 5 << 4;
  tcp[13] = SYN;
  v.setUint16(14, 65535);
  const pseudo = new Uint8Array(12 + 20);
  pseudo.set(src, 0);
  pseudo.set(dst, 4);
  pseudo[9] = 6;
  pseudo[11] = 20;
  pseudo.set(tcp, 12);
  v.setUint16(16, inetChecksum(pseudo));
  return ipv4Packet({ src, dst, protocol: 6, id: i & 0xffff, payload: tcp });
}

/**
 * Forged SYNs `from`..`from`+n-1 onto the link toward A. What A sends to
 * the forged sources is lost (B's engine would answer anything, as ours
 * does, so it must not see them).
 */
function flood(pair: EnginePair, from: number, n: number): void {
  pair.ab.filter = (p) => p === null || !p.dst.startsWith("198.18.");
  for (let i = from; i < from + n; i++) {
    const f = forgedSyn(i);
    pair.ba.transmit(f, 0, f.length, null);
  }
}

function inState(pair: EnginePair, state: TcpState): number {
  let n = 0;
  for (const c of pair.a.tcp.connections()) if (c.state === state) n++;
  return n;
}

describe("a full half-open table does not lock out new connections", () => {
  test("every SYN-RECEIVED place taken by a forged handshake: the guest's retransmitted SYN evicts the oldest, gets its SYN-ACK and completes", () => {
    const pair = new EnginePair({ tcpA: { maxSynReceived: 8 } });
    flood(pair, 0, 8);
    pair.advance(5);
    expect(inState(pair, TcpState.SynReceived)).toBe(8);
    const oldest = pair.a.apps[0]!;
    // The guest's first SYN is refused like a forged one (it is not known
    // to be live yet); the one it sends again after its 1 s timeout is admitted.
    const g = pair.connect("B", 80);
    pair.advance(500);
    expect(g.established).toBe(false);
    expect(pair.a.stats.limitCount("tcp-syn-received")).toBe(1);
    pair.advance(600);
    expect(g.established).toBe(true);
    expect(pair.a.lastApp.established).toBe(true);
    expect(oldest.closed).toBe("timeout");
    expect(pair.a.apps.slice(1, 8).every((a) => a.closed === null)).toBe(true);
    expect(inState(pair, TcpState.SynReceived)).toBe(7);
    expect(pair.a.stats.limitCount("tcp-syn-received")).toBe(2);
    // The flood goes on, 100 SYNs in one batch. With one SYN-RECEIVED
    // place free, the first 8 fill the places waiting for the host (all
    // accepted later: at most 2 * 8 - 1 SYN-RECEIVED); the other 92, each
    // sent once, are refused, start no host connect and evict nothing.
    const server = pair.a.lastApp;
    flood(pair, 8, 100);
    pair.advance(5);
    expect(pair.a.requests.length).toBe(9 + 8);
    expect(pair.a.stats.limitCount("tcp-syn-pending")).toBe(92);
    expect(pair.a.stats.limitCount("tcp-syn-received")).toBe(2);
    expect(inState(pair, TcpState.SynReceived)).toBe(7 + 8);
    expect(pair.a.apps.slice(1, 8).every((a) => a.closed === null)).toBe(true);
    expect(server.conn.state).toBe(TcpState.Established);
    g.send("after the flood");
    pair.advance(20);
    expect(server.text()).toBe("after the flood");
  });

  test("every place waiting for the host connect taken: the guest's retransmitted SYN abandons the oldest connect and is answered once its own connect succeeds", () => {
    const pair = new EnginePair({ tcpA: { maxSynReceived: 4 } });
    // Host connects that hang (a destination that drops SYNs).
    pair.a.acceptDelayMs = 60_000;
    flood(pair, 0, 4);
    pair.advance(5);
    expect(inState(pair, TcpState.SynPending)).toBe(4);
    const oldest = pair.a.apps[0]!;
    pair.a.acceptDelayMs = 0;
    const g = pair.connect("B", 80);
    pair.advance(500);
    expect(g.established).toBe(false);
    expect(pair.a.stats.limitCount("tcp-syn-pending")).toBe(1);
    pair.advance(600);
    expect(g.established).toBe(true);
    // The host side heard the abandoned handshake end (it closes its connecting socket).
    expect(oldest.closed).toBe("timeout");
    expect(inState(pair, TcpState.SynPending)).toBe(3);
    expect(pair.a.stats.limitCount("tcp-syn-pending")).toBe(2);
  });
});

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

describe("host bytes before the handshake completes", () => {
  test("a SYN-RECEIVED connection takes no host bytes (a SYN flood to a server that talks first buffers nothing); once established it does, and its handler hears it", () => {
    const h = new Harness();
    const g = new Guest(h);
    g.syn();
    g.readSynAck();
    const c = h.conn;
    expect(c.state).toBe(TcpState.SynReceived);
    expect(c.sendRoom).toBe(0);
    expect(c.reserveSend()).toBe(0);
    expect(c.sendBuf.capacity).toBe(0);
    g.send({ flags: ACK });
    expect(c.state).toBe(TcpState.Established);
    expect(h.app.established).toBe(true);
    expect(c.sendRoom).toBeGreaterThan(0);
    expect(c.reserveSend()).toBeGreaterThan(0);
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
