// The parts of a TCP connection driven on their own: one TcpConnection with
// a fake TcpOutput (no layer, no egress, no frames) and a virtual clock that
// runs the connection's timers at its `deadline`, as the layer's heap does.
import { describe, expect, test } from "bun:test";
import { TcpConnection, DEFAULT_TCP_CONFIG, type CloseReason, type TcpConfig, type TcpHandler } from "../../../src/stack/tcp/connection.ts";
import type { TcpOutput } from "../../../src/stack/tcp/output.ts";
import { BufferBudget } from "../../../src/stack/tcp/budget.ts";
import { ACK, RST, SYN, TcpSegment } from "../../../src/stack/tcp/segment.ts";

interface Sent {
  at: number;
  flags: number;
  seq: number;
  len: number;
}

/** Records what the connection sends; everything else is a no-op. */
class FakeOutput implements TcpOutput {
  readonly budget = new BufferBudget(1 << 26, () => {});
  readonly sent: Sent[] = [];
  removed = false;
  readonly synReceivedPressure = false;
  sendControl(conn: TcpConnection, flags: number, seq: number, now: number): void {
    this.sent.push({ at: now, flags, seq, len: 0 });
    if (flags & ACK) conn.sender.noteAckSent();
  }
  sendData(conn: TcpConnection, seq: number, len: number, _push: boolean, now: number): void {
    this.sent.push({ at: now, flags: ACK, seq, len });
    conn.sender.noteAckSent();
  }
  maxSegmentPayload(conn: TcpConnection): number {
    return conn.sender.segmentPayloadMax();
  }
  schedule(): void {}
  markDirty(): void {}
  remove(): void {
    this.removed = true;
  }
  enteredTimeWait(): void {}
  handshakeDone(): void {}
  synReceivedChanged(): void {}
  countDrop(): void {}
}

class Closes implements TcpHandler {
  closed: { reason: CloseReason; at: number } | null = null;
  now = 0;
  onEstablished(): void {}
  onData(_c: TcpConnection, _b: Uint8Array, _o: number, len: number): number {
    return len;
  }
  onReadable(): void {}
  onPeerFin(): void {}
  onSendSpace(): void {}
  onClosed(_c: TcpConnection, reason: CloseReason): void {
    this.closed = { reason, at: this.now };
  }
}

const ISS = 1000;
const IRS = 5000;

function open(cfg: Partial<TcpConfig> = {}): { conn: TcpConnection; out: FakeOutput; h: Closes } {
  const out = new FakeOutput();
  const conn = new TcpConnection(out, {
    family: 4,
    destV4: 0x0a000202,
    guestV4: 0x0a00020f,
    destV6: null,
    guestV6: null,
    destPort: 40000,
    guestPort: 80,
    passive: false,
    mss: 1460,
    cfg: { ...DEFAULT_TCP_CONFIG, ...cfg },
  });
  const h = new Closes();
  conn.handler = h;
  conn.connect(ISS, 0);
  return { conn, out, h };
}

/** The guest's SYN-ACK at `now`. */
function synAck(conn: TcpConnection, now: number, sack = false): void {
  const seg = new TcpSegment();
  seg.seq = IRS;
  seg.ack = ISS + 1;
  seg.flags = SYN | ACK;
  seg.window = 65535;
  seg.options.mss = 1460;
  seg.options.sackPermitted = sack;
  conn.input(seg, now);
}

/** The virtual clock: runs the connection's timers at each deadline up to `until`. */
function runUntil(conn: TcpConnection, h: Closes, until: number): void {
  while (conn.deadline <= until) {
    h.now = conn.deadline;
    conn.onTimer(conn.deadline);
  }
}

describe("timers on their own (fake output, virtual clock)", () => {
  test("an unanswered SYN: eight transmissions with the RTO doubling to its 60 s cap, then 'timeout'", () => {
    const { conn, out, h } = open();
    runUntil(conn, h, 10 * 60_000);
    expect(out.sent.map((s) => [s.at, s.flags, s.seq])).toEqual(
      [0, 1000, 3000, 7000, 15000, 31000, 63000, 123000].map((at) => [at, SYN, ISS]),
    );
    expect(h.closed).toEqual({ reason: "timeout", at: 183_000 });
    expect(out.removed).toBe(true);
    expect(conn.deadline).toBe(Infinity);
  });

  test("keepalive: probes (ACKs of SND.UNA-1) every interval once idle, then a RST and 'timeout'", () => {
    const { conn, out, h } = open();
    synAck(conn, 1);
    expect(conn.stateName).toBe("ESTABLISHED");
    conn.setKeepalive(10_000, 1_000, 3, 625_000, 1);
    out.sent.length = 0;
    runUntil(conn, h, 60_000);
    expect(out.sent.map((s) => [s.at, s.flags, s.seq])).toEqual([
      [10_001, ACK, ISS],
      [11_001, ACK, ISS],
      [12_001, ACK, ISS],
      [13_001, RST | ACK, ISS + 1],
    ]);
    expect(h.closed).toEqual({ reason: "timeout", at: 13_001 });
  });
});

describe("loss recovery on its own: the SACK scoreboard", () => {
  test("blocks merge, those outside SND.UNA..SND.MAX are ignored, an advancing ACK prunes", () => {
    const { conn, out } = open();
    synAck(conn, 1, true);
    const data = new Uint8Array(10 * 1460);
    conn.send(data, 0, data.length, 2);
    expect(out.sent.filter((s) => s.len > 0).length).toBe(10);
    const una = ISS + 1;
    const seg = new TcpSegment();
    seg.options.addSackBlock(una + 1460, una + 2920);
    seg.options.addSackBlock(una + 2920, una + 4380); // touches the first: one range
    seg.options.addSackBlock(una - 100, una); // below SND.UNA (a D-SACK): ignored
    seg.options.addSackBlock(una + 20000, una + 21000); // beyond SND.MAX: ignored
    conn.recovery.noteSacks(seg);
    expect(conn.recovery.sacked).toEqual([{ start: una + 1460, end: una + 4380 }]);

    // SND.UNA moves into the range: it is cut at SND.UNA.
    conn.sndUna = una + 2000;
    conn.recovery.onAck(una + 2000, 2000, conn.sndMax - una, 3);
    expect(conn.recovery.sacked).toEqual([{ start: una + 2000, end: una + 4380 }]);
  });
});
