// ICMP errors the guest sends about our TCP segments (RFC 1122 §4.2.3.9,
// RFC 1191, RFC 8201), checked against the quoted header (RFC 5927): a
// refused -L connection ends at once, soft errors change nothing, and a
// smaller path MTU shrinks our segments. Frames are built by hand
// (test/support/frames.ts), independent of src/wire.
import { describe, expect, test } from "bun:test";
import { inetChecksum, ipv4Packet } from "../../support/frames.ts";
import { Guest, Harness, GUEST_V4, SERVER_V4, GUEST_V6, SERVER_V6, ACK } from "../../support/tcp-harness.ts";
import { AppConn, type Packet } from "../../support/engine-pair.ts";
import { TcpState } from "../../../src/stack/tcp/connection.ts";

const TCP = 6;
const UDP = 17;

function v4(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}

/** A 20-byte TCP header with the fields a quote carries (checksum left 0). */
function tcpHeader(sport: number, dport: number, seq: number, ack: number, flags: number): Uint8Array {
  const b = new Uint8Array(20);
  const d = new DataView(b.buffer);
  d.setUint16(0, sport);
  d.setUint16(2, dport);
  d.setUint32(4, seq >>> 0);
  d.setUint32(8, ack >>> 0);
  b[12] = 5 << 4;
  b[13] = flags;
  d.setUint16(14, 65535);
  return b;
}

function ipv6Packet(src: Uint8Array, dst: Uint8Array, nextHeader: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(40 + payload.length);
  const d = new DataView(b.buffer);
  b[0] = 0x60;
  d.setUint16(4, payload.length);
  b[6] = nextHeader;
  b[7] = 64;
  b.set(src, 8);
  b.set(dst, 24);
  b.set(payload, 40);
  return b;
}

/** What the guest quotes of a segment we sent it: the IP header and the TCP header. */
function quoteOf(p: Packet, seq = p.seq, family: 4 | 6 = p.family): Uint8Array {
  const tcp = tcpHeader(p.sport, p.dport, seq, p.ack, p.flags);
  if (family === 4) return ipv4Packet({ src: v4(SERVER_V4), dst: v4(GUEST_V4), protocol: TCP, id: 0, dontFragment: true, payload: tcp });
  return ipv6Packet(SERVER_V6, GUEST_V6, TCP, tcp);
}

/** An ICMPv4 error from the guest to the address it was talking to. */
function icmpV4(type: number, code: number, rest: number, quote: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + quote.length);
  m[0] = type;
  m[1] = code;
  new DataView(m.buffer).setUint32(4, rest);
  m.set(quote, 8);
  new DataView(m.buffer).setUint16(2, inetChecksum(m));
  return ipv4Packet({ src: v4(GUEST_V4), dst: v4(SERVER_V4), protocol: 1, id: 7, payload: m });
}

/** An ICMPv6 error from the guest (checksum over the pseudo header, RFC 4443 §2.3). */
function icmpV6(type: number, code: number, param: number, quote: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + quote.length);
  m[0] = type;
  m[1] = code;
  new DataView(m.buffer).setUint32(4, param);
  m.set(quote, 8);
  const pseudo = new Uint8Array(40 + m.length);
  pseudo.set(GUEST_V6, 0);
  pseudo.set(SERVER_V6, 16);
  new DataView(pseudo.buffer).setUint32(32, m.length);
  pseudo[39] = 58;
  pseudo.set(m, 40);
  new DataView(m.buffer).setUint16(2, inetChecksum(pseudo));
  return ipv6Packet(GUEST_V6, SERVER_V6, 58, m);
}

/** An active open toward the guest's port 22 (what -L does); returns the app and our SYN. */
function activeOpen(h: Harness): { app: AppConn; syn: Packet } {
  const app = new AppConn(null, h);
  app.conn =
    h.family === 4
      ? h.stack.tcp.connectV4(SERVER_V4, 0, GUEST_V4, 22, app, h.now)
      : h.stack.tcp.connectV6(SERVER_V6, 0, GUEST_V6, 22, app, h.now);
  return { app, syn: h.one() };
}

describe("ICMP errors for a -L connection in SYN-SENT", () => {
  const refusals: Array<[string, 4 | 6, (syn: Packet) => Uint8Array]> = [
    ["ICMP port unreachable", 4, (syn) => icmpV4(3, 3, 0, quoteOf(syn))],
    ["ICMP protocol unreachable", 4, (syn) => icmpV4(3, 2, 0, quoteOf(syn))],
    ["ICMP administratively prohibited", 4, (syn) => icmpV4(3, 13, 0, quoteOf(syn))],
    ["ICMPv6 port unreachable", 6, (syn) => icmpV6(1, 4, 0, quoteOf(syn))],
    ["ICMPv6 administratively prohibited", 6, (syn) => icmpV6(1, 1, 0, quoteOf(syn))],
  ];
  for (const [name, family, build] of refusals) {
    test(`${name}: refused at once, no more SYNs`, () => {
      const h = new Harness({ family });
      const { app, syn } = activeOpen(h);
      h.inject(build(syn));
      expect(app.closed).toBe("refused");
      expect(h.stack.tcp.connectionCount).toBe(0);
      h.advance(120_000);
      h.none();
    });
  }

  test("a soft error (host unreachable, time exceeded) does not end the handshake", () => {
    const h = new Harness();
    const { app, syn } = activeOpen(h);
    h.inject(icmpV4(3, 1, 0, quoteOf(syn)));
    h.inject(icmpV4(11, 0, 0, quoteOf(syn)));
    expect(app.closed).toBeNull();
    expect(app.conn.state).toBe(TcpState.SynSent);
    expect(h.stats.eventCount("tcp-icmp-soft-error")).toBe(2);
    h.advanceToNext();
    expect(h.one().flags).toBe(syn.flags); // the SYN again
  });

  test("an error quoting a sequence number outside SND.UNA..SND.MAX, or other ports, is ignored (RFC 5927)", () => {
    for (const family of [4, 6] as const) {
      const h = new Harness({ family });
      const { app, syn } = activeOpen(h);
      const unreachable = (q: Uint8Array): Uint8Array => (family === 4 ? icmpV4(3, 3, 0, q) : icmpV6(1, 4, 0, q));
      h.inject(unreachable(quoteOf(syn, syn.seq + 1)));
      h.inject(unreachable(quoteOf(syn, syn.seq - 1)));
      h.inject(unreachable(quoteOf(syn, syn.seq + 0x40000000)));
      h.inject(unreachable(quoteOf({ ...syn, sport: syn.sport + 1 })));
      h.inject(unreachable(quoteOf({ ...syn, dport: 23 })));
      expect(app.closed).toBeNull();
      expect(app.conn.state).toBe(TcpState.SynSent);
      expect(h.stats.dropCount("tcp-icmp-unmatched")).toBe(5);
      // The real one still works.
      h.inject(unreachable(quoteOf(syn)));
      expect(app.closed).toBe("refused");
    }
  });
});

describe("ICMP errors on an established connection", () => {
  test("port unreachable quoting our data is recorded, not an abort (RFC 1122 §4.2.3.9)", () => {
    const h = new Harness();
    const g = new Guest(h, { ts: true });
    const app = g.handshake();
    app.send("hello");
    const data = h.one();
    h.inject(icmpV4(3, 3, 0, quoteOf(data)));
    h.inject(icmpV4(3, 1, 0, quoteOf(data)));
    expect(h.conn.state).toBe(TcpState.Established);
    expect(app.closed).toBeNull();
    expect(h.stats.eventCount("tcp-icmp-soft-error")).toBe(2);
    g.absorb(data);
    g.send({});
    expect(h.conn.inFlight).toBe(0);
  });

  test("an ICMP error quoting a UDP datagram is counted and changes nothing", () => {
    const h = new Harness();
    const udp = new Uint8Array(8);
    new DataView(udp.buffer).setUint16(0, 53);
    new DataView(udp.buffer).setUint16(2, 40000);
    h.inject(icmpV4(3, 3, 0, ipv4Packet({ src: v4(SERVER_V4), dst: v4(GUEST_V4), protocol: UDP, id: 0, payload: udp })));
    h.inject(icmpV6(1, 4, 0, ipv6Packet(SERVER_V6, GUEST_V6, UDP, udp)));
    h.inject(icmpV4(3, 4, 100, new Uint8Array(10))); // a quote too short to hold anything
    h.none();
  });
});

describe("path MTU: fragmentation needed (RFC 1191) and packet too big (RFC 8201)", () => {
  /**
   * An established connection with 40 KB to send; the guest reports an
   * MTU of `reported` for our first segment. Returns the size of every IP
   * packet sent after that, until the guest has everything.
   */
  function shrink(family: 4 | 6, reported: number, quoteSeqDelta = 0): { sizes: number[]; first: Packet; after: Packet[]; mss: number } {
    const h = new Harness({ family });
    const g = new Guest(h, { ts: true, sackOk: true, mss: 1460 });
    const app = g.handshake();
    const total = 40_000;
    app.send(new Uint8Array(total).map((_, i) => i & 0xff));
    const burst = h.take().map((x) => x.p);
    const first = burst[0]!;
    expect(first.ipLen).toBe(1500); // the harness link's MTU
    const icmp = family === 4 ? icmpV4(3, 4, reported, quoteOf(first, first.seq + quoteSeqDelta)) : icmpV6(2, 0, reported, quoteOf(first, first.seq + quoteSeqDelta));
    h.inject(icmp);
    const after = h.take().map((x) => x.p);
    const mss = h.conn.sendMss;
    if (quoteSeqDelta !== 0) return { sizes: [], first, after, mss };
    // The guest lost the burst (too big for its path): it acknowledges
    // only what arrives after the error, in order.
    const sizes = after.map((p) => p.ipLen);
    let pending = after;
    for (let round = 0; round < 200 && g.ack !== ((first.seq + total) >>> 0); round++) {
      for (const p of pending) g.absorb(p);
      g.send({ flags: ACK });
      h.advance(1);
      pending = h.take().map((x) => x.p);
      sizes.push(...pending.map((p) => p.ipLen));
      if (pending.length === 0) {
        h.advanceToNext();
        pending = h.take().map((x) => x.p);
        sizes.push(...pending.map((p) => p.ipLen));
      }
    }
    expect(g.ack).toBe((first.seq + total) >>> 0);
    return { sizes, first, after, mss };
  }

  test("IPv4 fragmentation needed (MTU 1200): the lost segments go again at once, no packet exceeds 1200", () => {
    const { sizes, first, after, mss } = shrink(4, 1200);
    expect(mss).toBe(1200 - 40);
    expect(after.length).toBeGreaterThan(0);
    expect(after[0]!.seq).toBe(first.seq); // resent at once, not after an RTO
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1200);
    expect(Math.max(...sizes)).toBe(1200); // full-sized for the new MTU
  });

  test("ICMPv6 packet too big (MTU 1400): no packet exceeds 1400", () => {
    const { sizes, first, after, mss } = shrink(6, 1400);
    expect(mss).toBe(1400 - 60);
    expect(after[0]!.seq).toBe(first.seq);
    expect(Math.max(...sizes)).toBe(1400);
  });

  test("an MTU below the floor is raised to it: 576 for IPv4, 1280 for IPv6", () => {
    expect(shrink(4, 68).mss).toBe(576 - 40);
    expect(shrink(4, 0).mss).toBe(576 - 40); // no next-hop MTU given (pre-RFC 1191 router)
    expect(shrink(6, 600).mss).toBe(1280 - 60);
  });

  test("a too-big report quoting a sequence number we never sent changes nothing", () => {
    const { after, mss } = shrink(4, 1200, 0x10000000);
    expect(mss).toBe(1460);
    expect(after.length).toBe(0);
  });
});
