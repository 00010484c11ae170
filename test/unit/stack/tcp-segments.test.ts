// Hand-crafted segments against one engine (Harness + Guest): the edge
// cases two well-behaved endpoints never produce, and exact timing of
// every timer (virtual clock).
import { describe, expect, test } from "bun:test";
import { Harness, Guest, setup, SYN, ACK, FIN, RST, PSH, GUEST_V4, SERVER_V4 } from "../../support/tcp-harness.ts";
import { AppConn } from "../../support/engine-pair.ts";
import { TcpState, STATE_NAMES, DEFAULT_TCP_CONFIG, shiftFor } from "../../../src/stack/tcp/connection.ts";

/** Our window scale: what the default receive buffer needs (RFC 7323 §2.3). */
const OUR_WS = shiftFor(DEFAULT_TCP_CONFIG.rcvBuf);
/** Guest SYNs that may wait for the host's connect at once. */
const MAX_PENDING_HANDSHAKES = DEFAULT_TCP_CONFIG.maxSynReceived;
const name = (s: number): string => STATE_NAMES[s]!;
const u32 = (x: number): number => x >>> 0;


describe("segments for no connection", () => {
  test("RST for an ACK segment (seq = its ACK), RST|ACK for one without ACK, nothing for a RST", () => {
    const h = new Harness();
    h.inject(h.build(40001, 81, { seq: 5000, ack: 777, flags: ACK, payload: 10 }));
    let p = h.one();
    expect([p.flags, p.seq, p.ack, p.window, p.sport, p.dport]).toEqual([RST, 777, 0, 0, 81, 40001]);
    h.inject(h.build(40001, 81, { seq: 5000, flags: FIN | PSH, payload: 10 }));
    p = h.one();
    expect([p.flags, p.seq, p.ack]).toEqual([RST | ACK, 0, 5011]);
    h.inject(h.build(40001, 81, { seq: 0xffffffff, flags: 0, payload: 1 }));
    p = h.one();
    expect([p.flags, p.seq, p.ack]).toEqual([RST | ACK, 0, 0]); // wraps
    h.inject(h.build(40001, 81, { seq: 5000, ack: 1, flags: RST | ACK }));
    h.none();
    h.inject(h.build(40001, 81, { seq: 5000, ack: 9999, flags: SYN | ACK }));
    expect(h.one().seq).toBe(9999);
    expect(h.stats.dropCount("tcp-no-connection")).toBe(4);
    expect(h.requests.length).toBe(0);
  });

  test("IPv6: RST for a segment of no connection", () => {
    const h = new Harness({ family: 6 });
    h.inject(h.build(40001, 81, { seq: 5000, ack: 777, flags: ACK }));
    const p = h.one();
    expect(p.family).toBe(6);
    expect([p.flags, p.seq]).toEqual([RST, 777]);
  });

  test("a segment with a bad checksum is dropped unseen", () => {
    const h = new Harness();
    h.inject(h.build(40001, 81, { seq: 1, flags: SYN, badChecksum: true }));
    h.none();
    expect(h.requests.length).toBe(0);
    expect(h.stats.dropCount("tcp-bad-checksum")).toBe(1);
  });

  test("beyond maxSynReceived waiting SYNs, new SYNs are dropped and counted; a verdict frees a place", () => {
    const h = new Harness();
    h.policy = "hold";
    for (let i = 0; i < MAX_PENDING_HANDSHAKES; i++) h.inject(h.build(20000 + i, 80, { seq: i, flags: SYN }));
    expect(h.requests.length).toBe(MAX_PENDING_HANDSHAKES);
    expect(h.stack.tcp.connectionCount).toBe(MAX_PENDING_HANDSHAKES);
    // One more, and a retransmission of a waiting one: the first is dropped,
    // the second belongs to its connection and starts nothing.
    h.inject(h.build(30000, 80, { seq: 1, flags: SYN }));
    h.inject(h.build(20000, 80, { seq: 0, flags: SYN }));
    expect(h.stats.dropCount("tcp-handshake-limit")).toBe(1);
    expect(h.requests.length).toBe(MAX_PENDING_HANDSHAKES);
    expect(h.stack.tcp.connectionCount).toBe(MAX_PENDING_HANDSHAKES);
    h.none();
    // A verdict on one of them makes room for the next SYN.
    h.acceptHeld(h.requests[0]!);
    h.take();
    h.inject(h.build(30000, 80, { seq: 1, flags: SYN }));
    expect(h.requests.length).toBe(MAX_PENDING_HANDSHAKES + 1);
    expect(h.stats.dropCount("tcp-handshake-limit")).toBe(1);
  });
});

describe("SYN-PENDING", () => {
  test("retransmitted SYNs start nothing new; nothing is sent until the verdict", () => {
    const h = new Harness();
    h.policy = "hold";
    const g = new Guest(h, { ts: true, sackOk: true, ws: 7 });
    g.syn();
    h.advance(1000);
    g.syn();
    h.advance(2000);
    g.syn();
    h.none();
    expect(h.requests.length).toBe(1);
    expect(h.stack.tcp.connectionCount).toBe(1);
    const c = h.requests[0]!;
    expect(name(c.state)).toBe("SYN-PENDING");
    // A stray ACK or data is ignored too.
    g.send({ flags: ACK, ack: 12345 });
    h.none();
    const app = h.acceptHeld(c);
    const synAck = g.readSynAck();
    expect(synAck.options.mss).toBe(1460);
    expect(synAck.options.windowScale).toBe(OUR_WS);
    expect(synAck.options.sackPermitted).toBe(true);
    expect(synAck.options.tsEcr).toBe(500);
    g.send({ flags: ACK });
    expect(app.established).toBe(true);
  });

  test("a RST from the guest cancels the pending handshake", () => {
    const h = new Harness();
    h.policy = "hold";
    const g = new Guest(h);
    g.syn();
    const c = h.requests[0]!;
    g.raw({ seq: g.seq + 1, flags: RST });
    expect(c.state).toBe(TcpState.Closed);
    expect(h.stack.tcp.connectionCount).toBe(0);
    c.accept(h.now); // too late: nothing happens
    h.none();
  });

  test("refused: RST|ACK acknowledging the SYN", () => {
    const h = new Harness();
    h.policy = "refuse";
    const g = new Guest(h, { iss: 4242 });
    g.syn();
    const p = h.one();
    expect([p.flags, p.seq, p.ack]).toEqual([RST | ACK, 0, 4243]);
    expect(h.stack.tcp.connectionCount).toBe(0);
  });

  test("SYN-RECEIVED: a retransmitted SYN gets the SYN-ACK again; a bad ACK gets a RST", () => {
    const h = new Harness();
    const g = new Guest(h, { iss: 100 });
    g.syn();
    const first = g.readSynAck();
    g.raw({ seq: 100, flags: SYN, mss: 1460 }); // the same SYN again
    const again = h.one();
    expect([again.flags, again.seq, again.ack]).toEqual([SYN | ACK, first.seq, 101]);
    g.send({ flags: ACK, ack: first.seq + 5 });
    const rst = h.one();
    expect([rst.flags, rst.seq]).toEqual([RST, u32(first.seq + 5)]);
    expect(name(h.conn.state)).toBe("SYN-RECEIVED");
    g.send({ flags: ACK });
    expect(name(h.conn.state)).toBe("ESTABLISHED");
  });
});

describe("acceptability and trimming", () => {
  test("an old duplicate is acknowledged, not delivered again", () => {
    const { h, g, app } = setup();
    g.data("hello");
    h.advance(100);
    h.take();
    g.seq = u32(g.seq - 5);
    g.data("hello");
    const p = h.one();
    expect([p.flags, p.ack]).toEqual([ACK, g.seq]);
    expect(app.text()).toBe("hello");
  });

  test("a segment beyond the window is acknowledged and dropped", () => {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 8192 } });
    const rcvNxt = g.seq;
    g.send({ seq: g.seq + 8192, flags: ACK, payload: 100 });
    const p = h.one();
    expect([p.flags, p.ack, p.window]).toEqual([ACK, rcvNxt, 8192]);
    expect(h.conn.ooo.isEmpty).toBe(true);
    expect(app.received).toBe(0);
  });

  test("data past the right edge is trimmed to the window", () => {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 4096 } });
    app.readMode = "manual";
    g.data(3000); // two segments' worth: acknowledged at once
    expect(h.one().window).toBe(1096);
    const payload = new Uint8Array(2000).map((_, i) => i & 0xff);
    g.send({ flags: ACK | PSH, payload });
    const p = h.one(); // acknowledged at once: the guest overran the window
    expect(p.ack).toBe(u32(g.seq + 1096));
    expect(p.window).toBe(0);
    expect(app.buffered).toBe(4096);
    app.read();
    expect(app.data().subarray(3000)).toEqual(payload.subarray(0, 1096));
    // Reading opens the window: a window update goes out at once.
    h.endBatch();
    expect(h.one().window).toBe(4096);
  });

  test("zero window: data is not accepted, the ACK repeats the zero window", () => {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 2048 } });
    app.readMode = "manual";
    g.data(2048);
    h.advance(100);
    expect(h.one().window).toBe(0);
    g.send({ flags: ACK, payload: 1 }); // a zero-window probe
    const p = h.one();
    expect([p.ack, p.window]).toEqual([g.seq, 0]);
    expect(app.buffered).toBe(2048);
  });

  test("a bare ACK at the right edge of the window is accepted (a sender that filled it)", () => {
    const { h, g, app } = setup({ sackOk: true }, { tcp: { rcvBuf: 4096 } });
    app.send("hi");
    const d = h.one();
    const s = g.seq;
    // The guest filled our window up to its edge, with a hole at the front.
    g.send({ seq: s + 1000, flags: ACK, payload: 3096 });
    h.take();
    // Its bare ACK then carries SEG.SEQ = its SND.NXT = our right edge.
    g.send({ seq: s + 4096, ack: u32(d.seq + 2) });
    h.none();
    expect(h.conn.sndUna).toBe(u32(d.seq + 2));
  });

  test("a bare FIN is taken in a zero window; data with it is not", () => {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 2048 } });
    app.readMode = "manual";
    g.data(2048);
    h.advance(100);
    expect(h.one().window).toBe(0);
    g.send({ flags: ACK | FIN, payload: 1 });
    expect(h.one().ack).toBe(g.seq); // neither the byte nor the FIN
    expect(app.peerFin).toBe(false);
    g.send({ flags: ACK | FIN });
    expect(app.peerFin).toBe(true);
    expect(name(h.conn.state)).toBe("CLOSE-WAIT");
    // The FIN's ACK is delayed (our own FIN may carry it), then sent.
    h.none();
    h.advance(40);
    const p = h.one();
    expect([p.ack, p.window]).toEqual([u32(g.seq + 1), 0]);
    app.read();
    expect(app.received).toBe(2048);
  });

  test("the ACK of the guest's FIN rides on our FIN when the host closes within the delayed-ACK time", () => {
    const { h, g, app } = setup();
    g.send({ flags: ACK | FIN });
    expect(name(h.conn.state)).toBe("CLOSE-WAIT");
    h.none();
    h.advance(5);
    app.conn.shutdownWrite(h.now);
    h.endBatch();
    const fin = h.one();
    expect(fin.flags).toBe(FIN | ACK);
    expect(fin.ack).toBe(u32(g.seq + 1));
    expect(name(h.conn.state)).toBe("LAST-ACK");
  });

  test("a FIN beyond a hole waits for the hole", () => {
    const { h, g, app } = setup({ sackOk: true });
    const s0 = g.seq;
    g.send({ seq: s0 + 100, flags: ACK | FIN, payload: 50 });
    const dup = h.one();
    expect(dup.ack).toBe(s0);
    expect(app.peerFin).toBe(false);
    g.send({ seq: s0, flags: ACK, payload: 100 });
    const p = h.one();
    expect(p.ack).toBe(u32(s0 + 151));
    expect(app.peerFin).toBe(true);
    expect(app.received).toBe(150);
    expect(name(h.conn.state)).toBe("CLOSE-WAIT");
  });
});

describe("SACK (RFC 2018)", () => {
  test("out-of-order data draws an immediate duplicate ACK per segment, newest block first", () => {
    const { h, g, app } = setup({ sackOk: true, ts: true });
    const s = g.seq;
    g.ts++;
    g.send({ seq: s + 1000, flags: ACK, payload: 500 });
    let p = h.one();
    expect(p.ack).toBe(s);
    expect(p.options.sackCount).toBe(1);
    expect([...p.options.sackBlocks.subarray(0, 2)]).toEqual([s + 1000, s + 1500]);
    g.send({ seq: s + 3000, flags: ACK, payload: 500 });
    p = h.one();
    expect([...p.options.sackBlocks.subarray(0, 4)]).toEqual([s + 3000, s + 3500, s + 1000, s + 1500]);
    // Several in one batch: one duplicate ACK each, not one for the batch.
    g.send({ seq: s + 5000, flags: ACK, payload: 500 }, false);
    g.send({ seq: s + 7000, flags: ACK, payload: 500 }, false);
    h.endBatch();
    const dups = h.take();
    expect(dups.length).toBe(2);
    p = dups[1]!.p;
    // With timestamps only three blocks fit.
    expect(p.options.sackCount).toBe(3);
    expect([...p.options.sackBlocks.subarray(0, 6)]).toEqual([s + 7000, s + 7500, s + 5000, s + 5500, s + 3000, s + 3500]);
    // An old block refreshed by a new arrival moves to the front.
    g.send({ seq: s + 1500, flags: ACK, payload: 500 });
    p = h.one();
    expect([...p.options.sackBlocks.subarray(0, 2)]).toEqual([s + 1000, s + 2000]);
    // Filling the first hole delivers through the first block; the ACK goes at once.
    g.send({ seq: s, flags: ACK, payload: 1000 });
    p = h.one();
    expect(p.ack).toBe(s + 2000);
    expect(app.received).toBe(2000);
    expect(p.options.sackCount).toBe(3);
  });

  test("thousands of segments behind one hole are all kept", () => {
    // A 4 MiB window, so that 2000 segments fit behind the hole.
    const { h, g, app } = setup({ sackOk: true }, { tcp: { rcvBuf: 4 << 20 } });
    const s = g.seq;
    for (let i = 1; i <= 2000; i++) g.send({ seq: s + i * 1460, flags: ACK, payload: 1460 }, i % 50 === 0);
    h.endBatch();
    expect(h.conn.ooo.pieceCount).toBe(1);
    expect(h.stats.dropCount("tcp-ooo-full")).toBe(0);
    h.take();
    g.send({ seq: s, flags: ACK, payload: 1460 });
    expect(h.one().ack).toBe(u32(s + 2001 * 1460));
    expect(app.received).toBe(2001 * 1460);
  });

  test("without SACK-permitted no blocks are sent", () => {
    const { h, g } = setup({ sackOk: false });
    g.send({ seq: g.seq + 1000, flags: ACK, payload: 500 });
    expect(h.one().options.sackCount).toBe(0);
  });
});

describe("loss recovery toward the guest", () => {
  /** The stack sends `n` segments of 1460 bytes; returns their sequence numbers. */
  function burst(h: Harness, app: { send(d: Uint8Array): void }, n: number): number[] {
    app.send(new Uint8Array(n * 1460).map((_, i) => i & 0xff));
    const out = h.take().map((x) => x.p);
    expect(out.length).toBe(n);
    for (const p of out) expect(p.payloadLen).toBe(1460);
    return out.map((p) => p.seq);
  }

  test("three duplicate ACKs trigger fast retransmit of SND.UNA", () => {
    const { h, g, app } = setup();
    const seqs = burst(h, app, 10); // the initial window: 10 segments
    g.send({ ack: seqs[1] }); // first segment acknowledged: the window slides (new data)
    const more = h.take().map((x) => x.p);
    expect(more.length).toBe(0); // nothing left to send
    g.send({ ack: seqs[1] });
    g.send({ ack: seqs[1] });
    h.none();
    g.send({ ack: seqs[1] });
    const rtx = h.one();
    expect([rtx.seq, rtx.payloadLen]).toEqual([seqs[1], 1460]);
    // A full ACK ends recovery; nothing else is resent.
    g.send({ ack: u32(seqs[9]! + 1460) });
    h.none();
    expect(h.conn.inFlight).toBe(0);
  });

  test("SACK blocks steer retransmission to the holes only", () => {
    const { h, g, app } = setup({ sackOk: true });
    const S = burst(h, app, 10);
    const end = u32(S[9]! + 1460);
    // The guest holds S1..S4 and S6..S9: S0 and S5 were lost.
    g.send({ ack: S[0], sack: [[S[6]!, end], [S[1]!, S[5]!]] });
    let p = h.one(); // more than three segments SACKed above the hole: retransmit now
    expect([p.seq, p.payloadLen]).toEqual([S[0], 1460]);
    // Partial ACK up to the second hole: S5 goes out, and nothing SACKed.
    g.send({ ack: S[5], sack: [[S[6]!, end]] });
    p = h.one();
    expect([p.seq, p.payloadLen]).toEqual([S[5], 1460]);
    g.send({ ack: end });
    h.none();
    expect(h.conn.inFlight).toBe(0);
  });

  test("with SACK, each further duplicate ACK retransmits the next lost hole", () => {
    const { h, g, app } = setup({ sackOk: true });
    const S = burst(h, app, 10);
    const E = u32(S[9]! + 1460);
    // The guest lost S0, S3 and S6.
    const sack: Array<[number, number]> = [
      [S[7]!, E],
      [S[4]!, S[6]!],
      [S[1]!, S[3]!],
    ];
    g.send({ ack: S[0], sack });
    expect(h.one().seq).toBe(S[0]);
    g.send({ ack: S[0], sack });
    expect(h.one().seq).toBe(S[3]);
    g.send({ ack: S[0], sack });
    expect(h.one().seq).toBe(S[6]);
    g.send({ ack: S[0], sack }); // nothing left that counts as lost
    h.none();
    g.send({ ack: E });
    h.none();
    expect(h.conn.inFlight).toBe(0);
  });

  test("limited transmit: each of the first two duplicates sends one new segment", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(14 * 1460));
    const S = h.take().map((x) => x.p.seq);
    expect(S.length).toBe(10); // the initial window
    g.send({ ack: S[0] });
    expect(h.one().seq).toBe(u32(S[9]! + 1460));
    g.send({ ack: S[0] });
    expect(h.one().seq).toBe(u32(S[9]! + 2 * 1460));
    g.send({ ack: S[0] });
    const rtx = h.one();
    expect([rtx.seq, rtx.payloadLen]).toEqual([S[0], 1460]);
  });

  test("after a timeout, duplicates of the resent data do not start fast retransmit (RFC 6582)", () => {
    const { h, g, app } = setup();
    const S = burst(h, app, 10);
    h.advanceToNext(); // RTO: S0 again, cwnd one segment
    expect(h.one().seq).toBe(S[0]);
    for (let i = 0; i < 4; i++) g.send({ ack: S[0] });
    h.none();
    // Once everything sent before the timeout is acknowledged, it works again.
    g.send({ ack: u32(S[9]! + 1460) });
    h.take();
    h.conn.cc.cwnd = 10 * 1460; // skip the slow start back up
    const T = burst(h, app, 6);
    g.send({ ack: T[1] });
    h.take();
    g.send({ ack: T[1] });
    g.send({ ack: T[1] });
    g.send({ ack: T[1] });
    expect(h.take().some((x) => x.p.seq === T[1])).toBe(true);
  });

  test("duplicate ACKs carrying a window change, data or a FIN are not duplicates", () => {
    const { h, g, app } = setup();
    const S = burst(h, app, 10);
    g.send({ ack: S[0], window: 60000 });
    g.send({ ack: S[0], window: 50000 });
    g.send({ ack: S[0], window: 40000 });
    h.none();
    g.data("x", { ack: S[0] });
    g.data("y", { ack: S[0] });
    // The ACK for the guest's data: none of this counted as duplicates.
    expect(h.take().every((x) => x.p.payloadLen === 0)).toBe(true);
  });
});

describe("sending", () => {
  test("a full window of timestamped segments goes out in one burst", () => {
    const { h, app } = setup({ ts: true });
    app.send(new Uint8Array(11 * 1448));
    const out = h.take().map((x) => x.p.payloadLen);
    // cwnd is 10 * 1460: ten full segments, and no 120-byte sliver after them.
    expect(out).toEqual(Array(10).fill(1448));
  });

  test("an old ACK on a newer segment does not update the window", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(3000));
    h.take();
    g.send({ ack: u32(g.ack + 3000), window: 10_000 });
    g.ack = u32(g.ack + 3000);
    expect(h.conn.sndWnd).toBe(10_000);
    // Data from the guest, newer in sequence, carrying an ACK from before
    // (reordered on its way): its window is relative to that old ACK.
    g.data("a", { window: 10_000 });
    g.data("x", { ack: u32(g.ack - 1000), window: 60_000 });
    expect(h.conn.sndWnd).toBe(10_000);
    g.data("y", { window: 20_000 });
    expect(h.conn.sndWnd).toBe(20_000);
  });
});

describe("segments without data after a go-back-N rewind", () => {
  test("carry the highest sequence sent, which the guest accepts", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(3 * 1460));
    const out = h.take().map((x) => x.p);
    const sndMax = u32(out[2]!.seq + 1460);
    // The guest got everything but its ACK was lost: the stack times out
    // and rewinds to resend from SND.UNA.
    h.advanceToNext();
    expect(h.one().seq).toBe(out[0]!.seq);
    // Data from the guest (acknowledging nothing new yet) draws an ACK:
    // SEG.SEQ must be SND.MAX, not the rewound SND.NXT (the guest's
    // RCV.NXT is past that; it would reject the ACK and answer with one).
    g.data(1460, { ack: out[0]!.seq });
    g.data(1460, { ack: out[0]!.seq });
    const ack = h.one();
    expect([ack.flags, ack.seq, ack.ack]).toEqual([ACK, sndMax, g.seq]);
  });

  test("stay inside a closed window: not at the unaccepted probe byte", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(100));
    const s = h.one().seq;
    g.send({ ack: u32(s + 100), window: 0 });
    app.send(new Uint8Array(50));
    h.advanceToNext(); // the probe byte at s + 100
    expect(h.one().payloadLen).toBe(1);
    g.data(1460, { window: 0 });
    g.data(1460, { window: 0 });
    const ack = h.one();
    expect([ack.flags, ack.seq]).toEqual([ACK, u32(s + 100)]);
  });
});

describe("retransmission timer (RFC 6298)", () => {
  test("RTO with min 200 ms and exponential backoff: exact times", () => {
    const { h, app } = setup();
    const t0 = h.now;
    app.send("data");
    expect(h.one().payloadLen).toBe(4);
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      h.advanceToNext();
      const p = h.one();
      expect(p.payloadLen).toBe(4);
      times.push(h.now - t0);
    }
    // The handshake's RTT sample was 0 ms: RTO = max(200, 0 + 4*0) = 200.
    expect(times).toEqual([200, 600, 1400, 3000, 6200, 12_600, 25_400, 51_000]);
    // Backoff is capped at 60 s. No keepalive probe meanwhile (125 s idle):
    // the connection is not idle, it is retransmitting.
    h.advance(130_000);
    const at = h.take().map((x) => x.at - t0);
    expect(at).toEqual([102_200, 162_200]);
  });

  test("a retransmitted SYN-ACK and no RTT sample: data starts with an RTO of 3 s (RFC 6298 §5.7)", () => {
    const h = new Harness();
    const g = new Guest(h);
    g.syn();
    g.readSynAck();
    // The first SYN-ACK goes unanswered; the guest ACKs the second.
    expect(h.advanceToNext()).toBe(1000);
    g.readSynAck();
    g.send({ flags: ACK });
    const app = h.app;
    expect(app.established).toBe(true);
    app.send("x");
    const t0 = h.now;
    expect(h.one().payloadLen).toBe(1);
    expect(h.advanceToNext()).toBe(3000);
    expect(h.one().payloadLen).toBe(1);
    expect(h.now - t0).toBe(3000);
  });

  test("a retransmitted SYN and no RTT sample: data toward the guest starts with an RTO of 3 s (RFC 6298 §5.7)", () => {
    const h = new Harness();
    const app = new AppConn(null, h);
    app.conn = h.stack.tcp.connectV4(SERVER_V4, 0, GUEST_V4, 22, app, h.now);
    const syn = h.one();
    expect(h.advanceToNext()).toBe(1000);
    expect(h.one().flags).toBe(SYN);
    h.inject(h.build(22, syn.sport, { seq: 5000, ack: u32(syn.seq + 1), flags: SYN | ACK, window: 65535, mss: 1460 }));
    expect(app.established).toBe(true);
    h.take();
    app.send("x");
    expect(h.one().payloadLen).toBe(1);
    expect(h.advanceToNext()).toBe(3000);
    expect(h.one().payloadLen).toBe(1);
  });

  test("RTO from a measured RTT: SRTT + 4 RTTVAR", () => {
    const h = new Harness();
    const g = new Guest(h);
    g.syn();
    g.readSynAck();
    h.advance(300);
    g.send({ flags: ACK }); // RTT sample 300: SRTT 300, RTTVAR 150, RTO 900
    const conn = h.conn;
    expect(conn.rtt.srtt).toBe(300);
    expect(conn.rtt.rto).toBe(900);
    const t0 = h.now;
    h.app.send("x");
    h.take();
    h.advanceToNext();
    expect(h.now - t0).toBe(900);
    expect(h.one().payloadLen).toBe(1);
    // The retransmission is acknowledged: no sample (Karn), the backoff stays.
    g.send({ ack: u32(g.ack + 1) });
    g.ack = u32(g.ack + 1);
    expect(conn.rtt.rto).toBe(1800);
    const t1 = h.now;
    h.app.send("y");
    h.take();
    h.advance(50);
    g.send({ ack: u32(g.ack + 1) }); // a fresh sample: 50 ms
    expect(conn.rtt.backoff).toBe(0);
    // RTTVAR = 3/4*150 + 1/4*|300-50| = 175; SRTT = 7/8*300 + 1/8*50 = 268.75
    expect(conn.rtt.rto).toBe(268.75 + 4 * 175);
    expect(t1).toBeGreaterThan(0);
  });

  test("an ACK echoing a timestamp from before the timeout gives no RTT sample", () => {
    const { h, g, app } = setup({ ts: true });
    app.send(new Uint8Array(3000));
    const first = h.take().map((x) => x.p);
    const tsFirst = first[0]!.options.tsVal;
    h.advanceToNext(); // RTO at 200 ms: backoff 1, RTO 400
    h.take();
    expect(h.conn.rtt.rto).toBe(400);
    // The guest held everything; it echoes the TS.Recent of the originals.
    g.send({ ack: u32(first[1]!.seq + first[1]!.payloadLen), ts: [g.ts, tsFirst] });
    expect(h.conn.rtt.rto).toBe(400); // no 200 ms "sample", backoff kept
    expect(h.conn.rtt.srtt).toBe(0);
  });

  test("the user timeout aborts when data stays unacknowledged", () => {
    const { h, app } = setup({}, { tcp: { userTimeoutMs: 3000 } });
    const t0 = h.now;
    app.send("data");
    h.take();
    h.advance(5000);
    const out = h.take();
    expect(out.map((x) => [x.at - t0, x.p.flags])).toEqual([
      [200, ACK | PSH],
      [600, ACK | PSH],
      [1400, ACK | PSH],
      [3000, RST | ACK],
    ]);
    expect(app.closed).toBe("timeout");
    expect(h.stack.tcp.connectionCount).toBe(0);
  });
});

describe("buffer storage", () => {
  test("an emptied send buffer keeps its grown storage for a second, then gives it back", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(60_000));
    const buf = h.conn.sendBuf;
    expect(buf.grown).toBe(true);
    // Acknowledge flight after flight (the congestion window opens) until all is through.
    for (let i = 0; i < 20 && buf.length > 0; i++) {
      const segs = h.take().map((x) => x.p);
      const last = segs[segs.length - 1]!;
      g.send({ ack: u32(last.seq + last.payloadLen) });
    }
    expect(buf.length).toBe(0);
    h.advance(900);
    expect(buf.grown).toBe(true); // a refill now would reuse it
    h.advance(200);
    expect(buf.capacity).toBe(0);
  });

  test("receive storage a graceful close left for the host goes back when the host drains it, with no timer", () => {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 8192 } });
    app.readMode = "manual";
    const c = h.conn;
    g.data(6000); // past the ring's initial size
    g.send({ flags: ACK | FIN });
    h.advance(100);
    h.take();
    c.shutdownWrite(h.now); // the host's EOF: our FIN
    h.endBatch();
    const fin = h.one();
    expect(fin.flags & FIN).toBe(FIN);
    g.send({ seq: u32(g.seq + 1), ack: u32(fin.seq + 1) });
    expect(name(c.state)).toBe("CLOSED");
    expect(app.buffered).toBe(6000); // kept for the host: acknowledged to the guest
    expect(c.rcvBuf.grown).toBe(true);
    app.read();
    expect(c.rcvBuf.capacity).toBe(0);
    // The closed connection did not put itself back among the layer's timers.
    expect(h.stack.tcp.connectionCount).toBe(0);
    expect(h.advanceToNext()).toBe(3_600_000);
  });

  test("a buffer that never grew sets no timer", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(100));
    const p = h.one();
    g.send({ ack: u32(p.seq + 100) });
    // The next deadline is the keepalive (125 s), not a trim.
    expect(h.advanceToNext()).toBeGreaterThan(100_000);
  });
});

describe("zero window and persist (RFC 9293 §3.8.6.1)", () => {
  test("probes back off while the window stays shut, and sending resumes when it opens", () => {
    const { h, g, app } = setup();
    const t0 = h.now;
    app.send(new Uint8Array(2000));
    const first = h.take().map((x) => x.p);
    expect(first.map((p) => p.payloadLen)).toEqual([1460, 540]);
    g.send({ ack: u32(first[1]!.seq + 540), window: 0 });
    g.ack = u32(first[1]!.seq + 540);
    app.send(new Uint8Array(1000).fill(7));
    h.none();
    // Probes answered with the window still shut: intervals double.
    const probes: number[] = [];
    for (let i = 0; i < 5; i++) {
      h.advanceToNext();
      const p = h.one();
      expect([p.seq, p.payloadLen]).toEqual([g.ack, 1]);
      probes.push(h.now - t0);
      g.send({ window: 0 });
      h.none();
    }
    expect(probes).toEqual([200, 600, 1400, 3000, 6200]);
    expect(app.closed).toBe(null);
    // The window opens: everything goes out at once, starting at the probed byte.
    g.send({ window: 65535 });
    const out = h.take().map((x) => x.p);
    expect(out.map((p) => [p.seq, p.payloadLen])).toEqual([[g.ack, 1000]]);
  });

  test("a probe accepted by a window that opened silently is not sent twice", () => {
    const { h, g, app } = setup();
    app.send(new Uint8Array(100));
    const s = h.one().seq;
    g.send({ ack: u32(s + 100), window: 0 });
    app.send(new Uint8Array(1000).map((_, i) => i & 0xff));
    h.advanceToNext();
    const probe = h.one();
    expect([probe.seq, probe.payloadLen]).toEqual([u32(s + 100), 1]);
    // The guest takes the probe byte and opens its window.
    g.send({ ack: u32(s + 101), window: 65535 });
    const out = h.take().map((x) => x.p);
    expect(out.map((p) => [p.seq, p.payloadLen])).toEqual([[u32(s + 101), 999]]);
  });

  test("the receive side advertises zero and updates when the host reads", () => {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 3000 } });
    app.readMode = "manual";
    g.data(1460);
    g.data(1460);
    expect(h.one().window).toBe(80);
    g.data(80);
    h.advance(40);
    expect(h.one().window).toBe(0);
    // Reading less than an MSS does not announce the (silly) small window.
    app.read(1000);
    h.endBatch();
    h.none();
    app.read();
    h.endBatch();
    const upd = h.one();
    expect([upd.flags, upd.ack, upd.window]).toEqual([ACK, g.seq, 3000]);
  });

  test("receiver SWS avoidance (MUST-39): a window that can grow by less than min(half the buffer, one MSS) stays shut in every segment", () => {
    const { h, g, app } = setup({}, { tcp: { rcvBuf: 3000 } });
    app.readMode = "manual";
    g.data(1460);
    g.data(1460);
    h.one();
    g.data(80);
    h.advance(40);
    expect(h.one().window).toBe(0);
    app.read(1000);
    h.endBatch();
    h.none();
    // The guest's zero-window probe: answered with window 0, its byte not taken.
    g.send({ flags: ACK | PSH, payload: 1 });
    h.advance(40);
    const p = h.one();
    expect([p.flags, p.ack, p.window]).toEqual([ACK, g.seq, 0]);
    expect(app.buffered).toBe(2000);
    // Our data carries the shut window too.
    app.send("x");
    const d = h.one();
    expect([d.payloadLen, d.window]).toEqual([1, 0]);
    // Room for a full MSS (1460 of the 3000): offered, all of it.
    app.read(460);
    h.endBatch();
    const upd = h.one();
    expect([upd.flags, upd.ack, upd.window]).toEqual([ACK, g.seq, 1460]);
  });
});

describe("window scaling (RFC 7323)", () => {
  test("shift 0 offered: windows unscaled both ways, our SYN-ACK says ws 7 (4 MiB buffer)", () => {
    const h = new Harness({ tcp: { rcvBuf: 4 << 20 } });
    const g = new Guest(h, { ws: 0 });
    g.syn();
    const sa = g.readSynAck();
    expect(sa.options.windowScale).toBe(7);
    expect(sa.window).toBe(65535); // SYN windows are never scaled
    g.send({ flags: ACK, window: 40000 });
    expect(h.conn.sndWnd).toBe(40000);
    g.data("x");
    h.advance(40);
    expect(h.one().window).toBe((4 << 20) >> 7);
  });

  test("shift 7: the SYN's window is taken as is, later windows scaled", () => {
    const h = new Harness();
    const g = new Guest(h, { ws: 7 });
    g.window = 65535;
    g.syn();
    g.readSynAck();
    g.window = 1000;
    g.send({ flags: ACK });
    expect(h.conn.sndWnd).toBe(128_000);
  });

  test("shift 14 (and 15 read as 14): windows up to a gigabyte", () => {
    for (const ws of [14, 15]) {
      const h = new Harness({ tcp: { rcvBuf: 1 << 30, bufferBudget: 2 ** 31 } });
      const g = new Guest(h, { ws });
      g.syn();
      const sa = g.readSynAck();
      expect(sa.options.windowScale).toBe(14);
      g.window = 65535;
      g.send({ flags: ACK });
      expect(h.conn.sndShift).toBe(14);
      expect(h.conn.sndWnd).toBe(65535 * 16384);
      g.data("x");
      h.advance(40);
      expect(h.one().window).toBe(65535); // (1 GiB - 1) >> 14, rounded down
    }
  });

  test("no window scale from the guest: none in the SYN-ACK, our window capped at 65535", () => {
    const h = new Harness();
    const g = new Guest(h);
    g.syn();
    const sa = g.readSynAck();
    expect(sa.options.windowScale).toBe(-1);
    g.send({ flags: ACK });
    g.data("x");
    h.advance(40);
    expect(h.one().window).toBe(65535);
    expect(h.conn.rcvShift).toBe(0);
  });

  test("a small buffer needs no shift: ws 0 in the SYN-ACK when the guest offered one", () => {
    const h = new Harness({ tcp: { rcvBuf: 60_000 } });
    const g = new Guest(h, { ws: 9 });
    g.syn();
    const sa = g.readSynAck();
    expect(sa.options.windowScale).toBe(0);
    expect(sa.window).toBe(60_000);
  });

  test("more than 64 KiB in flight with scaling, at most 64 KiB without", () => {
    for (const [ws, window, expected] of [
      [7, 2000, 137],
      [undefined, 65535, 44],
    ] as const) {
      const { h, app } = setup(ws === undefined ? {} : { ws });
      // Open the congestion window; set the guest's window directly.
      h.conn.cc.cwnd = 1 << 20;
      h.conn.sndWnd = ws === undefined ? window : window << ws;
      app.send(new Uint8Array(200_000));
      const out = h.take().map((x) => x.p);
      expect(out.length).toBe(expected);
      // Full segments; a short tail only when it is the last of the data.
      expect(out.slice(0, -1).every((p) => p.payloadLen === 1460)).toBe(true);
      const inFlight = out.reduce((n, p) => n + p.payloadLen, 0);
      expect(inFlight).toBe(ws === undefined ? 44 * 1460 : 200_000);
    }
  });
});

describe("sequence number wraparound", () => {
  test("both directions cross 2^32, with reordering across the wrap", () => {
    const h = new Harness();
    h.scripted.push(0xfffff000); // the stack's ISS
    const g = new Guest(h, { iss: 0xfffffc00, sackOk: true, ts: true });
    const app = g.handshake();
    h.take();
    const s = g.seq; // 0xfffffc01
    const data = new Uint8Array(3000).map((_, i) => (i * 13) & 0xff);
    // Second piece first (it starts past the wrap), then the first.
    g.send({ seq: u32(s + 1500), flags: ACK, payload: data.subarray(1500) });
    const dup = h.one();
    expect(dup.ack).toBe(s);
    expect([...dup.options.sackBlocks.subarray(0, 2)]).toEqual([u32(s + 1500), u32(s + 3000)]);
    g.send({ seq: s, flags: ACK, payload: data.subarray(0, 1500) });
    expect(h.one().ack).toBe(u32(s + 3000));
    g.seq = u32(s + 3000);
    expect(app.data()).toEqual(data);
    // The stack sends 8 segments across its own wrap; the guest loses the
    // one straddling 2^32 and gets it back by fast retransmit.
    app.send(new Uint8Array(8 * 1448).map((_, i) => i & 0xff));
    const out = h.take().map((x) => x.p);
    expect(out.length).toBe(8);
    expect(out[0]!.seq).toBe(0xfffff001);
    // Segment 2 straddles 2^32 (4095 bytes to the wrap); the guest lost it.
    expect(out[2]!.seq).toBeGreaterThan(0xfffff000);
    expect(out[3]!.seq).toBeLessThan(0x1000);
    const hole = out[2]!.seq;
    const end = u32(out[7]!.seq + 1448);
    g.send({ ack: hole }); // segments 0 and 1: a cumulative ACK, not a duplicate
    h.none();
    g.send({ ack: hole, sack: [[u32(hole + 1448), end]] }); // a duplicate with 5 segments SACKed
    const rtx = h.one();
    expect([rtx.seq, rtx.payloadLen]).toEqual([hole, 1448]);
    g.send({ ack: u32(out[7]!.seq + 1448) });
    expect(h.conn.inFlight).toBe(0);
    expect(h.conn.sndUna).toBeLessThan(0x10000);
  });
});

describe("timestamps (RFC 7323)", () => {
  test("PAWS drops a segment with an old timestamp, and answers it with an ACK", () => {
    const { h, g, app } = setup({ ts: true });
    g.ts = 1000;
    g.data("new");
    h.advance(40);
    h.take();
    g.ts = 999; // older than TS.Recent: a stale duplicate from an earlier incarnation
    g.data("old");
    const p = h.one();
    expect(p.flags).toBe(ACK);
    expect(p.ack).toBe(u32(g.seq - 3));
    expect(app.text()).toBe("new");
    // A newer timestamp is fine again.
    g.seq = u32(g.seq - 3);
    g.ts = 1001;
    g.data("ok!");
    expect(app.text()).toBe("newok!");
  });

  test("timestamps wrap modulo 2^32: a tsVal just past 2^32 is newer", () => {
    const { h, g, app } = setup({ ts: true, tsStart: 0xfffffff0 });
    g.data("a");
    g.ts = 5;
    g.data("b");
    h.advance(40);
    expect(app.text()).toBe("ab");
  });

  test("our TSval is the clock in ms plus the connection's offset, TSecr echoes TS.Recent", () => {
    const { h, g, app } = setup({ ts: true });
    g.ts = 777;
    g.data("x");
    app.send("y");
    const p = h.one();
    expect(p.options.tsVal).toBe((h.now + h.conn.tsOffset) >>> 0);
    expect(p.options.tsEcr).toBe(777);
  });
});

describe("RFC 5961 blind-attack mitigations", () => {
  test("a SYN on an established connection draws a challenge ACK and changes nothing", () => {
    const { h, g, app } = setup();
    g.raw({ seq: g.seq + 5, flags: SYN, mss: 1460 });
    const p = h.one();
    expect([p.flags, p.seq, p.ack]).toEqual([ACK, g.ack, g.seq]);
    expect(name(h.conn.state)).toBe("ESTABLISHED");
    expect(h.requests.length).toBe(1);
    expect(app.closed).toBe(null);
  });

  test("RST: exact sequence resets, in-window draws a challenge ACK, outside is ignored", () => {
    const { h, g, app } = setup();
    g.raw({ seq: g.seq + 1000, flags: RST });
    const p = h.one();
    expect([p.flags, p.ack]).toEqual([ACK, g.seq]);
    g.raw({ seq: g.seq + 100_000_000, flags: RST });
    h.none();
    g.raw({ seq: g.seq - 1, flags: RST });
    h.none();
    expect(app.closed).toBe(null);
    g.raw({ seq: g.seq, flags: RST });
    h.none();
    expect(app.closed).toBe("reset");
    expect(h.stack.tcp.connectionCount).toBe(0);
  });

  test("an ACK for data never sent is answered and dropped with its payload", () => {
    const { h, g, app } = setup();
    g.data("zzz", { ack: u32(g.ack + 1000) });
    const p = h.one();
    expect(p.ack).toBe(u32(g.seq - 3));
    expect(app.received).toBe(0);
  });

  test("an ACK too far in the past is answered and dropped with its payload", () => {
    const { h, g, app } = setup();
    g.data("zzz", { ack: u32(g.ack - 200_000) });
    expect(h.one().flags).toBe(ACK);
    expect(app.received).toBe(0);
    // Within the window it is just an old ACK: the data is taken.
    g.seq = u32(g.seq - 3);
    g.data("zzz", { ack: u32(g.ack - 1000) });
    expect(app.text()).toBe("zzz");
  });
});

describe("keepalive", () => {
  const tcp = { keepIdleMs: 10_000, keepIntvlMs: 1000, keepCnt: 3 };

  test("probes at idle, then every interval; abort after the count", () => {
    const { h, g, app } = setup({}, { tcp });
    const t0 = h.now;
    h.advance(20_000);
    const out = h.take();
    expect(out.map((x) => [x.at - t0, x.p.flags, x.p.seq, x.p.payloadLen])).toEqual([
      [10_000, ACK, u32(g.ack - 1), 0],
      [11_000, ACK, u32(g.ack - 1), 0],
      [12_000, ACK, u32(g.ack - 1), 0],
      [13_000, RST | ACK, g.ack, 0],
    ]);
    expect(app.closed).toBe("timeout");
  });

  test("an answered probe keeps the connection; the next probe waits a full idle time", () => {
    const { h, g, app } = setup({}, { tcp });
    const t0 = h.now;
    h.advance(10_000);
    expect(h.one().seq).toBe(u32(g.ack - 1));
    h.advance(500);
    g.send({}); // the guest's ACK answers the probe
    h.none();
    h.advance(9_999);
    h.none();
    h.advance(1000);
    const next = h.take();
    expect(next.map((x) => x.at - t0)).toEqual([20_500]);
    expect(app.closed).toBe(null);
  });

  test("a peer answering the probe with our own engine: the probe is acknowledged", () => {
    // A keepalive carries SEG.SEQ = SND.UNA - 1: unacceptable, so the
    // receiver must answer with an ACK.
    const { h, g } = setup();
    g.raw({ seq: g.seq - 1, ack: g.ack, flags: ACK });
    const p = h.one();
    expect([p.flags, p.ack]).toEqual([ACK, g.seq]);
  });
});

describe("delayed ACK (RFC 1122 §4.2.3.2)", () => {
  test("one segment is acknowledged after the delayed-ACK timeout", () => {
    const { h, g } = setup();
    g.data(1460);
    h.none();
    h.advance(39);
    h.none();
    h.advance(1);
    const p = h.one();
    expect([p.flags, p.ack]).toEqual([ACK, g.seq]);
  });

  test("the second full segment is acknowledged at once", () => {
    const { h, g } = setup();
    g.data(1460);
    h.advance(10);
    h.none();
    g.data(1460);
    expect(h.one().ack).toBe(g.seq);
    h.advance(100);
    h.none();
  });

  test("segments arriving in one batch are acknowledged once at the end of the batch", () => {
    const { h, g } = setup();
    g.data(1460, {}, false);
    g.data(1460, {}, false);
    g.data(1460, {}, false);
    h.none();
    h.endBatch();
    expect(h.one().ack).toBe(g.seq);
  });

  test("the ACK rides on data the host sends before the timeout", () => {
    const { h, g, app } = setup();
    g.data("ping");
    h.advance(5);
    app.send("pong");
    const p = h.one();
    expect([p.flags & ACK, p.ack, p.payloadLen]).toEqual([ACK, g.seq, 4]);
    h.advance(100);
    h.none();
  });
});
