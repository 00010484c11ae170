// TcpSplice between a hand-driven guest (tcp-harness, virtual clock) and a
// fake host socket: bytes both ways with backpressure, half-close both
// ways, resets carried across, and the exit cut.
import { describe, expect, test } from "bun:test";
import { HostKeepalive, TcpSplice, type SpliceOwner } from "../../../src/host/flows/tcp-splice.ts";
import type { Deferred, StackClock } from "../../../src/host/clock.ts";
import type { TcpSocket, TcpSocketOwner } from "../../../src/io/tcp-socket.ts";
import { EAGAIN } from "../../../ffi/libc.ts";
import { ACK, FIN, Guest, Harness, RST } from "../../support/tcp-harness.ts";

const ECONNRESET = 104;
const EPIPE = 32;
const BUF = 16 * 1024;

/** The TcpSocket surface the splice uses, over in-memory queues. */
class FakeSocket {
  owner!: TcpSocketOwner;
  readable = false;
  writable = true;
  /** Bytes the kernel will still take from us. */
  room = Infinity;
  /** What the splice wrote (guest -> host). */
  written: number[] = [];
  /** What the host peer sends (host -> guest), not read yet. */
  private incoming: number[] = [];
  /** Bytes the splice read. */
  readTotal = 0;
  private eof = false;
  private readError = 0;
  writeError = 0;
  shut = false;
  closed = false;
  wasReset = false;

  read(buf: Uint8Array, off: number, len: number): number {
    if (this.incoming.length === 0) {
      if (this.readError !== 0) return -this.readError;
      if (this.eof) return 0;
      this.readable = false;
      return -EAGAIN;
    }
    const n = Math.min(len, this.incoming.length);
    buf.set(this.incoming.splice(0, n), off);
    this.readTotal += n;
    return n;
  }

  write(buf: Uint8Array, off: number, len: number): number {
    if (this.writeError !== 0) return -this.writeError;
    const n = Math.min(len, this.room);
    if (n === 0) {
      this.writable = false;
      return 0;
    }
    this.room -= n;
    for (let i = 0; i < n; i++) this.written.push(buf[off + i]!);
    return n;
  }

  shutdownWrite(): void {
    this.shut = true;
  }
  close(): void {
    this.closed = true;
  }
  reset(): void {
    this.wasReset = true;
  }
  localText(): string {
    return "127.0.0.1:40000";
  }
  setKeepalive(): void {}

  // --- the host peer ---

  /** The peer sends bytes (or EOF, or the socket fails): the socket turns readable. */
  peerSends(bytes: number[] | "eof" | number): void {
    if (bytes === "eof") this.eof = true;
    else if (typeof bytes === "number") this.readError = bytes;
    else this.incoming.push(...bytes);
    this.readable = true;
    this.owner.tcpReadable(this as unknown as TcpSocket);
  }

  /** The peer read `n` bytes: the socket takes that many more, and says so. */
  peerDrains(n: number): void {
    this.room += n;
    this.writable = true;
    this.owner.tcpWritable(this as unknown as TcpSocket);
  }
}

/** The StackClock surface the splice uses, on the harness's virtual time. */
function clockOf(h: Harness): StackClock {
  return {
    now: () => h.now,
    defer: (d: Deferred) => h.defer(() => d.runDeferred()),
    afterActivity: () => {},
    settle: () => {},
  } as unknown as StackClock;
}

class Owner implements SpliceOwner {
  done = 0;
  spliceDone(): void {
    this.done++;
  }
}

const bytes = (n: number, seed = 0): number[] => Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** A guest-started flow, established both ways: the guest handshake done, the host socket attached. */
function setup(): { h: Harness; g: Guest; sock: FakeSocket; splice: TcpSplice; owner: Owner } {
  const h = new Harness({ tcp: { rcvBuf: BUF, sndBuf: BUF } });
  h.policy = "hold";
  const g = new Guest(h);
  g.syn();
  const owner = new Owner();
  const splice = new TcpSplice(clockOf(h), true, owner, new HostKeepalive(), false);
  splice.bindGuest(h.requests[0]!);
  h.requests[0]!.accept(h.now);
  h.endBatch();
  g.readSynAck();
  g.send({ flags: ACK });
  const sock = new FakeSocket();
  splice.attachHost(sock as unknown as TcpSocket, "192.0.2.1:80");
  h.endBatch();
  h.take();
  return { h, g, sock, splice, owner };
}

/** Acknowledges everything the stack sent since the last take(); returns the payload bytes. */
function absorbAll(h: Harness, g: Guest): number[] {
  const got: number[] = [];
  for (const { p } of h.take()) {
    got.push(...p.payload);
    g.absorb(p);
  }
  return got;
}

describe("TcpSplice", () => {
  test("guest -> host: bytes go straight to the socket", () => {
    const { h, g, sock } = setup();
    const data = bytes(3000, 1);
    g.data(new Uint8Array(data.slice(0, 1400)));
    g.data(new Uint8Array(data.slice(1400)));
    expect(sock.written).toEqual(data);
    h.advance(100);
    const acks = h.take().map((s) => s.p);
    expect(acks.at(-1)!.ack).toBe(g.seq);
    expect(acks.at(-1)!.window).toBe(BUF);
  });

  test("guest -> host backpressure: a full socket shrinks the window; writable again, the bytes flow and the window reopens", () => {
    const { h, g, sock } = setup();
    sock.room = 0;
    const data = bytes(12000, 2);
    for (let off = 0; off < data.length; off += 1200) g.data(new Uint8Array(data.slice(off, off + 1200)));
    expect(sock.written.length).toBe(0);
    expect(sock.writable).toBe(false);
    h.advance(100);
    const shrunk = h.take().map((s) => s.p);
    expect(shrunk.at(-1)!.ack).toBe(g.seq);
    expect(shrunk.at(-1)!.window).toBe(BUF - data.length);
    sock.peerDrains(5000);
    expect(sock.written).toEqual(data.slice(0, 5000));
    sock.peerDrains(Infinity);
    h.endBatch();
    expect(sock.written).toEqual(data);
    h.advance(100);
    const reopened = h.take().map((s) => s.p);
    expect(reopened.length).toBeGreaterThan(0);
    expect(reopened.at(-1)!.window).toBe(BUF);
  });

  test("host -> guest: the socket is read into the send buffer; reading stops while it is full and resumes as the guest ACKs", () => {
    const { h, g, sock } = setup();
    const data = bytes(4 * BUF, 3);
    sock.peerSends(data);
    h.endBatch();
    // Only what fits the send buffer was read; the socket stays readable.
    expect(sock.readTotal).toBe(BUF);
    expect(sock.readable).toBe(true);
    const got: number[] = [];
    for (let round = 0; round < 50 && got.length < data.length; round++) {
      got.push(...absorbAll(h, g));
      g.send({ flags: ACK });
      h.advance(1);
    }
    got.push(...absorbAll(h, g));
    expect(got).toEqual(data);
    expect(sock.readTotal).toBe(data.length);
  });

  test("host bytes that come before the guest completes its handshake wait in the socket and are read, then sent, once it does", () => {
    const h = new Harness({ tcp: { rcvBuf: BUF, sndBuf: BUF } });
    h.policy = "hold";
    const g = new Guest(h);
    g.syn();
    const splice = new TcpSplice(clockOf(h), true, new Owner(), new HostKeepalive(), false);
    splice.bindGuest(h.requests[0]!);
    h.requests[0]!.accept(h.now);
    h.endBatch();
    g.readSynAck();
    // The host connected and its server talks first, while the guest has not ACKed our SYN-ACK.
    const sock = new FakeSocket();
    splice.attachHost(sock as unknown as TcpSocket, "192.0.2.1:80");
    const hello = bytes(3000, 9);
    sock.peerSends(hello);
    h.endBatch();
    expect(sock.readTotal).toBe(0);
    expect(sock.readable).toBe(true);
    g.send({ flags: ACK });
    h.endBatch();
    expect(sock.readTotal).toBe(hello.length);
    expect(absorbAll(h, g)).toEqual(hello);
  });

  test("guest FIN: shutdown(SHUT_WR) only once the bytes the socket refused are through; host EOF: our FIN; then the socket closes", () => {
    const { h, g, sock, splice, owner } = setup();
    sock.room = 0;
    g.data(new Uint8Array(bytes(500, 4)));
    g.send({ flags: FIN | ACK });
    g.seq = (g.seq + 1) >>> 0;
    expect(sock.shut).toBe(false);
    sock.peerDrains(Infinity);
    expect(sock.written).toEqual(bytes(500, 4));
    expect(sock.shut).toBe(true);
    expect(sock.closed).toBe(false);
    absorbAll(h, g);
    // The host answers, then ends its side.
    sock.peerSends(bytes(100, 5));
    sock.peerSends("eof");
    h.endBatch();
    const out = h.take().map((s) => s.p);
    expect(out.flatMap((p) => [...p.payload])).toEqual(bytes(100, 5));
    expect(out.at(-1)!.flags & FIN).toBe(FIN);
    expect(sock.closed).toBe(true);
    expect(sock.wasReset).toBe(false);
    for (const p of out) g.absorb(p);
    g.send({ flags: ACK });
    expect(owner.done).toBe(1);
    expect(splice.guestClosed).toBe(true);
  });

  test("host EOF first: the guest gets our FIN and keeps sending until its own FIN", () => {
    const { h, g, sock, owner } = setup();
    sock.peerSends("eof");
    h.endBatch();
    const fin = h.one();
    expect(fin.flags & FIN).toBe(FIN);
    g.absorb(fin);
    g.data(new Uint8Array(bytes(300, 6)));
    expect(sock.written).toEqual(bytes(300, 6));
    expect(sock.shut).toBe(false);
    g.send({ flags: FIN | ACK });
    g.seq = (g.seq + 1) >>> 0;
    expect(sock.shut).toBe(true);
    expect(sock.closed).toBe(true);
    expect(sock.wasReset).toBe(false);
    expect(owner.done).toBe(1);
  });

  test("guest RST: the host socket is reset", () => {
    const { g, sock, owner } = setup();
    g.send({ flags: RST | ACK });
    expect(sock.wasReset).toBe(true);
    expect(sock.shut).toBe(false);
    expect(owner.done).toBe(1);
  });

  test("host read error: RST to the guest, the failed socket released", () => {
    const { h, sock, owner } = setup();
    sock.peerSends(ECONNRESET);
    h.endBatch();
    const rst = h.one();
    expect(rst.flags & RST).toBe(RST);
    // Aborting the guest side resets the host socket first (onClosed "aborted").
    expect(sock.wasReset).toBe(true);
    expect(owner.done).toBe(1);
  });

  test("host write error: RST to the guest, the socket reset", () => {
    const { h, g, sock, owner } = setup();
    sock.writeError = EPIPE;
    g.data(new Uint8Array(bytes(100, 7)));
    const out = h.take().map((s) => s.p);
    expect(out.some((p) => (p.flags & RST) !== 0)).toBe(true);
    expect(sock.wasReset).toBe(true);
    expect(owner.done).toBe(1);
  });

  test("exit cut: RST toward both peers, even with bytes still buffered", () => {
    const { h, g, sock, splice, owner } = setup();
    sock.room = 0;
    g.data(new Uint8Array(bytes(800, 8)));
    h.take();
    splice.cut(h.now);
    h.endBatch();
    const rst = h.one();
    expect(rst.flags & RST).toBe(RST);
    expect(sock.wasReset).toBe(true);
    expect(sock.written.length).toBe(0);
    expect(owner.done).toBe(1);
  });
});
