// Bulk transfers between two of our engines through the fault injector:
// loss, reordering, duplication and corruption, byte-exact at the end.
// Virtual time costs nothing but CPU; the wall time is printed.
import { describe, expect, test } from "bun:test";
import { EnginePair, streamDigest, type AppConn, type SideName } from "../../support/engine-pair.ts";
import { parseFaultSpec } from "../../../src/link/fault.ts";
import { TcpState } from "../../../src/stack/tcp/connection.ts";

const MiB = 1 << 20;

interface Result {
  sender: AppConn;
  receiver: AppConn;
  pair: EnginePair;
  wallMs: number;
}

/**
 * Opens A -> B, sends `bytes` from `from` to the other side (with
 * backpressure), closes both ways, and waits until both ends are closed.
 */
function transfer(bytes: number, from: SideName, spec: string, opts: { checksumTrusted?: boolean; issA?: number; issB?: number } = {}): Result {
  const f = spec === "" ? null : parseFaultSpec(spec);
  const pair = new EnginePair({
    faultsAB: f,
    faultsBA: f ? { ...f, seed: f.seed + 1 } : null,
    checksumTrusted: opts.checksumTrusted ?? false,
  });
  if (opts.issA !== undefined) pair.a.scripted.push(opts.issA);
  if (opts.issB !== undefined) pair.b.scripted.push(opts.issB);
  pair.b.onAccept = (app) => {
    app.collect = false;
  };
  const a = pair.connect("A", 5001, { localPort: 40000 });
  a.collect = false;
  pair.runUntil(() => a.established && pair.b.apps.length === 1 && pair.b.lastApp.established, "handshake");
  const b = pair.b.lastApp;
  const [sender, receiver] = from === "A" ? [a, b] : [b, a];
  const t0 = performance.now();
  sender.writeStream(bytes, true);
  pair.runUntil(() => receiver.peerFin, `${bytes} bytes`, 3_600_000 * 10);
  receiver.conn.shutdownWrite(pair.now);
  pair.runUntil(() => a.closed !== null && b.closed !== null, "close", 3_600_000);
  return { sender, receiver, pair, wallMs: performance.now() - t0 };
}

function report(label: string, bytes: number, r: Result): void {
  const virt = (r.pair.now - 1000) / 1000;
  const fa = r.pair.faultAB?.counters;
  const fb = r.pair.faultBA?.counters;
  console.log(
    `${label}: ${(bytes / MiB).toFixed(0)} MiB in ${r.wallMs.toFixed(0)} ms wall ` +
      `(${(bytes / MiB / (r.wallMs / 1000)).toFixed(1)} MiB/s), ${virt.toFixed(1)} s virtual; ` +
      `frames A>B ${r.pair.ab.framesSent} B>A ${r.pair.ba.framesSent}` +
      (fa && fb ? `; faults A>B lost ${fa.lost} dup ${fa.duplicated} reord ${fa.reordered} corrupt ${fa.corrupted}, B>A lost ${fb.lost} dup ${fb.duplicated} reord ${fb.reordered} corrupt ${fb.corrupted}` : ""),
  );
}

function expectExact(r: Result, bytes: number): void {
  expect(r.receiver.received).toBe(bytes);
  expect(r.receiver.checker.firstMismatch).toBe(-1);
  expect(r.sender.closed).toBe("closed");
  expect(r.receiver.closed).toBe("closed");
}

describe("bulk transfer", () => {
  test("16 MiB A -> B on a clean link, SHA-256 equal", () => {
    const bytes = 16 * MiB;
    const r = transfer(bytes, "A", "");
    report("clean A>B", bytes, r);
    expectExact(r, bytes);
    expect(r.receiver.checker.digest()).toBe(streamDigest(bytes));
  });

  for (const from of ["A", "B"] as const) {
    test(`64 MiB ${from} -> ${from === "A" ? "B" : "A"} at 5% loss, 5% reordering, 2% duplication`, () => {
      const bytes = 64 * MiB;
      const r = transfer(bytes, from, "loss=0.05,reorder=0.05,dup=0.02,seed=7");
      report(`lossy ${from}>`, bytes, r);
      expectExact(r, bytes);
      expect(r.pair.faultAB!.counters.lost).toBeGreaterThan(1000);
      expect(r.pair.faultBA!.counters.lost).toBeGreaterThan(300);
      expect(r.wallMs).toBeLessThan(30_000);
    });
  }

  test("64 MiB with 1% corruption on top: every corrupted frame is caught by a checksum", () => {
    const bytes = 64 * MiB;
    const r = transfer(bytes, "A", "loss=0.05,reorder=0.05,dup=0.02,corrupt=0.01,seed=11");
    report("corrupt A>", bytes, r);
    expectExact(r, bytes);
    const corrupted = r.pair.faultAB!.counters.corrupted + r.pair.faultBA!.counters.corrupted;
    expect(corrupted).toBeGreaterThan(400);
    // Every corrupted frame was dropped by some check: the IPv4 header
    // checksum, the TCP checksum, or a header the damage made malformed.
    // (A flipped byte always changes a one's-complement sum: the change
    // is d or d*256 with 0 < |d| < 256, never a multiple of 0xffff.)
    const drops = (s: SideName): number => r.pair.side(s).stats.dropTable().reduce((n, [, c]) => n + c, 0);
    const dropped = drops("A") + drops("B");
    expect(dropped).toBeGreaterThanOrEqual(corrupted);
    const tcpBad = r.pair.a.stats.dropCount("tcp-bad-checksum") + r.pair.b.stats.dropCount("tcp-bad-checksum");
    const ipBad = r.pair.a.stats.dropCount("ipv4-bad-checksum") + r.pair.b.stats.dropCount("ipv4-bad-checksum");
    expect(tcpBad).toBeGreaterThan(corrupted / 2);
    expect(ipBad).toBeGreaterThan(0);
  });

  test("sequence numbers wrapping in the middle of a lossy transfer", () => {
    const bytes = 8 * MiB;
    const r = transfer(bytes, "A", "loss=0.05,reorder=0.05,dup=0.02,seed=3", { issA: 0xffffffff - 3 * MiB, issB: 0xfffffff0 });
    report("wrap A>", bytes, r);
    expectExact(r, bytes);
  });

  test("TSO and checksum offload: 64 KiB super-segments, retransmissions in MSS pieces", () => {
    const f = parseFaultSpec("loss=0.02,seed=9");
    const pair = new EnginePair({ offload: true, trace: true, faultsAB: f, faultsBA: { ...f, seed: 10 } });
    const a = pair.connect("A", 5001);
    a.collect = false;
    pair.runUntil(() => pair.b.apps.length === 1 && pair.b.lastApp.established, "handshake");
    const b = pair.b.lastApp;
    b.collect = false;
    const bytes = 8 * MiB;
    a.writeStream(bytes, true);
    pair.runUntil(() => b.peerFin, "all data", 3_600_000);
    expect(b.received).toBe(bytes);
    expect(b.checker.firstMismatch).toBe(-1);
    const sizes = pair.sent("A").map((s) => s.p.payloadLen);
    const biggest = Math.max(...sizes);
    expect(biggest).toBeGreaterThan(60_000);
    expect(biggest).toBeLessThanOrEqual(65535 - 20 - 20 - 12);
    expect(biggest % 1448).toBe(0); // whole MSS-sized pieces for the device to cut
  });

  test("the receiving host reads slowly: zero windows and window updates under loss", () => {
    const f = parseFaultSpec("loss=0.05,reorder=0.05,dup=0.02,seed=21");
    const pair = new EnginePair({ faultsAB: f, faultsBA: { ...f, seed: 22 }, tcpA: { sndBuf: 256 * 1024 }, tcpB: { rcvBuf: 64 * 1024 } });
    const a = pair.connect("A", 5001);
    a.collect = false;
    pair.runUntil(() => pair.b.apps.length === 1 && pair.b.lastApp.established, "handshake");
    const b = pair.b.lastApp;
    b.collect = false;
    b.readMode = "manual";
    const bytes = 4 * MiB;
    a.writeStream(bytes, true);
    // The host drains 20 KiB every 10 ms: 2 MB/s.
    const reader = (): void => {
      b.read(20 * 1024);
      if (!b.peerFin || b.buffered > 0) pair.after(10, reader);
    };
    pair.after(10, reader);
    pair.runUntil(() => b.peerFin && b.buffered === 0, "all read", 3_600_000);
    expect(b.received).toBe(bytes);
    expect(b.checker.firstMismatch).toBe(-1);
    pair.runUntil(() => a.conn.state === TcpState.FinWait2, "FIN acknowledged");
    // Backpressure: the writer never queued more than the send buffer.
    expect(a.maxQueued).toBeLessThanOrEqual(256 * 1024);
    expect(a.maxQueued).toBeGreaterThan(128 * 1024);
    expect(a.sendSpaceEvents).toBeGreaterThan(10);
    expect(b.readableEvents).toBeGreaterThan(0);
  });
});
