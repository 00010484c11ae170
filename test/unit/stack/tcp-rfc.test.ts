// RFC conformance of the TCP engine toward a hand-driven guest (Harness +
// Guest, virtual clock): persist mode, options and the MSS, timestamps,
// RFC 5961 throttling, zero windows, silly window avoidance, congestion
// window restart, and a host side that closes the connection re-entrantly.
import { describe, expect, test } from "bun:test";
import { Harness, Guest, setup, ACK, FIN, PSH, RST, SYN, GUEST_V4, SERVER_V4, SERVER_V6 } from "../../support/tcp-harness.ts";
import { AppConn } from "../../support/engine-pair.ts";
import type { TxMeta } from "../../../src/stack/device.ts";
import type { TcpHandler } from "../../../src/stack/tcp/connection.ts";

const u32 = (x: number): number => x >>> 0;


describe("the window of our SYN and SYN-ACK (RFC 7323 §2.2)", () => {
  // A guest ISS of 100 puts RCV.NXT below 2^31, 0x90000000 above it: an
  // edge left relative to RCV.NXT = 0 reads as a huge window in the second.
  test("a passive open's SYN-ACK offers the receive buffer, whatever the guest's ISS", () => {
    for (const iss of [100, 0x90000000]) {
      const h = new Harness({ tcp: { rcvBuf: 10_000 } });
      const g = new Guest(h, { iss });
      g.syn();
      expect(g.readSynAck().window).toBe(10_000);
    }
  });

  test("an active open's ACK of the SYN-ACK offers the receive buffer, whatever the guest's ISS", () => {
    for (const iss of [100, 0x90000000]) {
      const h = new Harness({ tcp: { rcvBuf: 1428 } });
      const app = new AppConn(null, h);
      app.conn = h.stack.tcp.connectV4(SERVER_V4, 0, GUEST_V4, 22, app, h.now);
      const syn = h.one();
      expect(syn.window).toBe(1428);
      h.inject(h.build(22, syn.sport, { seq: iss, ack: u32(syn.seq + 1), flags: SYN | ACK, window: 65535, mss: 1460 }));
      const ack = h.one();
      expect([ack.flags, ack.window]).toEqual([ACK, 1428]);
    }
  });
});

describe("an open toward an address that is not unicast (RFC 9293 §3.9.1.1, MUST-46)", () => {
  test("multicast and the limited broadcast (IPv4), multicast (IPv6): refused, nothing sent", () => {
    const h = new Harness();
    const targets: Array<[4 | 6, number | Uint8Array]> = [
      [4, 0xe0000001], // 224.0.0.1
      [4, 0xefffffff], // 239.255.255.255
      [4, 0xffffffff], // 255.255.255.255
      [6, new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])], // ff02::1
    ];
    const apps = targets.map(([family, to]) => {
      const app = new AppConn(null, h);
      app.conn =
        family === 4
          ? h.stack.tcp.connectV4(SERVER_V4, 0, to as number, 22, app, h.now)
          : h.stack.tcp.connectV6(SERVER_V6, 0, to as Uint8Array, 22, app, h.now);
      return app;
    });
    h.advance(1);
    h.none();
    expect(apps.map((a) => a.closed)).toEqual(["refused", "refused", "refused", "refused"]);
    expect(h.stats.dropCount("tcp-open-not-unicast")).toBe(4);
    expect(h.stack.tcp.connectionCount).toBe(0);
    // A unicast address still gets its SYN.
    const app = new AppConn(null, h);
    app.conn = h.stack.tcp.connectV4(SERVER_V4, 0, GUEST_V4, 22, app, h.now);
    expect(h.one().flags).toBe(SYN);
  });
});

describe("persist mode (RFC 9293 §3.8.6.1)", () => {
  /** Data queued behind a window the guest closed; returns the probed sequence number. */
  function closeWindow(h: Harness, g: Guest, app: ReturnType<Guest["handshake"]>): number {
    app.send(new Uint8Array(100));
    const s = h.one().seq;
    g.ack = u32(s + 100);
    g.send({ window: 0 });
    app.send(new Uint8Array(1000));
    h.none();
    return g.ack;
  }

  test("a guest that goes silent behind a zero window is aborted after the user timeout", () => {
    const { h, g, app } = setup({}, { tcp: { userTimeoutMs: 10_000 } });
    const probed = closeWindow(h, g, app);
    const t0 = h.now;
    h.advance(30_000);
    const out = h.take().map((x) => [x.at - t0, x.p.flags, x.p.seq, x.p.payloadLen]);
    // Probes of the first byte with doubling intervals, then the abort
    // once the first probe has gone unanswered for the user timeout.
    expect(out).toEqual([
      [200, ACK | PSH, probed, 1],
      [600, ACK | PSH, probed, 1],
      [1400, ACK | PSH, probed, 1],
      [3000, ACK | PSH, probed, 1],
      [6200, ACK | PSH, probed, 1],
      [10_200, RST | ACK, probed, 0],
    ]);
    expect(app.closed).toBe("timeout");
    expect(h.stack.tcp.connectionCount).toBe(0);
  });

  test("a guest that answers every probe with a zero window stays connected; probes back off to the cap", () => {
    const { h, g, app } = setup({}, { tcp: { userTimeoutMs: 100_000 } });
    const probed = closeWindow(h, g, app);
    const t0 = h.now;
    const at: number[] = [];
    while (h.now - t0 < 600_000) {
      h.advanceToNext();
      for (const x of h.take()) {
        expect([x.p.flags, x.p.seq, x.p.payloadLen]).toEqual([ACK | PSH, probed, 1]);
        at.push(x.at - t0);
        g.send({ window: 0 });
      }
    }
    expect(app.closed).toBe(null);
    // Intervals double up to the 60 s cap, then stay there.
    const gaps = at.map((t, i) => t - (at[i - 1] ?? 0));
    expect(gaps.slice(0, 10)).toEqual([200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 51_200, 60_000]);
    expect(Math.max(...gaps)).toBe(60_000);
    // The guest falls silent: the connection ends the user timeout after
    // the first probe it does not answer.
    const t1 = h.now;
    h.advance(200_000);
    expect(app.closed).toBe("timeout");
    const out = h.take();
    const firstUnanswered = out[0]!;
    expect(firstUnanswered.p.payloadLen).toBe(1);
    expect(firstUnanswered.at - t1).toBeLessThanOrEqual(60_000);
    const rst = out.find((x) => x.p.flags & RST)!;
    expect(rst.at - firstUnanswered.at).toBe(100_000);
  });
});

describe("our FIN and a zero window (RFC 9293 §3.10.7.4)", () => {
  test("the FIN waits behind a zero window, probes draw the window, and it goes once the window opens", () => {
    const { h, g, app } = setup({}, { tcp: { userTimeoutMs: 10_000 } });
    app.send(new Uint8Array(100));
    const d = h.one();
    g.ack = u32(d.seq + 100);
    g.send({ window: 0 });
    app.conn.shutdownWrite(h.now);
    // A FIN occupies a sequence number: a zero window does not take it.
    h.none();
    expect(app.conn.stateName).toBe("ESTABLISHED");
    // Probes: ACKs of SND.UNA-1, outside the guest's window, with backoff.
    const t0 = h.now;
    h.advance(700);
    expect(h.take().map((x) => [x.at - t0, x.p.flags, x.p.seq, x.p.payloadLen])).toEqual([
      [200, ACK, u32(g.ack - 1), 0],
      [600, ACK, u32(g.ack - 1), 0],
    ]);
    // The guest answers a probe with its window still shut, then opens it.
    g.send({ window: 0 });
    h.none();
    g.send({ window: 1000 });
    const fin = h.one();
    expect([fin.flags, fin.seq]).toEqual([FIN | ACK, g.ack]);
    expect(app.conn.stateName).toBe("FIN-WAIT-1");
    g.ack = u32(g.ack + 1);
    g.send({ window: 1000 });
    expect(app.conn.stateName).toBe("FIN-WAIT-2");
  });

  test("a FIN waiting behind a zero window whose probes go unanswered ends after the user timeout", () => {
    const { h, g, app } = setup({}, { tcp: { userTimeoutMs: 10_000 } });
    app.send(new Uint8Array(100));
    g.ack = u32(h.one().seq + 100);
    g.send({ window: 0 });
    app.conn.shutdownWrite(h.now);
    h.advance(30_000);
    expect(app.closed).toBe("timeout");
  });
});

describe("unacceptable segments (RFC 9293 §3.10.7.4)", () => {
  test("segments outside the window are no sign of life: the user timeout still ends the connection", () => {
    const { h, g, app } = setup({}, { tcp: { userTimeoutMs: 10_000 } });
    app.send(new Uint8Array(100));
    h.one();
    // The guest never acknowledges the data; it sends only segments our
    // window does not take (an old sequence number), each of which draws
    // an ACK it cannot use either: a ping-pong that proves nothing.
    for (let t = 0; t < 30_000 && app.closed === null; t += 100) {
      g.send({ seq: u32(g.seq - 1) });
      h.advance(100);
    }
    expect(app.closed).toBe("timeout");
  });

  test("bare segments outside the window draw at most one ACK every 500 ms; old data one each", () => {
    const { h, g } = setup();
    const t0 = h.now;
    for (let i = 0; i < 20; i++) {
      g.send({ seq: u32(g.seq - 1) }); // a bare ACK (keepalive-like)
      g.send({ seq: u32(g.seq + 4_000_000) }); // far beyond the window
      h.advance(50);
    }
    expect(h.take().map((x) => [x.at - t0, x.p.flags, x.p.seq === g.ack])).toEqual([
      [0, ACK, true],
      [500, ACK, true],
    ]);
    expect(h.stats.dropCount("tcp-oow-ack-limit")).toBe(38);
    // Old data and an old FIN still get their ACK every time: no ACK loop
    // runs on them (each needs a new segment with data from the guest).
    g.data("hello");
    h.advance(100);
    h.take();
    for (let i = 0; i < 3; i++) g.send({ seq: u32(g.seq - 5), flags: ACK | PSH, payload: "hello" });
    expect(h.take().length).toBe(3);
  });
});

describe("options count against the MSS (RFC 9293 §3.7.1, RFC 6691)", () => {
  /** Leaves three holes in what the guest sends, so our ACKs carry SACK blocks. */
  function holes(g: Guest): void {
    for (let i = 1; i <= 4; i++) g.send({ seq: u32(g.seq + i * 1000), flags: ACK, payload: 500 });
  }

  for (const ts of [true, false]) {
    test(`segments carrying SACK blocks${ts ? " and timestamps" : ""} fit the MTU`, () => {
      const { h, g, app } = setup({ sackOk: true, ts, ws: 7 }, { mtu: 1500 });
      holes(g);
      expect(h.take().length).toBe(4);
      app.send(new Uint8Array(30_000));
      const out = h.take().map((x) => x.p);
      expect(out.length).toBeGreaterThan(5);
      // Timestamps: 12 bytes and three blocks (28); without: four blocks (36).
      const opts = ts ? 12 + 28 : 36;
      for (const p of out) {
        expect(p.fragment).toBe(false);
        expect(p.options.sackCount).toBe(ts ? 3 : 4);
        expect(p.ipLen).toBeLessThanOrEqual(1500);
      }
      expect(out[0]!.payloadLen).toBe(1460 - opts);
      expect(out[0]!.ipLen).toBe(1500);
      // The hole filled: no blocks, full segments again.
      g.send({ seq: g.seq, flags: ACK, payload: 5000 });
      h.take();
      app.send(new Uint8Array(3000));
      for (const x of h.take()) expect(x.p.payloadLen).toBeLessThanOrEqual(1460 - (ts ? 12 : 0));
    });
  }

  test("TSO: the device's pieces of a super-segment with SACK blocks fit the MTU", () => {
    const gso: Array<{ hdrLen: number; gsoSize: number }> = [];
    class TsoHarness extends Harness {
      override transmit(buf: Uint8Array, off: number, len: number, meta: TxMeta | null): void {
        if (meta !== null && meta.gsoType !== 0) gso.push({ hdrLen: meta.hdrLen, gsoSize: meta.gsoSize });
        super.transmit(buf, off, len, meta);
      }
    }
    const h = new TsoHarness({ mtu: 1500 });
    h.caps.txTcpSegmentation = true;
    h.caps.txChecksumOffload = true;
    const g = new Guest(h, { sackOk: true, ts: true, ws: 7 });
    const app = g.handshake();
    h.take();
    holes(g);
    h.take();
    app.send(new Uint8Array(30_000));
    const out = h.take().map((x) => x.p);
    expect(out.length).toBeGreaterThan(0);
    expect(gso.length).toBeGreaterThan(0);
    // Headers with 40 bytes of options, and 1420 bytes of payload each.
    for (const m of gso) expect([m.hdrLen, m.gsoSize]).toEqual([80, 1420]);
  });
});

describe("TS.Recent (RFC 7323 §4.3)", () => {
  const HUGE = 0x7000_0000;

  test("a segment without ACK does not move TS.Recent: later segments still pass PAWS", () => {
    const { g, app } = setup({ ts: true });
    g.raw({ seq: g.seq, flags: PSH, payload: "evil", ts: [g.ts + HUGE, g.tsEcr] });
    expect(app.received).toBe(0);
    g.ts += 10;
    g.data("good");
    expect(app.text()).toBe("good");
  });

  test("an ACK of data never sent does not move TS.Recent: later segments still pass PAWS", () => {
    const { h, g, app } = setup({ ts: true });
    g.send({ ack: u32(g.ack + 100_000), ts: [g.ts + HUGE, g.tsEcr] });
    expect(h.one().flags).toBe(ACK);
    g.ts += 10;
    g.data("good");
    expect(app.text()).toBe("good");
    // TSecr of our next segment echoes the good one.
    app.send("x");
    expect(h.one().options.tsEcr).toBe(g.ts);
  });
});

describe("RTT samples from timestamps (RFC 7323 §4, RFC 6298)", () => {
  test("a timeout 25 days ago does not make every later timestamp sample look stale", () => {
    // No keepalive in the way: the connection stays idle for 2^31 ms.
    const { h, g, app } = setup({ ts: true }, { tcp: { keepIdleMs: 2 ** 33 } });
    app.send("a");
    const first = h.one();
    h.advanceToNext(); // RTO: retransmission, backoff 1
    const rxt = h.one();
    expect(rxt.seq).toBe(first.seq);
    g.absorb(rxt);
    g.send({}); // echoes the retransmission: a 0 ms sample, like the handshake's
    expect(h.conn.rtt.srtt).toBe(0);
    h.advance(2 ** 31 + 60_000);
    h.take();
    app.send("b");
    const p = h.one();
    g.absorb(p);
    h.advance(30);
    g.ts += 10;
    g.send({});
    expect(h.conn.rtt.srtt).toBe(30 / 8); // SRTT = 7/8 * 0 + 1/8 * 30
  });
});

describe("challenge ACK throttling (RFC 5961 §7)", () => {
  test("at most one challenge ACK per connection every 500 ms, whatever drew it", () => {
    const { h, g, app } = setup();
    const t0 = h.now;
    // In-window RSTs, SYNs, ACKs of data never sent, ACKs too old: a flood.
    for (let i = 0; i < 60; i++) {
      g.raw({ seq: u32(g.seq + 1000 + i), flags: RST });
      g.raw({ seq: u32(g.seq + 5), flags: SYN, mss: 1460 });
      g.send({ ack: u32(g.ack + 100_000) });
      g.send({ ack: u32(g.ack - 200_000) });
      h.advance(10);
    }
    const out = h.take();
    expect(out.map((x) => [x.at - t0, x.p.flags])).toEqual([
      [0, ACK],
      [500, ACK],
    ]);
    expect(h.stats.dropCount("tcp-challenge-ack-limit")).toBe(4 * 60 - 2);
    expect(app.closed).toBe(null);
    // Nothing else was held back: the exact RST still resets.
    g.raw({ seq: g.seq, flags: RST });
    expect(app.closed).toBe("reset");
  });

  test("each connection has its own budget", () => {
    const h = new Harness();
    const a = new Guest(h, { sport: 40001 });
    const b = new Guest(h, { sport: 40002 });
    a.handshake();
    b.handshake();
    h.take();
    a.raw({ seq: u32(a.seq + 1000), flags: RST });
    b.raw({ seq: u32(b.seq + 1000), flags: RST });
    expect(h.take().map((x) => x.p.dport)).toEqual([40001, 40002]);
  });
});

describe("a zero receive window still takes ACKs and RSTs (RFC 9293 §3.10.7.4)", () => {
  /** Our receive window closed by the guest's data, and our data in flight to it. */
  function shut(): { h: Harness; g: Guest; app: ReturnType<Guest["handshake"]>; sent: number } {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 2048 } });
    app.readMode = "manual";
    g.data(2048);
    h.advance(100);
    expect(h.one().window).toBe(0);
    app.send(new Uint8Array(1000));
    const d = h.one();
    return { h, g, app, sent: u32(d.seq + d.payloadLen) };
  }

  test("the ACK on a zero-window probe at RCV.NXT is processed; its byte is not taken", () => {
    const { h, g, app, sent } = shut();
    g.send({ flags: ACK, ack: sent, payload: 1 }); // the guest's window probe
    expect(h.conn.sndUna).toBe(sent);
    expect(h.conn.sendBuf.length).toBe(0);
    const p = h.one();
    expect([p.flags, p.ack, p.window]).toEqual([ACK, g.seq, 0]);
    expect(app.buffered).toBe(2048);
    // No retransmission of what the guest acknowledged.
    h.advance(5000);
    h.none();
  });

  test("a window update riding on a probe opens our sending", () => {
    const { h, g, app, sent } = shut();
    g.send({ flags: ACK, ack: sent, window: 0 });
    app.send(new Uint8Array(500));
    h.none();
    g.send({ flags: ACK, ack: sent, window: 65535, payload: 1 });
    const out = h.take().map((x) => x.p);
    expect(out.some((p) => p.payloadLen === 500)).toBe(true);
  });

  test("a RST at RCV.NXT with data resets", () => {
    const { g, app } = shut();
    g.send({ flags: RST | ACK, payload: 1 });
    expect(app.closed).toBe("reset");
  });
});

describe("sender-side silly window avoidance (RFC 9293 §3.8.6.2.1, RFC 1122 §4.2.3.4)", () => {
  test("less than a full segment goes out when it is at least half the largest window offered", () => {
    const h = new Harness();
    const g = new Guest(h);
    g.window = 1800; // no window scaling: 1800 bytes, the most it ever offers
    const app = g.handshake();
    h.take();
    app.send(new Uint8Array(500));
    expect(h.one().payloadLen).toBe(500); // all that was queued
    app.send(new Uint8Array(5000));
    // 1300 bytes of window left: less than a segment, more than 900.
    expect(h.one().payloadLen).toBe(1300);
  });

  test("a window that shrank to a sliver is not used at once, but after the override timeout", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(1000));
    const d = h.one();
    g.ack = u32(d.seq + 1000);
    g.send({ window: 1000 }); // everything acknowledged; a small window left
    const t0 = h.now;
    app.send(new Uint8Array(5000));
    h.none(); // 1000 bytes: less than a segment and than half of 65535
    h.advanceToNext();
    expect(h.now - t0).toBe(200); // the persist timer, one RTO
    const p = h.one();
    expect([p.seq, p.payloadLen]).toEqual([g.ack, 1000]);
    // The guest opens its window: full segments go out at once.
    g.ack = u32(g.ack + 1000);
    g.send({ window: 65535 });
    expect(h.take().map((x) => x.p.payloadLen)).toEqual([1460, 1460, 1080]);
  });
});

describe("congestion window (RFC 6928, RFC 5681 §4.1)", () => {
  /** Bytes the stack sends at once when the host hands it `n` bytes. */
  function burst(h: Harness, app: ReturnType<Guest["handshake"]>, n: number): number {
    app.send(new Uint8Array(n));
    return h.take().reduce((sum, x) => sum + x.p.payloadLen, 0);
  }

  test("the initial window is min(10 MSS, max(2 MSS, 14600)): two segments at MSS 8960", () => {
    const { h, app } = setup({ mss: 8960, ws: 7 }, { mtu: 9000 });
    expect(burst(h, app, 100_000)).toBe(2 * 8960);
  });

  test("the initial window at MSS 1460 and 536: ten segments", () => {
    let s = setup({ ws: 7 });
    expect(burst(s.h, s.app, 100_000)).toBe(14_600);
    s = setup({ mss: 536, ws: 7 });
    expect(burst(s.h, s.app, 100_000)).toBe(5360);
  });

  test("after an idle period longer than an RTO, cwnd restarts from the initial window", () => {
    const { h, g, app } = setup({ ws: 7 });
    // Grow cwnd: every segment of two flights acknowledged one by one.
    for (let round = 0; round < 2; round++) {
      app.send(new Uint8Array(14_600));
      for (const x of h.take()) {
        g.absorb(x.p);
        g.send({});
      }
      h.take();
    }
    expect(h.conn.cc.cwnd).toBe(14_600 + 20 * 1460);
    // Idle for less than an RTO (200 ms): the grown window is used.
    h.advance(100);
    app.send(new Uint8Array(40_000));
    const out = h.take();
    expect(out.reduce((sum, x) => sum + x.p.payloadLen, 0)).toBe(40_000);
    for (const x of out) g.absorb(x.p);
    g.send({});
    h.take();
    expect(h.conn.sendBuf.length).toBe(0);
    // Idle for a second (RTO 200 ms): back to ten segments.
    h.advance(1000);
    expect(burst(h, app, 100_000)).toBe(14_600);
  });
});

describe("a host side that closes the connection while out-of-order data drains", () => {
  for (const abortAt of [1, 2]) {
    test(`onData aborting at delivery ${abortAt} of 2: no more deliveries, nothing kept, counters not negative`, () => {
      const { h, g } = setup({ sackOk: true });
      const conn = h.conn;
      const s = g.seq;
      // Two pieces behind a hole: [1000, 2000) and [2000, 2500).
      g.send({ seq: u32(s + 1000), payload: 500 });
      g.send({ seq: u32(s + 2000), payload: 500 });
      g.send({ seq: u32(s + 1500), payload: 500 });
      g.send({ seq: u32(s + 2500), flags: ACK | FIN }); // waits for the hole too
      expect(conn.ooo.pieceCount).toBe(2);
      expect(conn.ooo.bytes).toBe(1500);
      h.take();
      // The host's write fails at delivery `abortAt`: it aborts from onData.
      const calls: number[] = [];
      const handler: TcpHandler = {
        onEstablished: () => {},
        onData: (c, _buf, _off, len) => {
          calls.push(len);
          if (calls.length === abortAt) c.abort(h.now);
          return len;
        },
        onReadable: () => calls.push(-1),
        onPeerFin: () => calls.push(-2),
        onSendSpace: () => {},
        onClosed: (_c, reason) => calls.push(reason === "aborted" ? -3 : -4),
      };
      conn.handler = handler;
      g.send({ seq: s, payload: 1000 });
      expect(calls).toEqual(abortAt === 1 ? [1000, -3] : [1000, 1000, -3]);
      expect(conn.closed).toBe(true);
      expect(conn.ooo.bytes).toBe(0);
      expect(conn.ooo.isEmpty).toBe(true);
      expect(conn.rcvBuf.length).toBe(0);
      // One RST and nothing after it.
      expect(h.take().map((x) => x.p.flags)).toEqual([RST | ACK]);
    });
  }
});
