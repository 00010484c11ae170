// Guest UDP mapped like a NAT (src/host/flows/udp-nat.ts), on real loopback
// sockets: one host socket per guest endpoint whatever the destinations
// (RFC 4787 REQ-1), replies only from the peers a flow talks to, the
// -max-udp-ports cap with least-recently-used eviction, ICMP errors ending
// only the flow they are about, and the DNS forwarder's queries in flight.
// The engine's flows are stand-ins that record what reaches the guest.
import { afterAll, describe, expect, test } from "bun:test";
import { SockAddr } from "../../../ffi/net.ts";
import { Reactor } from "../../../src/io/reactor.ts";
import { UdpSocket, datagramBuffer } from "../../../src/io/udp-socket.ts";
import { DialError } from "../../../src/io/dial-error.ts";
import { sockAddrText } from "../../../src/io/addr.ts";
import { Stats } from "../../../src/stack/stats.ts";
import type { UdpFlow, UdpHandler } from "../../../src/stack/udp.ts";
import { parseIP } from "../../../src/wire/addr.ts";
import type { DialTarget } from "../../../src/host/flows/dialer.ts";
import type { StackClock } from "../../../src/host/clock.ts";
import { UdpNat } from "../../../src/host/flows/udp-nat.ts";
import { GuestError, type Icmp } from "../../../src/stack/icmp.ts";
import { UdpSplice, type UdpSpliceOwner } from "../../../src/host/flows/udp-splice.ts";
import { DnsQueries } from "../../../src/host/flows/dns-forwarder.ts";
import { waitUntil } from "../../support/rig.ts";

const reactor = new Reactor();
reactor.start();
afterAll(() => reactor.stop());

const until = (what: string, cond: () => boolean): Promise<boolean> => waitUntil(what, cond, 3000, 2);
const clock = { now: () => performance.now(), afterActivity() {} } as unknown as StackClock;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const GUEST4 = 0x0a000264; // 10.0.2.100

/** The engine's side of one 4-tuple: what reaches the guest, and how it ended. */
class GuestFlow {
  handler: UdpHandler | null = null;
  readonly got: string[] = [];
  open = true;
  constructor(
    readonly family: 4 | 6,
    readonly guestV4: number,
    readonly guestV6: Uint8Array | null,
    readonly guestPort: number,
  ) {}
  send(buf: Uint8Array, off: number, len: number): boolean {
    this.got.push(new TextDecoder().decode(buf.subarray(off, off + len)));
    return true;
  }
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.handler!.onClosed(this as unknown as UdpFlow, "closed");
  }
}

/** A host peer on loopback: records who sent what, echoes "re:" + payload. */
class Peer {
  readonly seen: { from: string; text: string }[] = [];
  readonly sock: UdpSocket;
  readonly port: number;
  private readonly from = new SockAddr();
  constructor(ip = "127.0.0.1") {
    const s = UdpSocket.bound(reactor, new SockAddr().set(parseIP(ip)!.bytes, 0), this);
    if (s instanceof DialError) throw new Error(s.text);
    this.sock = s;
    this.port = s.localPort();
  }
  udpReadable(s: UdpSocket): void {
    for (;;) {
      const n = s.recvFrom(datagramBuffer, 0, datagramBuffer.length, this.from);
      if (n < 0) return;
      const t = new TextDecoder().decode(datagramBuffer.subarray(0, n));
      this.seen.push({ from: sockAddrText(this.from), text: t });
      const r = text(`re:${t}`);
      s.sendTo(r, 0, r.length, this.from);
    }
  }
  target(ip = "127.0.0.1"): DialTarget {
    return { ip: parseIP(ip)!, port: this.port, source: null };
  }
}

/** The engine's ICMP side: the errors the guest would be sent (flow's guest port, datagram length, what). */
class GuestIcmp {
  readonly sent: Array<{ guestPort: number; len: number; what: number }> = [];
  udpError(flow: UdpFlow, len: number, what: number): void {
    this.sent.push({ guestPort: flow.guestPort, len, what });
  }
}

interface Setup {
  nat: UdpNat;
  stats: Stats;
  icmp: GuestIcmp;
  done: UdpSplice[];
  /** A flow from guest 10.0.2.100:`guestPort` to `target`, attached. */
  flow(guestPort: number, target: DialTarget, wantAddresses?: boolean, queries?: DnsQueries | null): { flow: GuestFlow; splice: UdpSplice };
}

function setup(maxPorts = 100): Setup {
  const stats = new Stats();
  const icmp = new GuestIcmp();
  const nat = new UdpNat(reactor, clock, stats, maxPorts, icmp as unknown as Icmp);
  const done: UdpSplice[] = [];
  const owner: UdpSpliceOwner = { udpSpliceDone: (s) => done.push(s) };
  return {
    nat,
    stats,
    icmp,
    done,
    flow(guestPort, target, wantAddresses = false, queries = null) {
      const flow = new GuestFlow(4, GUEST4, null, guestPort);
      const splice = new UdpSplice(flow as unknown as UdpFlow, nat, stats, owner, wantAddresses, queries);
      const err = splice.connect(target);
      if (err !== null) throw new Error(err.text);
      return { flow, splice };
    },
  };
}

function say(f: { flow: GuestFlow; splice: UdpSplice }, s: string): void {
  const b = text(s);
  f.splice.onDatagram(f.flow as unknown as UdpFlow, b, 0, b.length);
}

describe("endpoint-independent mapping", () => {
  test("one guest endpoint, three host peers: one host socket, the same source port at each peer, each reply to its own flow", async () => {
    const peers = [new Peer(), new Peer(), new Peer()];
    const { nat, flow } = setup();
    const flows = peers.map((p) => flow(40000, p.target(), true));
    flows.forEach((f, i) => say(f, `q${i}`));
    await until("three replies", () => flows.every((f) => f.flow.got.length === 1));
    expect(flows.map((f) => f.flow.got)).toEqual([["re:q0"], ["re:q1"], ["re:q2"]]);
    expect(nat.portCount).toBe(1);
    const sources = new Set(peers.map((p) => p.seen[0]!.from));
    expect(sources.size).toBe(1);
    // The log lines name the kernel's source address and the shared port.
    expect(flows.map((f) => f.splice.hostLocal)).toEqual(peers.map(() => [...sources][0]!));
    for (const f of flows) f.flow.close();
    expect(nat.portCount).toBe(0);
    for (const p of peers) p.sock.close();
  });

  test("other guest endpoints, and other families from the same endpoint, get sockets of their own", async () => {
    const v4 = new Peer();
    const v6 = new Peer("::1");
    const { nat, flow } = setup();
    const a = flow(40000, v4.target());
    const b = flow(40001, v4.target());
    const c = flow(40000, v6.target("::1"));
    for (const f of [a, b, c]) say(f, "x");
    await until("three replies", () => [a, b, c].every((f) => f.flow.got.length === 1));
    expect(nat.portCount).toBe(3);
    expect(new Set(v4.seen.map((s) => s.from)).size).toBe(2);
    expect(v6.seen[0]!.from.startsWith("[::1]:")).toBe(true);
    for (const f of [a, b, c]) f.flow.close();
    expect(nat.portCount).toBe(0);
    v4.sock.close();
    v6.sock.close();
  });
});

describe("source binding (-source-ipv4)", () => {
  test("the mapping sends from the source address; one we do not have fails the dial at bind", async () => {
    const peer = new Peer();
    const { nat, flow } = setup();
    const f = flow(40000, { ...peer.target(), source: parseIP("127.0.0.2")! }, true);
    say(f, "x");
    await until("the reply", () => f.flow.got.length === 1);
    expect(peer.seen[0]!.from).toBe(f.splice.hostLocal);
    expect(f.splice.hostLocal.startsWith("127.0.0.2:")).toBe(true);
    expect(() => flow(40001, { ...peer.target(), source: parseIP("192.0.2.123")! })).toThrow("bind: cannot assign requested address");
    expect(nat.portCount).toBe(1);
    f.flow.close();
    peer.sock.close();
  });
});

describe("address-and-port-dependent filtering", () => {
  test("a datagram from a host that the endpoint never sent to, or from another port of a peer, is dropped and counted", async () => {
    const peer = new Peer();
    const stranger = new Peer();
    const { nat, stats, flow } = setup();
    const f = flow(40000, peer.target());
    say(f, "hi");
    await until("the reply", () => f.flow.got.length === 1);
    const mapped = new SockAddr().copyFrom(sockAddrFromText(peer.seen[0]!.from));
    // The stranger has the peer's address, on another port.
    stranger.sock.sendTo(text("spam"), 0, 4, mapped);
    await until("the drop", () => stats.dropCount("udp-unsolicited") === 1);
    expect(f.flow.got).toEqual(["re:hi"]);
    expect(nat.portCount).toBe(1);
    f.flow.close();
    peer.sock.close();
    stranger.sock.close();
  });
});

describe("-max-udp-ports", () => {
  test("at the cap the least recently used mapping goes, with its flows, and each eviction is counted", async () => {
    const peer = new Peer();
    const { nat, stats, flow, done } = setup(3);
    const a = flow(40001, peer.target());
    const b = flow(40002, peer.target());
    const c = flow(40003, peer.target());
    say(a, "a"); // a is now the most recently used; b the least
    const d = flow(40004, peer.target());
    expect(nat.portCount).toBe(3);
    expect(stats.limitCount("udp-ports")).toBe(1);
    expect([a, b, c, d].map((f) => f.flow.open)).toEqual([true, false, true, true]);
    expect(done).toEqual([b.splice]);
    expect(b.splice.errors.format()).toBe("l=[udp port limit reached]/0 r=0/0");
    for (let port = 40005; port < 40105; port++) flow(port, peer.target());
    expect(nat.portCount).toBe(3);
    expect(stats.limitCount("udp-ports")).toBe(101);
    // The survivors still work.
    const last = flow(50000, peer.target());
    say(last, "z");
    await until("the reply", () => last.flow.got.length === 1);
    peer.sock.close();
  });
});

describe("ICMP errors", () => {
  test("a closed port ends only the flow to it; the next datagram of the endpoint's other flow is not lost", async () => {
    const peer = new Peer();
    const gone = new Peer();
    const closedTarget = gone.target();
    gone.sock.close();
    const { flow, icmp } = setup();
    const live = flow(40000, peer.target(), true);
    const dead = flow(40000, closedTarget, true);
    // On loopback the ICMP error comes back inside the first sendto, so the
    // second finds it pending on the shared socket.
    say(dead, "xyz");
    say(live, "still");
    await until("the flow to the closed port ends", () => !dead.flow.open);
    // The guest is told, once, about the datagram it sent (3 bytes), as a port unreachable.
    expect(icmp.sent).toEqual([{ guestPort: 40000, len: 3, what: GuestError.PortUnreachable }]);
    expect(dead.splice.errors.format()).toMatch(/^l=0\/0 r=\[read udp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: read: connection refused\]\/0$/);
    expect(live.flow.open).toBe(true);
    await until("the reply", () => live.flow.got.length === 1);
    expect(live.flow.got).toEqual(["re:still"]);
    live.flow.close();
    peer.sock.close();
  });
});

describe("-max-dns-queries", () => {
  test("queries in flight are flows that sent and got no reply yet; beyond the cap the oldest is ended and counted", async () => {
    const silent = new Peer();
    silent.udpReadable = () => {}; // never answers
    const answering = new Peer();
    const { stats, flow } = setup();
    const queries = new DnsQueries(2, stats);
    const q1 = flow(40001, silent.target(), false, queries);
    const q2 = flow(40002, silent.target(), false, queries);
    const ok = flow(40003, answering.target(), false, queries);
    say(ok, "a");
    await until("the answer", () => ok.flow.got.length === 1);
    expect(queries.inFlight).toBe(0);
    say(q1, "1");
    say(q1, "1 again"); // a retry on the same flow is the same query in flight
    say(q2, "2");
    expect(queries.inFlight).toBe(2);
    expect(stats.limitCount("dns-queries")).toBe(0);
    say(ok, "b");
    expect(stats.limitCount("dns-queries")).toBe(1);
    expect([q1.flow.open, q2.flow.open, ok.flow.open]).toEqual([false, true, true]);
    expect(q1.splice.errors.format()).toBe("l=[dns query limit reached]/0 r=0/0");
    await until("the answer", () => ok.flow.got.length === 2);
    expect(queries.inFlight).toBe(1);
    q2.flow.close();
    expect(queries.inFlight).toBe(0);
    // -max-dns-queries 0 acts as 1.
    const one = new DnsQueries(0, stats);
    const z1 = flow(40004, silent.target(), false, one);
    const z2 = flow(40005, silent.target(), false, one);
    say(z1, "1");
    say(z2, "2");
    expect([z1.flow.open, z2.flow.open, one.inFlight]).toEqual([false, true, 1]);
    z2.flow.close();
    silent.sock.close();
    answering.sock.close();
  });
});

function sockAddrFromText(t: string): SockAddr {
  const m = /^(.*):(\d+)$/.exec(t)!;
  return new SockAddr().set(parseIP(m[1]!.replace(/^\[|\]$/g, ""))!.bytes, Number(m[2]));
}
