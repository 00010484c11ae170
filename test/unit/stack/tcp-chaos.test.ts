// Many concurrent connections through a hostile link, each with its own
// random script (sizes both ways, IPv4 or IPv6, slow readers), and the
// invariants every one of them must keep: bytes exact both ways, every
// connection ends cleanly, no state left behind.
//
// CHAOS_SEEDS=1-200 runs more seeds (a soak; the default three are the
// regression set). CHAOS_TRACE=1 prints the packets of a failing flow.
import { expect, test } from "bun:test";
import { EnginePair, packetLine, type AppConn } from "../../support/engine-pair.ts";
import { Mulberry32, parseFaultSpec } from "../../../src/link/fault.ts";

const range = (process.env.CHAOS_SEEDS ?? "1-3").split("-").map(Number);
const seeds = Array.from({ length: range[1]! - range[0]! + 1 }, (_, i) => range[0]! + i);
const TRACE = process.env.CHAOS_TRACE === "1";

for (const seed of seeds) {
  test(`chaos seed ${seed}: 40 connections, 10% loss, reordering, duplication, corruption`, () => {
    const f = parseFaultSpec(`loss=0.1,reorder=0.1,dup=0.05,corrupt=0.02,seed=${seed}`);
    const pair = new EnginePair({
      faultsAB: f,
      faultsBA: { ...f, seed: seed + 100 },
      // TIME-WAIT outlasts the peer's longest RTO (60 s): a FIN resent
      // after it would draw a RST and end the peer with "reset".
      tcpA: { timeWaitMs: 120_000, rcvBuf: 64 * 1024 },
      tcpB: { timeWaitMs: 120_000, rcvBuf: 256 * 1024 },
      seedA: seed,
      seedB: seed + 1,
      trace: TRACE,
    });
    const rng = new Mulberry32(seed * 7919);
    const flows: Array<{ a: AppConn; toB: number; toA: number }> = [];
    const peerOf = (a: AppConn): AppConn | undefined =>
      pair.b.apps.find((x) => x.conn.destPort === a.conn.guestPort && x.conn.guestPort === a.conn.destPort);
    pair.b.onAccept = (b) => {
      b.collect = false;
      // Half the servers read slowly (8 KiB every 5 ms), and keep draining
      // after a graceful close: those bytes were acknowledged to the peer.
      if (rng.u32() % 2 === 0) {
        b.readMode = "manual";
        const drain = (): void => {
          b.read(8192);
          if (b.closed === null || b.buffered > 0) pair.after(5, drain);
        };
        pair.after(5, drain);
      }
    };
    for (let i = 0; i < 40; i++) {
      const family = rng.u32() % 3 === 0 ? 6 : 4;
      const toB = rng.u32() % 300_000;
      const toA = rng.u32() % 300_000;
      pair.after(rng.u32() % 200, () => {
        const a = pair.connect("A", 1000 + i, { family });
        a.collect = false;
        flows.push({ a, toB, toA });
        a.onEstablishedHook = () => a.writeStream(toB, true);
      });
    }
    // B answers with its own stream once established, then closes its side
    // (the peer's FIN may come before or after).
    const started = new Set<AppConn>();
    const serve = (): void => {
      for (const f of flows) {
        const b = peerOf(f.a);
        if (b === undefined || started.has(b) || !b.established) continue;
        started.add(b);
        b.writeStream(f.toA, true);
      }
      if (started.size < 40) pair.after(1, serve);
    };
    pair.after(1, serve);
    const allClosed = (): boolean => flows.length === 40 && flows.every((f) => f.a.closed !== null) && pair.b.apps.every((b) => b.closed !== null);
    const done = pair.run(allClosed, 3_600_000);
    // TIME-WAIT runs out and slow readers drain.
    if (done) pair.advance(130_000);
    for (const { a, toB, toA } of flows) {
      const b = peerOf(a)!;
      const ok = a.closed === "closed" && b.closed === "closed" && a.received === toA && b.received === toB;
      if (!ok && TRACE) {
        const port = a.conn.destPort;
        console.log(`flow ${port}: A ${a.conn.stateName} ${a.log} recv ${a.received}/${toA}; B ${b.conn.stateName} ${b.log} recv ${b.received}/${toB}`);
        const lines = pair.trace.filter((t) => t.p && (t.p.sport === port || t.p.dport === port));
        console.log(lines.slice(-40).map((t) => `${t.at.toFixed(1)} ${t.dir} ${packetLine(t.p!)}`).join("\n"));
      }
      expect(a.closed).toBe("closed");
      expect(b.closed).toBe("closed");
      expect(b.received).toBe(toB);
      expect(a.received).toBe(toA);
      expect(a.checker.firstMismatch).toBe(-1);
      expect(b.checker.firstMismatch).toBe(-1);
    }
    expect(done).toBe(true);
    expect(pair.b.requests.length).toBe(40);
    expect(pair.b.apps.every((b) => b.buffered === 0)).toBe(true);
    // Nothing is left on either side.
    expect(pair.a.tcp.connectionCount).toBe(0);
    expect(pair.b.tcp.connectionCount).toBe(0);
  });
}
