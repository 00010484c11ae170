// The RFC 9293 state machine, end to end between two of our own engines
// (EnginePair): every transition, opening and closing both ways, resets.
import { describe, expect, test } from "bun:test";
import { EnginePair, type AppConn } from "../../support/engine-pair.ts";
import { TcpState, STATE_NAMES, DEFAULT_TCP_CONFIG, shiftFor } from "../../../src/stack/tcp/connection.ts";
import { SYN, ACK, FIN, RST } from "../../../src/stack/tcp/segment.ts";

const name = (s: number): string => STATE_NAMES[s]!;

function established(pair: EnginePair, port = 80): { a: AppConn; b: AppConn } {
  const a = pair.connect("A", port);
  pair.runUntil(() => a.established && pair.b.apps.length > 0 && pair.b.lastApp.established, "handshake");
  return { a, b: pair.b.lastApp };
}

describe("opening", () => {
  test("passive open: SYN-PENDING, SYN-RECEIVED, ESTABLISHED; retransmitted SYNs start nothing new", () => {
    const pair = new EnginePair({ trace: true });
    pair.b.policy = "hold";
    const a = pair.connect("A", 80);
    expect(name(a.conn.state)).toBe("SYN-SENT");
    pair.runUntil(() => pair.b.requests.length === 1, "connect request");
    const pending = pair.b.requests[0]!;
    expect(name(pending.state)).toBe("SYN-PENDING");
    // The host connect() takes 2.5 s: A retransmits its SYN at 1 s and 3 s
    // (RTO 1 s, doubled); B starts nothing new and sends nothing.
    pair.advance(2500);
    const synsFromA = pair.sent("A").filter((s) => s.p.flags === SYN);
    expect(synsFromA.map((s) => s.at)).toEqual([1000, 2000]);
    expect(pair.sent("B")).toEqual([]);
    expect(pair.b.requests.length).toBe(1);
    expect(pair.b.tcp.connectionCount).toBe(1);
    expect(name(pending.state)).toBe("SYN-PENDING");
    // Accept: SYN-ACK out, SYN-RECEIVED until A's ACK arrives.
    const b = pair.b.acceptHeld(pending);
    expect(name(pending.state)).toBe("SYN-RECEIVED");
    const synAck = pair.sent("B")[0]!;
    expect(synAck.p.flags).toBe(SYN | ACK);
    expect(synAck.p.ack).toBe((synsFromA[0]!.p.seq + 1) >>> 0);
    pair.runUntil(() => b.established, "B established");
    expect(name(pending.state)).toBe("ESTABLISHED");
    expect(name(a.conn.state)).toBe("ESTABLISHED");
    // Accepted at 3501 (the SYN arrived at 1001, then 2.5 s): the SYN-ACK
    // reaches A 1 ms later, A's ACK reaches B 1 ms after that.
    expect(a.log[0]).toBe("established@3502");
    expect(b.log[0]).toBe("established@3503");
  });

  test("active open: SYN-SENT to ESTABLISHED, options negotiated both ways", () => {
    const pair = new EnginePair({ trace: true });
    const a = pair.connect("A", 443);
    pair.runUntil(() => a.established, "established");
    const [syn, synAck] = [pair.sent("A")[0]!.p, pair.sent("B")[0]!.p];
    expect(syn.flags).toBe(SYN);
    expect(syn.options.mss).toBe(1460);
    const ws = shiftFor(DEFAULT_TCP_CONFIG.rcvBuf);
    expect(syn.options.windowScale).toBe(ws);
    expect(syn.options.sackPermitted).toBe(true);
    expect(syn.options.hasTimestamps).toBe(true);
    expect(synAck.options.tsEcr).toBe(syn.options.tsVal);
    const c = a.conn;
    expect([c.sackOk, c.tsOk, c.sndShift, c.rcvShift, c.sendMss]).toEqual([true, true, ws, ws, 1460]);
    const bc = pair.b.lastApp.conn;
    expect([bc.sackOk, bc.tsOk, bc.sndShift, bc.rcvShift]).toEqual([true, true, ws, ws]);
    // Windows after the handshake are scaled: the buffer >> the shift.
    pair.runUntil(() => pair.b.lastApp.established, "B established");
    const ack = pair.sent("A")[1]!.p;
    expect(ack.flags).toBe(ACK);
    expect(ack.window).toBe(Math.min(65535, Math.floor(DEFAULT_TCP_CONFIG.rcvBuf / 2 ** ws)));
  });

  test("IPv6 active open and data", () => {
    const pair = new EnginePair();
    const a = pair.connect("A", 22, { family: 6 });
    pair.runUntil(() => a.established && pair.b.apps.length === 1 && pair.b.lastApp.established, "handshake");
    expect(a.conn.family).toBe(6);
    expect(a.conn.sendMss).toBe(1440);
    a.writeStream(300_000);
    const b = pair.b.lastApp;
    pair.runUntil(() => b.peerFin, "FIN");
    expect(b.received).toBe(300_000);
    expect(b.checker.firstMismatch).toBe(-1);
  });

  for (const family of [4, 6] as const) {
    test(`over Ethernet (IPv${family}): the first SYN waits for ARP/NDP, then flows`, () => {
      const pair = new EnginePair({ medium: "ethernet", trace: true });
      const a = pair.connect("A", 80, { family });
      pair.runUntil(() => a.established && pair.b.apps.length === 1 && pair.b.lastApp.established, "handshake");
      // Nothing was known at first: the SYN went out only after resolution, at once.
      expect(pair.now).toBeLessThan(1010);
      const first = pair.trace.find((t) => t.dir === "A>B")!;
      expect(first.p === null || first.p.proto !== "tcp").toBe(true); // ARP (no IP) or a Neighbor Solicitation
      a.writeStream(200_000);
      const b = pair.b.lastApp;
      pair.runUntil(() => b.peerFin, "data");
      expect(b.received).toBe(200_000);
      expect(b.checker.firstMismatch).toBe(-1);
    });
  }

  test("simultaneous open: both SYN-SENT, both SYN-RECEIVED, both ESTABLISHED", () => {
    const pair = new EnginePair({ trace: true });
    const a = pair.connect("A", 7000, { localPort: 6000 });
    const b = pair.connect("B", 6000, { localPort: 7000 });
    expect(name(a.conn.state)).toBe("SYN-SENT");
    expect(name(b.conn.state)).toBe("SYN-SENT");
    // The SYNs cross: each side sees a SYN for its own SYN-SENT connection.
    pair.runUntil(() => a.conn.state === TcpState.SynReceived && b.conn.state === TcpState.SynReceived, "SYN-RECEIVED");
    pair.runUntil(() => a.established && b.established, "both established");
    expect(pair.a.requests.length + pair.b.requests.length).toBe(0);
    expect(pair.a.tcp.connectionCount).toBe(1);
    expect(pair.b.tcp.connectionCount).toBe(1);
    // And the connection works both ways.
    a.send("ping");
    b.send("pong");
    pair.runUntil(() => a.received === 4 && b.received === 4, "data");
    expect(a.text()).toBe("pong");
    expect(b.text()).toBe("ping");
    const synAckA = pair.sent("A").find((s) => s.p.flags === (SYN | ACK))!.p;
    // The SYN-ACK of a simultaneous open echoes the peer's timestamp.
    expect(synAckA.options.tsEcr).not.toBe(0);
  });

  test("refused: RST|ACK for the SYN, the opener sees 'refused'", () => {
    const pair = new EnginePair({ trace: true });
    pair.b.policy = "refuse";
    const a = pair.connect("A", 80);
    pair.runUntil(() => a.closed !== null, "closed");
    expect(a.closed).toBe("refused");
    const rst = pair.sent("B")[0]!.p;
    expect(rst.flags).toBe(RST | ACK);
    expect(rst.ack).toBe((pair.sent("A")[0]!.p.seq + 1) >>> 0);
    expect(pair.a.tcp.connectionCount).toBe(0);
    expect(pair.b.tcp.connectionCount).toBe(0);
  });

  test("SYN retries: 8 SYNs with exponential backoff up to the 60 s cap, then timeout after 3 minutes (MUST-23)", () => {
    const pair = new EnginePair({ trace: true });
    pair.dropFrom("A", () => true);
    const a = pair.connect("A", 80);
    pair.runUntil(() => a.closed !== null, "closed", 300_000);
    expect(a.closed).toBe("timeout");
    expect(pair.now).toBe(1000 + 183_000);
    pair.dropFrom("A", null);
    expect(pair.trace.filter((t) => t.dir === "A>B").map((t) => t.at)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 124_000]);
  });

  test("SYN-ACK retries on the passive side, then timeout", () => {
    const pair = new EnginePair({ trace: true });
    pair.dropFrom("B", () => true);
    pair.connect("A", 80);
    pair.runUntil(() => pair.b.apps.length === 1 && pair.b.lastApp.closed !== null, "B gives up", 200_000);
    expect(pair.b.lastApp.closed).toBe("timeout");
    const synAcks = pair.trace.filter((t) => t.dir === "B>A" && t.p!.flags === (SYN | ACK)).map((t) => t.at);
    // The first at 1001, then RTO-driven; A's own SYN retransmissions are
    // answered with a SYN-ACK at once as well.
    expect(synAcks[0]).toBe(1001);
    expect(synAcks.length).toBeGreaterThanOrEqual(6);
  });
});

describe("closing", () => {
  test("active close: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT (expires); passive: CLOSE-WAIT, LAST-ACK, CLOSED", () => {
    const pair = new EnginePair({ trace: true, tcpA: { timeWaitMs: 5000 } });
    const { a, b } = established(pair);
    b.onEstablishedHook = null;
    a.send("last words");
    a.conn.shutdownWrite(pair.now);
    expect(name(a.conn.state)).toBe("FIN-WAIT-1");
    pair.runUntil(() => a.conn.state === TcpState.FinWait2, "FIN-WAIT-2");
    expect(name(b.conn.state)).toBe("CLOSE-WAIT");
    expect(b.peerFin).toBe(true);
    expect(b.text()).toBe("last words");
    // CLOSE-WAIT still sends; FIN-WAIT-2 still receives.
    b.send("reply");
    pair.runUntil(() => a.received === 5, "reply");
    expect(a.text()).toBe("reply");
    b.conn.shutdownWrite(pair.now);
    expect(name(b.conn.state)).toBe("LAST-ACK");
    pair.runUntil(() => b.closed !== null, "B closed");
    expect(b.closed).toBe("closed");
    expect(name(a.conn.state)).toBe("TIME-WAIT");
    expect(a.closed).toBe("closed"); // the host side is released on entering TIME-WAIT
    expect(a.peerFin).toBe(true);
    // The host side hears of the FIN before the close.
    expect(a.log.map((l) => l.replace(/@.*/, ""))).toEqual(["established", "peer-fin", "closed:closed"]);
    expect(b.log.map((l) => l.replace(/@.*/, ""))).toEqual(["established", "peer-fin", "closed:closed"]);
    const enteredTimeWait = pair.now - 1; // B's FIN reached A one ms before its ACK reached B
    expect(pair.a.tcp.connectionCount).toBe(1);
    pair.run(() => a.conn.state === TcpState.Closed, 10_000);
    expect(pair.now).toBe(enteredTimeWait + 5000);
    expect(pair.a.tcp.connectionCount).toBe(0);
    expect(pair.b.tcp.connectionCount).toBe(0);
  });

  test("a FIN retransmitted into TIME-WAIT is acknowledged again", () => {
    const pair = new EnginePair({ trace: true });
    const { a, b } = established(pair);
    a.conn.shutdownWrite(pair.now);
    pair.runUntil(() => b.peerFin, "FIN at B");
    // Lose A's ACK of B's FIN: B retransmits its FIN after an RTO.
    pair.dropFrom("A", (p) => p !== null && p.flags === ACK);
    b.conn.shutdownWrite(pair.now);
    pair.runUntil(() => a.conn.state === TcpState.TimeWait, "TIME-WAIT");
    pair.dropFrom("A", null);
    const before = pair.sent("A").length;
    pair.runUntil(() => b.closed !== null, "B closed");
    expect(b.closed).toBe("closed");
    const fins = pair.sent("B").filter((s) => s.p.flags & FIN);
    expect(fins.length).toBe(2);
    expect(fins[1]!.at - fins[0]!.at).toBeGreaterThanOrEqual(200); // one RTO (min 200 ms)
    expect(pair.sent("A").length).toBe(before + 1);
    expect(name(a.conn.state)).toBe("TIME-WAIT");
    // The retransmitted FIN restarted TIME-WAIT (30 s from its arrival).
    const lastFinAt = fins[1]!.at + 1;
    pair.run(() => a.conn.state === TcpState.Closed, 60_000);
    expect(pair.now).toBe(lastFinAt + 30_000);
  });

  test("simultaneous close: FIN-WAIT-1, CLOSING, TIME-WAIT on both sides", () => {
    const pair = new EnginePair({ trace: true, tcpA: { timeWaitMs: 1000 }, tcpB: { timeWaitMs: 1000 } });
    const { a, b } = established(pair);
    a.conn.shutdownWrite(pair.now);
    b.conn.shutdownWrite(pair.now);
    expect(name(a.conn.state)).toBe("FIN-WAIT-1");
    expect(name(b.conn.state)).toBe("FIN-WAIT-1");
    pair.runUntil(() => a.conn.state === TcpState.Closing && b.conn.state === TcpState.Closing, "CLOSING");
    pair.runUntil(() => a.conn.state === TcpState.TimeWait && b.conn.state === TcpState.TimeWait, "TIME-WAIT");
    expect(a.closed).toBe("closed");
    expect(b.closed).toBe("closed");
    pair.runUntil(() => pair.a.tcp.connectionCount + pair.b.tcp.connectionCount === 0, "both gone");
  });

  test("FIN-WAIT-1 straight to TIME-WAIT when the FIN and its ACK arrive together", () => {
    const pair = new EnginePair({ trace: true });
    const { a, b } = established(pair);
    // B closes as soon as it sees A's FIN, before its delayed ACK goes out.
    b.conn.handler = {
      ...b,
      onEstablished: () => {},
      onData: (c, buf, off, len) => b.onData(c, buf, off, len),
      onReadable: () => {},
      onPeerFin: (c) => {
        b.onPeerFin(c);
        c.shutdownWrite(pair.now);
      },
      onSendSpace: () => {},
      onClosed: (c, r) => b.onClosed(c, r),
    };
    a.conn.shutdownWrite(pair.now);
    const states: string[] = [];
    pair.runUntil(() => {
      const s = name(a.conn.state);
      if (states[states.length - 1] !== s) states.push(s);
      return a.conn.state === TcpState.TimeWait;
    }, "TIME-WAIT");
    expect(states).toEqual(["FIN-WAIT-1", "TIME-WAIT"]);
    const finAck = pair.sent("B").find((s) => s.p.flags & FIN)!.p;
    expect(finAck.flags).toBe(FIN | ACK);
    pair.runUntil(() => b.closed !== null, "B closed");
  });

  test("TIME-WAIT is reused by a new SYN beyond the old sequence space, not by an old one", () => {
    const pair = new EnginePair({ trace: true });
    // B connects to A so that A (the passive side) closes first and holds TIME-WAIT.
    const b1 = pair.connect("B", 80, { localPort: 5555 });
    pair.runUntil(() => b1.established && pair.a.apps.length === 1 && pair.a.lastApp.established, "handshake");
    const a1 = pair.a.lastApp;
    a1.send("x");
    a1.conn.shutdownWrite(pair.now);
    pair.runUntil(() => b1.peerFin, "FIN at B");
    b1.conn.shutdownWrite(pair.now);
    pair.runUntil(() => a1.conn.state === TcpState.TimeWait && b1.closed !== null, "A in TIME-WAIT");
    const oldRcvNxt = a1.conn.rcvNxt;
    // An old-looking SYN (at or below RCV.NXT) gets an ACK, not a connection.
    pair.b.scripted.push(oldRcvNxt - 10);
    const sentBefore = pair.sent("A").length;
    const stale = pair.connect("B", 80, { localPort: 5555 });
    pair.runUntil(() => pair.sent("A").length > sentBefore, "A answers");
    const answer = pair.sent("A")[sentBefore]!.p;
    expect(answer.flags).toBe(ACK);
    expect(answer.ack).toBe(oldRcvNxt);
    expect(pair.a.requests.length).toBe(1);
    expect(name(a1.conn.state)).toBe("TIME-WAIT");
    // B's SYN-SENT finds that ACK unacceptable and answers with a RST
    // (RFC 9293 §3.10.7.3), which would end A's TIME-WAIT early (RFC 9293
    // §3.10.7.4; Linux too, without rfc1337): keep it off the wire here.
    pair.dropFrom("B", (p) => p !== null && (p.flags & RST) !== 0);
    pair.advance(2);
    stale.conn.abort(pair.now);
    pair.advance(2);
    pair.dropFrom("B", null);
    expect(name(a1.conn.state)).toBe("TIME-WAIT");
    // A new SYN beyond RCV.NXT replaces the TIME-WAIT connection.
    pair.b.scripted.push(oldRcvNxt + 1_000_000);
    const b2 = pair.connect("B", 80, { localPort: 5555 });
    pair.runUntil(() => b2.established && pair.a.apps.length === 2 && pair.a.lastApp.established, "new connection");
    expect(a1.conn.state).toBe(TcpState.Closed);
    expect(pair.a.tcp.connectionCount).toBe(1);
    b2.send("again");
    pair.runUntil(() => pair.a.lastApp.received === 5, "data on the new connection");
  });
});

describe("resets", () => {
  test("A aborts: B sees 'reset'", () => {
    const pair = new EnginePair({ trace: true });
    const { a, b } = established(pair);
    a.conn.abort(pair.now);
    expect(a.closed).toBe("aborted");
    pair.runUntil(() => b.closed !== null, "B closed");
    expect(b.closed).toBe("reset");
    expect(pair.a.tcp.connectionCount + pair.b.tcp.connectionCount).toBe(0);
  });

  test("B aborts with data in flight: A sees 'reset'", () => {
    const pair = new EnginePair({ trace: true });
    const { a, b } = established(pair);
    a.writeStream(1 << 20, false);
    pair.advance(3);
    b.conn.abort(pair.now);
    pair.runUntil(() => a.closed !== null, "A closed");
    expect(a.closed).toBe("reset");
    // Segments still in flight toward B hit no connection: B answers RSTs.
    pair.advance(10);
    expect(pair.b.stats.dropCount("tcp-no-connection")).toBeGreaterThan(0);
    expect(pair.a.tcp.connectionCount + pair.b.tcp.connectionCount).toBe(0);
  });

  test("a RST whose sequence is in the window but not exact draws a challenge ACK; the answer RST then resets", () => {
    const pair = new EnginePair({ trace: true });
    const { a, b } = established(pair);
    // Data from A is lost, then A aborts: its RST carries SND.NXT, past B's RCV.NXT.
    pair.dropFrom("A", (p) => p !== null && p.payloadLen > 0);
    a.send("lost bytes");
    pair.advance(1);
    pair.dropFrom("A", null);
    a.conn.abort(pair.now);
    pair.runUntil(() => b.closed !== null, "B closed");
    expect(b.closed).toBe("reset");
    const fromB = pair.sent("B").map((s) => s.p);
    const challenge = fromB[fromB.length - 1]!;
    expect(challenge.flags).toBe(ACK); // the challenge ACK
    const fromA = pair.sent("A").map((s) => s.p);
    // A's first RST (seq past RCV.NXT), then the RST answering the challenge (seq = its ACK).
    const rsts = fromA.filter((p) => p.flags & RST);
    expect(rsts.length).toBe(2);
    expect(rsts[1]!.seq).toBe(challenge.ack);
  });
});

describe("half-close", () => {
  test("A shuts its write side and still receives everything B sends", () => {
    const pair = new EnginePair();
    const { a, b } = established(pair);
    a.writeStream(100_000, true);
    pair.runUntil(() => b.peerFin && a.conn.state === TcpState.FinWait2, "A's FIN acknowledged");
    b.writeStream(3_000_000, true);
    pair.runUntil(() => a.peerFin && b.closed !== null, "B's FIN and close");
    expect(b.received).toBe(100_000);
    expect(a.received).toBe(3_000_000);
    expect(a.checker.firstMismatch).toBe(-1);
    expect(b.checker.firstMismatch).toBe(-1);
    expect(name(a.conn.state)).toBe("TIME-WAIT");
  });

  test("B shuts its write side and still receives everything A sends", () => {
    const pair = new EnginePair();
    const { a, b } = established(pair);
    b.conn.shutdownWrite(pair.now);
    pair.runUntil(() => a.peerFin && b.conn.state === TcpState.FinWait2, "B's FIN acknowledged");
    expect(name(a.conn.state)).toBe("CLOSE-WAIT");
    a.writeStream(3_000_000, true);
    pair.runUntil(() => b.peerFin && a.closed !== null, "A's FIN and close");
    expect(b.received).toBe(3_000_000);
    expect(b.checker.firstMismatch).toBe(-1);
    expect(a.closed).toBe("closed");
  });

  test("shutdownWrite before the handshake completes sends the FIN once established", () => {
    const pair = new EnginePair();
    const a = pair.connect("A", 80);
    a.send("early");
    a.conn.shutdownWrite(pair.now);
    expect(name(a.conn.state)).toBe("SYN-SENT");
    pair.runUntil(() => pair.b.apps.length === 1 && pair.b.lastApp.peerFin, "FIN at B");
    expect(pair.b.lastApp.text()).toBe("early");
    pair.runUntil(() => a.conn.state === TcpState.FinWait2, "FIN-WAIT-2");
  });
});
