// One TCP connection between two engines (engine-pair.ts) played from a
// schedule: faults on each link, the stream each side sends, how each
// host reads (eagerly, or in paced chunks with pauses: the window fills
// and closes), when each side closes its sending half (after its own
// writes, or only after the peer's FIN; both at the same instant for a
// simultaneous close), forced ISSs, and a middlebox that shrinks the
// windows one side advertises. runSchedule() plays it and returns what
// went wrong; the fast-check arbitraries that generate schedules for the
// property tests are here too.
import * as fc from "fast-check";
import { EnginePair, streamDigest, type AppConn, type Packet, type SideName } from "./engine-pair.ts";
import { DEFAULT_TCP_CONFIG, TcpState, type TcpConfig } from "../../src/stack/tcp/connection.ts";
import { formatFaultSpec, type FaultConfig } from "../../src/link/fault.ts";
import { updateChecksum16 } from "../../src/wire/checksum.ts";
import { SYN } from "../../src/stack/tcp/segment.ts";

/** How a host takes the bytes its connection received. */
export type Reader =
  | { kind: "eager" }
  /** `chunk` bytes every `everyMs`, none during the pauses (ms after the first bytes arrived). */
  | { kind: "paced"; chunk: number; everyMs: number; pauses: Array<{ atMs: number; forMs: number }> };

/** When a side shuts down its sending half (its stream is always written first). */
export type Close =
  /** `delayMs` after its last byte was handed to the connection. */
  | { kind: "afterWrite"; delayMs: number }
  /** `delayMs` after the peer's FIN arrived (and its own writes are done). */
  | { kind: "afterPeerFin"; delayMs: number };

export interface SidePlan {
  /** Bytes of the test stream this side sends. */
  bytes: number;
  rcvBuf: number;
  sndBuf: number;
  reader: Reader;
  close: Close;
  /** Forced ISS (the stack's first random32 draw for this connection). */
  iss?: number;
}

/** The windows one side advertises are capped (bytes, after the handshake) step by step, then left alone. */
export interface WindowShrink {
  side: SideName;
  steps: Array<{ capBytes: number; forMs: number }>;
}

export interface Schedule {
  family: 4 | 6;
  /** The side doing the active open. */
  opener: SideName;
  latencyMs: number;
  faultsAB: FaultConfig | null;
  faultsBA: FaultConfig | null;
  a: SidePlan;
  b: SidePlan;
  /**
   * Both sides shut down at the same instant, `delayMs` after both
   * finished writing (their FINs cross: FIN-WAIT-1 -> CLOSING on both).
   * Overrides each side's `close`.
   */
  simultaneousClose: { delayMs: number } | null;
  shrink?: WindowShrink | null;
  /** Other TCP settings for both stacks. */
  tcp?: Partial<TcpConfig>;
  /** Keep a packet trace for failure messages. */
  trace?: boolean;
}

export interface Outcome {
  /** Empty when every expectation held. */
  problems: string[];
  pair: EnginePair;
  /** The apps of the connection (A's and B's). */
  a: AppConn | null;
  b: AppConn | null;
  /** Virtual ms from the handshake until both ends were CLOSED or in TIME-WAIT. */
  closeMs: number;
  /** Window fields the middlebox rewrote, and how many of those moved the right edge left. */
  rewrites: number;
  edgeShrinks: number;
  /** Most bytes each side's receive buffer held (A, B). */
  maxBuffered: [number, number];
}

/** The longest run allowed, virtual ms (a stall shows as this timeout). */
const RUN_LIMIT_MS = 4 * 3_600_000;

/**
 * Plays a schedule and checks: both streams arrive exactly (length and
 * SHA-256), both ends report a graceful close, both reach CLOSED or
 * TIME-WAIT within the user timeout after the hosts finished (their last
 * shutdown or read), and, once TIME-WAIT has run out, no connection is
 * left on either stack.
 */
export function runSchedule(s: Schedule): Outcome {
  const tcp = { ...DEFAULT_TCP_CONFIG, ...s.tcp };
  const pair = new EnginePair({
    latencyMs: s.latencyMs,
    faultsAB: s.faultsAB,
    faultsBA: s.faultsBA,
    tcpA: { ...tcp, rcvBuf: s.a.rcvBuf, sndBuf: s.a.sndBuf },
    tcpB: { ...tcp, rcvBuf: s.b.rcvBuf, sndBuf: s.b.sndBuf },
    trace: s.trace ?? false,
  });
  const out: Outcome = { problems: [], pair, a: null, b: null, closeMs: -1, rewrites: 0, edgeShrinks: 0, maxBuffered: [0, 0] };
  const plan = (name: SideName): SidePlan => (name === "A" ? s.a : s.b);
  if (s.a.iss !== undefined) pair.a.scripted.push(s.a.iss);
  if (s.b.iss !== undefined) pair.b.scripted.push(s.b.iss);

  let establishedAt = -1;
  /** When a host last did something: a shutdown, or a read that took bytes. */
  let hostsDoneAt = 0;
  const shutdownAsked = new Set<AppConn>();

  const shutdown = (app: AppConn): void => {
    hostsDoneAt = Math.max(hostsDoneAt, pair.now);
    app.conn.shutdownWrite(pair.now);
  };

  const setup = (app: AppConn, p: SidePlan): void => {
    app.collect = false;
    const r = p.reader;
    if (r.kind === "paced") app.readMode = "manual";
    app.onEstablishedHook = () => {
      if (establishedAt < 0) establishedAt = pair.now;
      app.writeStream(p.bytes, false);
    };
    if (r.kind !== "paced") return;
    // The host reads while bytes wait (also after a graceful close: those
    // bytes were acknowledged), and sleeps until the next onReadable.
    let start = -1;
    let ticking = false;
    const tick = (): void => {
      const t = pair.now - start;
      const paused = r.pauses.some((w) => t >= w.atMs && t < w.atMs + w.forMs);
      if (!paused && app.read(r.chunk) > 0) hostsDoneAt = Math.max(hostsDoneAt, pair.now);
      ticking = app.buffered > 0;
      if (ticking) pair.after(r.everyMs, tick);
    };
    const onReadable = app.onReadable.bind(app);
    app.onReadable = (conn) => {
      onReadable(conn);
      if (start < 0) start = pair.now;
      if (ticking) return;
      ticking = true;
      pair.after(r.everyMs, tick);
    };
  };

  const opener = pair.side(s.opener);
  const acceptor = pair.peer(s.opener);
  acceptor.onAccept = (app) => setup(app, plan(acceptor.name));
  const first = pair.connect(s.opener, 5001, { family: s.family, localPort: 40000 });
  setup(first, plan(opener.name));

  const apps = (): [AppConn | null, AppConn | null] => {
    const o = first;
    const p = acceptor.apps.length > 0 ? acceptor.lastApp : null;
    return s.opener === "A" ? [o, p] : [p, o];
  };

  if (s.shrink) installShrinker(pair, s.shrink, () => establishedAt, out);

  // The hosts' closing decisions, taken after every pass of the event loop.
  const closeDriver = (): void => {
    const [a, b] = apps();
    if (a === null || b === null || !a.established || !b.established) return;
    if (s.simultaneousClose !== null) {
      if (shutdownAsked.size === 0 && a.writeDone && b.writeDone) {
        shutdownAsked.add(a).add(b);
        pair.after(s.simultaneousClose.delayMs, () => {
          shutdown(a);
          shutdown(b);
        });
      }
      return;
    }
    for (const [app, p] of [
      [a, s.a],
      [b, s.b],
    ] as const) {
      if (shutdownAsked.has(app) || !app.writeDone) continue;
      if (p.close.kind === "afterPeerFin" && !app.peerFin) continue;
      shutdownAsked.add(app);
      pair.after(p.close.delayMs, () => shutdown(app));
    }
  };

  const ended = (app: AppConn | null): boolean => app !== null && (app.conn.state === TcpState.Closed || app.conn.state === TcpState.TimeWait);
  let bothEndedAt = -1;
  // Progress: anything acknowledged, received, read, written or a state
  // change. None for longer than the user timeout (plus TIME-WAIT) is a
  // stall: the connection neither works nor gives up.
  let fingerprint = "";
  let progressAt = pair.now;
  let stalled = false;
  const stallMs = tcp.userTimeoutMs + tcp.timeWaitMs + 60_000;
  const done = (): boolean => {
    closeDriver();
    const [a, b] = apps();
    if (a !== null) out.maxBuffered[0] = Math.max(out.maxBuffered[0], a.conn.rcvBuf.length);
    if (b !== null) out.maxBuffered[1] = Math.max(out.maxBuffered[1], b.conn.rcvBuf.length);
    if (bothEndedAt < 0 && ended(a) && ended(b)) bothEndedAt = pair.now;
    if (bothEndedAt >= 0 && a!.closed !== null && b!.closed !== null && a!.buffered === 0 && b!.buffered === 0) return true;
    const f = [a, b].map((x) => (x === null ? "-" : `${x.conn.state},${x.conn.sndUna},${x.conn.rcvNxt},${x.received},${x.written},${x.buffered}`)).join("/");
    if (f !== fingerprint) {
      fingerprint = f;
      progressAt = pair.now;
    } else if (pair.now - progressAt > stallMs) {
      stalled = true;
      return true;
    }
    return false;
  };

  const finished = pair.run(done, RUN_LIMIT_MS);
  const [a, b] = apps();
  out.a = a;
  out.b = b;
  const fail = (msg: string): void => {
    out.problems.push(msg);
  };
  if (!finished || stalled) {
    fail(`${stalled ? `stalled: no progress for ${stallMs} virtual ms` : `not finished after ${RUN_LIMIT_MS} virtual ms`} (frames A>B ${pair.ab.framesSent}, B>A ${pair.ba.framesSent})`);
    return out;
  }
  out.closeMs = bothEndedAt - establishedAt;
  for (const [name, app, sender] of [
    ["A", a!, s.b],
    ["B", b!, s.a],
  ] as const) {
    if (app.closed !== "closed") fail(`${name} ended with "${app.closed}", not a graceful close`);
    if (!app.peerFin) fail(`${name} never saw the peer's FIN`);
    if (app.received !== sender.bytes) fail(`${name} received ${app.received} of ${sender.bytes} bytes`);
    else if (app.checker.digest() !== streamDigest(sender.bytes)) fail(`${name}: SHA-256 of the received stream differs (first wrong byte at ${app.checker.firstMismatch})`);
  }
  const late = bothEndedAt - hostsDoneAt;
  if (late > tcp.userTimeoutMs) fail(`both ends CLOSED or TIME-WAIT only ${late} ms after the hosts finished (user timeout ${tcp.userTimeoutMs} ms)`);
  // TIME-WAIT runs out; nothing may be left.
  pair.advance(tcp.timeWaitMs + 1000);
  if (pair.a.tcp.connectionCount !== 0 || pair.b.tcp.connectionCount !== 0) {
    fail(`connections left after TIME-WAIT: A ${pair.a.tcp.connectionCount} (${stateOf(a)}), B ${pair.b.tcp.connectionCount} (${stateOf(b)})`);
  }
  return out;
}

function stateOf(app: AppConn | null): string {
  if (app === null) return "no connection";
  return `${app.conn.stateName} closed=${app.closed} received=${app.received} buffered=${app.buffered} written=${app.written} log=[${app.log.join(" ")}]`;
}

/**
 * Rewrites the window field of `shrink.side`'s segments on the wire
 * (fixing the TCP checksum incrementally, RFC 1624), so its peer sees a
 * window capped at each step's bytes: the right edge moves left whenever
 * a cap falls below what was offered (RFC 9293 §3.8.6 discourages
 * shrinking, but a sender must cope). The receiving engine itself still
 * accepts what its real window allows.
 */
function installShrinker(pair: EnginePair, shrink: WindowShrink, establishedAt: () => number, out: Outcome): void {
  const link = shrink.side === "A" ? pair.ab : pair.ba;
  const side = pair.side(shrink.side);
  let lastEdge = -1;
  link.filter = (p: Packet | null, frame: Uint8Array): boolean => {
    if (p === null || p.proto !== "tcp" || p.flags & SYN || establishedAt() < 0) return true;
    let t = pair.now - establishedAt();
    let cap = -1;
    for (const st of shrink.steps) {
      if (t < st.forMs) {
        cap = st.capBytes;
        break;
      }
      t -= st.forMs;
    }
    const app = side.apps[side.apps.length - 1];
    const shift = app === undefined ? 0 : app.conn.rcvShift;
    let field = p.window;
    if (cap >= 0) {
      const capped = Math.min(field, Math.floor(cap / 2 ** shift));
      if (capped !== field) {
        const l4 = p.family === 4 ? (frame[0]! & 15) * 4 : 40;
        const csum = (frame[l4 + 16]! << 8) | frame[l4 + 17]!;
        const fixed = updateChecksum16(csum, field, capped);
        frame[l4 + 14] = capped >>> 8;
        frame[l4 + 15] = capped & 255;
        frame[l4 + 16] = fixed >>> 8;
        frame[l4 + 17] = fixed & 255;
        field = capped;
        out.rewrites++;
      }
    }
    const edge = (p.ack + field * 2 ** shift) >>> 0;
    if (lastEdge >= 0 && ((edge - lastEdge) | 0) < 0) out.edgeShrinks++;
    lastEdge = edge;
    return true;
  };
}

/** A one-line account of a schedule's run, for failure messages. */
export function summarize(s: Schedule, o: Outcome): string {
  const f = (c: FaultConfig | null): string => (c === null ? "none" : formatFaultSpec(c));
  const lines = [
    `problems:\n  ${o.problems.join("\n  ")}`,
    `faults A>B ${f(s.faultsAB)}; B>A ${f(s.faultsBA)}`,
    `A: ${stateOf(o.a)}`,
    `B: ${stateOf(o.b)}`,
    `virtual now ${o.pair.now}`,
  ];
  if (s.trace) lines.push(o.pair.traceTail(40));
  return lines.join("\n");
}

// =====================================================================
// Arbitraries
// =====================================================================

/** Probabilities in whole percent (readable counterexamples). */
const percent = (max: number): fc.Arbitrary<number> => fc.integer({ min: 0, max }).map((n) => n / 100);

export const faultArb: fc.Arbitrary<FaultConfig | null> = fc.option(
  fc.record({
    loss: percent(15),
    reorder: percent(20),
    dup: percent(10),
    corrupt: percent(3),
    seed: fc.integer({ min: 0, max: 0xffffffff }),
    delay: fc.integer({ min: 1, max: 20 }),
  }),
  { nil: null, freq: 5 },
);

/** Stream sizes: often nothing or a little, up to `max`. */
export const bytesArb = (max: number): fc.Arbitrary<number> =>
  fc.oneof(
    { arbitrary: fc.constant(0), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: Math.min(4000, max) }), weight: 2 },
    { arbitrary: fc.integer({ min: Math.min(4000, max), max }), weight: 3 },
  );

export const readerArb: fc.Arbitrary<Reader> = fc.oneof(
  fc.constant<Reader>({ kind: "eager" }),
  fc.record({
    kind: fc.constant("paced" as const),
    chunk: fc.integer({ min: 256, max: 16384 }),
    everyMs: fc.integer({ min: 1, max: 50 }),
    pauses: fc.array(fc.record({ atMs: fc.integer({ min: 0, max: 3000 }), forMs: fc.integer({ min: 1, max: 4000 }) }), { maxLength: 3 }),
  }),
);

export const closeArb: fc.Arbitrary<Close> = fc.record({
  kind: fc.constantFrom("afterWrite" as const, "afterPeerFin" as const),
  delayMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2000 })),
});

export const sidePlanArb = (maxBytes: number, rcvBuf: fc.Arbitrary<number>, sndBuf: fc.Arbitrary<number>): fc.Arbitrary<SidePlan> =>
  fc.record({ bytes: bytesArb(maxBytes), rcvBuf, sndBuf, reader: readerArb, close: closeArb });

/** Buffers from tiny (windows below one MSS) to a few hundred KiB. */
export const bufArb = fc.oneof(fc.integer({ min: 1000, max: 8192 }), fc.integer({ min: 8192, max: 256 * 1024 }));

export const scheduleArb = (maxBytes: number): fc.Arbitrary<Schedule> =>
  fc
    .record({
      family: fc.constantFrom(4 as const, 6 as const),
      opener: fc.constantFrom("A" as const, "B" as const),
      latencyMs: fc.integer({ min: 0, max: 20 }),
      faultsAB: faultArb,
      faultsBA: faultArb,
      a: sidePlanArb(maxBytes, bufArb, bufArb),
      b: sidePlanArb(maxBytes, bufArb, bufArb),
      simultaneousClose: fc.oneof(
        { arbitrary: fc.constant(null), weight: 3 },
        { arbitrary: fc.record({ delayMs: fc.integer({ min: 0, max: 500 }) }), weight: 1 },
      ),
    })
    .map(someoneCloses);

/** Someone has to close first: two sides each waiting for the other's FIN never end. */
export function someoneCloses(s: Schedule): Schedule {
  if (s.a.close.kind !== "afterPeerFin" || s.b.close.kind !== "afterPeerFin") return s;
  return { ...s, a: { ...s.a, close: { kind: "afterWrite", delayMs: s.a.close.delayMs } } };
}
