// Guest pings through the engine (src/stack/echo.ts) with a stand-in host
// side: requests to other hosts are handed out and their replies come back
// with the guest's identifier and a good checksum; the stack's own
// addresses stay local; denied destinations get an admin-prohibited; ICMP
// errors the host got quote the guest's request byte for byte; the flow
// table's cap and idle timeout; the error token bucket; and the UDP error
// quotes (src/stack/icmp.ts udpError). Frames are raw IP (a tun device)
// and built by hand (test/support/frames.ts), independent of src/wire.
import { describe, expect, test } from "bun:test";
import { inetChecksum, ipv4, ipv4Packet, icmpEcho } from "../../support/frames.ts";
import { Stack } from "../../../src/stack/stack.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { RxMeta, type FrameSink } from "../../../src/stack/device.ts";
import { DEFAULT_TCP_CONFIG } from "../../../src/stack/tcp/connection.ts";
import { FlowSecret } from "../../../src/stack/secret.ts";
import { EchoDecision, ECHO_IDLE_MS, type EchoFlow, type EchoHandler } from "../../../src/stack/echo.ts";
import { GuestError } from "../../../src/stack/icmp.ts";
import type { UdpFlow } from "../../../src/stack/udp.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../../src/wire/guest-net.ts";

const GW4 = ipv4("10.0.2.2");
const GUEST4 = ipv4("10.0.2.100");
const FAR4 = ipv4("198.51.100.1");
const v6 = (last: number, first = 0xfd00): Uint8Array => {
  const b = new Uint8Array(16);
  b[0] = first >>> 8;
  b[1] = first & 255;
  b[15] = last;
  return b;
};
const GW6 = v6(2);
const GUEST6 = v6(0x64);
const FAR6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const num = (b: Uint8Array): number => ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
const u16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;

function ipv6Packet(src: Uint8Array, dst: Uint8Array, next: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(40 + payload.length);
  b[0] = 0x60;
  new DataView(b.buffer).setUint16(4, payload.length);
  b[6] = next;
  b[7] = 64;
  b.set(src, 8);
  b.set(dst, 24);
  b.set(payload, 40);
  return b;
}

/** The ICMPv6 checksum of `msg` (its checksum field zero) between src and dst (RFC 4443 §2.3). */
function icmp6Checksum(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): number {
  const pseudo = new Uint8Array(40 + msg.length);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  new DataView(pseudo.buffer).setUint32(32, msg.length);
  pseudo[39] = 58;
  pseudo.set(msg, 40);
  return inetChecksum(pseudo);
}

function echo6(type: 128 | 129, src: Uint8Array, dst: Uint8Array, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = type;
  new DataView(m.buffer).setUint16(4, id);
  new DataView(m.buffer).setUint16(6, seq);
  m.set(data, 8);
  new DataView(m.buffer).setUint16(2, icmp6Checksum(src, dst, m));
  return m;
}

/** A host side that records every request and lets the test decide each new flow. */
class Host implements EchoHandler {
  decision: EchoDecision = EchoDecision.Forward;
  readonly asked: EchoFlow[] = [];
  readonly requests: Array<{ flow: EchoFlow; msg: Uint8Array }> = [];
  readonly closed: EchoFlow[] = [];
  tcpConnectRequest(): void {}
  udpNewFlow(): boolean {
    return false;
  }
  echoNewFlow(flow: EchoFlow): EchoDecision {
    this.asked.push(flow);
    if (this.decision === EchoDecision.Forward) flow.handler = this;
    return this.decision;
  }
  onEchoRequest(flow: EchoFlow, buf: Uint8Array, off: number, len: number): void {
    this.requests.push({ flow, msg: buf.slice(off, off + len) });
  }
  onClosed(flow: EchoFlow): void {
    this.closed.push(flow);
  }
}

function rig(forward = true) {
  const frames: Uint8Array[] = [];
  const sink: FrameSink = { transmit: (buf, off, len) => void frames.push(buf.slice(off, off + len)) };
  const stats = new Stats();
  const host = new Host();
  const stack = new Stack({ medium: "ip", mtu: 1500, txChecksumOffload: false, txTcpSegmentation: false }, sink, host, stats, {
    mac: Uint8Array.of(0x70, 0x71, 0xaa, 0x4b, 0x29, 0xaa),
    netV4: DEFAULT_GUEST_NET_V4,
    gatewayV6: GW6,
    tcp: DEFAULT_TCP_CONFIG,
    secret: new FlowSecret(new Uint8Array(16)),
  });
  if (forward) {
    stack.echo.ownV4.push(num(ipv4("10.0.2.3")));
    stack.echo.start(host);
  }
  const meta = new RxMeta();
  const input = (pkt: Uint8Array, now = 0): void => stack.input(pkt, 0, pkt.length, meta, now);
  const ping4 = (dst: Uint8Array, id: number, seq: number, data = Uint8Array.of(1, 2, 3, 4, 5), now = 0): Uint8Array => {
    const m = icmpEcho(8, id, seq, data);
    input(ipv4Packet({ src: GUEST4, dst, protocol: 1, id: 77, payload: m }), now);
    return m;
  };
  const ping6 = (dst: Uint8Array, id: number, seq: number, data = Uint8Array.of(9, 8, 7)): Uint8Array => {
    const m = echo6(128, GUEST6, dst, id, seq, data);
    input(ipv6Packet(GUEST6, dst, 58, m));
    return m;
  };
  return { frames, stats, host, stack, input, ping4, ping6 };
}

describe("echo forwarding", () => {
  test("a request to another host goes to the host side, once per flow; the reply gets the guest's identifier back and a good checksum", () => {
    const r = rig();
    const req = r.ping4(FAR4, 0x1234, 7);
    expect(r.frames).toEqual([]); // not answered by the stack
    expect(r.host.asked.length).toBe(1);
    expect(r.host.requests.map((q) => q.msg)).toEqual([req]);
    r.ping4(FAR4, 0x1234, 8);
    expect(r.host.asked.length).toBe(1);
    expect(r.host.requests.length).toBe(2);
    // Another identifier is another flow.
    r.ping4(FAR4, 0x1235, 1);
    expect(r.host.asked.length).toBe(2);
    // The host's socket received the reply with the kernel's identifier 0x9999.
    const got = icmpEcho(0, 0x9999, 7, Uint8Array.of(1, 2, 3, 4, 5));
    r.host.requests[0]!.flow.reply(got, 0, got.length, 1);
    expect(r.frames.length).toBe(1);
    const f = r.frames[0]!;
    expect([...f.subarray(12, 20)]).toEqual([...FAR4, ...GUEST4]);
    expect(f[9]).toBe(1);
    expect(inetChecksum(f.subarray(0, 20))).toBe(0);
    expect(f.subarray(20)).toEqual(icmpEcho(0, 0x1234, 7, Uint8Array.of(1, 2, 3, 4, 5)));
  });

  test("IPv6: the reply's checksum covers the pseudo header toward the guest", () => {
    const r = rig();
    r.ping6(FAR6, 0x4242, 3);
    expect(r.host.requests.length).toBe(1);
    const got = echo6(129, v6(9), v6(8), 0x7777, 3, Uint8Array.of(9, 8, 7));
    r.host.requests[0]!.flow.reply(got, 0, got.length, 1);
    const f = r.frames[0]!;
    expect(f.subarray(8, 40)).toEqual(Uint8Array.of(...FAR6, ...GUEST6));
    expect(f.subarray(40)).toEqual(echo6(129, FAR6, GUEST6, 0x4242, 3, Uint8Array.of(9, 8, 7)));
  });

  test("the stack's own addresses and link-local destinations are answered locally, without asking", () => {
    const r = rig();
    r.ping4(GW4, 1, 1);
    r.ping4(ipv4("10.0.2.3"), 1, 1);
    r.ping6(GW6, 1, 1);
    r.ping6(v6(1, 0xfe80), 1, 1);
    expect(r.host.asked).toEqual([]);
    expect(r.frames.length).toBe(4);
  });

  test("the host says Local (no ICMP sockets): the stack answers, and asks again next time", () => {
    const r = rig();
    r.host.decision = EchoDecision.Local;
    r.ping4(FAR4, 5, 1);
    r.ping4(FAR4, 5, 2);
    expect(r.host.asked.length).toBe(2);
    expect(r.frames.length).toBe(2);
    expect(r.frames[1]!.subarray(20)).toEqual(icmpEcho(0, 5, 2, Uint8Array.of(1, 2, 3, 4, 5)));
    // With forwarding off altogether, nobody is asked.
    const off = rig(false);
    off.ping4(FAR4, 5, 1);
    expect(off.host.asked).toEqual([]);
    expect(off.frames.length).toBe(1);
  });

  test("a denied destination gets an admin-prohibited from the gateway quoting the request's headers", () => {
    const r = rig();
    r.host.decision = EchoDecision.Prohibited;
    const req = r.ping4(FAR4, 0x1234, 9);
    expect(r.frames.length).toBe(1);
    const f = r.frames[0]!;
    expect([...f.subarray(12, 20)]).toEqual([...GW4, ...GUEST4]);
    const quote = ipv4Packet({ src: GUEST4, dst: FAR4, protocol: 1, id: 0, payload: req.subarray(0, 8) });
    // Total length is the whole request's, not the quote's.
    new DataView(quote.buffer).setUint16(2, 20 + req.length);
    new DataView(quote.buffer).setUint16(10, 0);
    new DataView(quote.buffer).setUint16(10, inetChecksum(quote.subarray(0, 20)));
    const msg = new Uint8Array(8 + 28);
    msg[0] = 3;
    msg[1] = 13;
    msg.set(quote, 8);
    new DataView(msg.buffer).setUint16(2, inetChecksum(msg));
    expect(f.subarray(20)).toEqual(msg);
    expect(r.stats.dropCount("icmp-echo-denied")).toBe(1);
  });

  test("an error the host got quotes the guest's own request: identifier and checksum put back (IPv4)", () => {
    const r = rig();
    const req = r.ping4(FAR4, 0x1234, 9, Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x01, 0x02));
    // What the host's kernel sent: its identifier, its checksum.
    const sent = icmpEcho(8, 0x9999, 9, Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x01, 0x02));
    r.host.requests[0]!.flow.error(GuestError.HostUnreachable, 0, sent, 0, 1);
    const f = r.frames[0]!;
    expect([...f.subarray(12, 20)]).toEqual([...GW4, ...GUEST4]);
    expect([f[20], f[21]]).toEqual([3, 1]);
    expect(inetChecksum(f.subarray(20))).toBe(0);
    expect(u16(f, 28 + 2)).toBe(20 + req.length);
    expect([...f.subarray(28 + 12, 28 + 20)]).toEqual([...GUEST4, ...FAR4]);
    expect(f.subarray(48, 56)).toEqual(req.subarray(0, 8));
  });

  test("IPv6: too big carries the path MTU for the guest's packets; the last request's checksum is quoted", () => {
    const r = rig();
    const req = r.ping6(FAR6, 0x4242, 3);
    const sent = echo6(128, v6(9), FAR6, 0x7777, 3, Uint8Array.of(9, 8, 7));
    r.host.requests[0]!.flow.error(GuestError.TooBig, 1400 - 48, sent, 0, 1);
    const f = r.frames[0]!;
    expect(f.subarray(8, 40)).toEqual(Uint8Array.of(...GW6, ...GUEST6));
    const m = f.subarray(40);
    expect([m[0], m[1]]).toEqual([2, 0]);
    expect(new DataView(m.buffer, m.byteOffset).getUint32(4)).toBe(1400);
    expect(icmp6Checksum(GW6, GUEST6, Uint8Array.of(m[0]!, m[1]!, 0, 0, ...m.subarray(4)))).toBe(u16(m, 2));
    expect(m.subarray(8 + 8, 8 + 40)).toEqual(Uint8Array.of(...GUEST6, ...FAR6));
    expect(m.subarray(48, 56)).toEqual(req.subarray(0, 8));
  });

  test("the flow table's cap evicts the least recently active flow; idle flows end after the timeout", () => {
    const r = rig();
    r.stack.echo.maxFlows = 2;
    r.ping4(FAR4, 1, 1, undefined, 0);
    r.ping4(FAR4, 2, 1, undefined, 1);
    r.ping4(FAR4, 1, 2, undefined, 2); // flow 1 is the more recent now
    r.ping4(FAR4, 3, 1, undefined, 3);
    expect(r.host.closed.map((f) => f.guestPort)).toEqual([2]);
    expect(r.stats.limitCount("icmp-echo-flows")).toBe(1);
    expect(r.stack.echo.flowCount).toBe(2);
    r.stack.poll(3 + ECHO_IDLE_MS - 1);
    expect(r.stack.echo.flowCount).toBe(1); // flow 1 (last request at 2) has gone
    r.stack.poll(3 + ECHO_IDLE_MS);
    expect(r.stack.echo.flowCount).toBe(0);
    expect(r.host.closed.map((f) => f.guestPort)).toEqual([2, 1, 3]);
  });

  test("hostile echo requests and replies never throw", () => {
    const r = rig(); // Stats without onFault: a throw would surface here
    let seed = 1;
    const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 255;
    for (let i = 0; i < 3000; i++) {
      const len = 8 + (rnd() % 64);
      const m = new Uint8Array(len);
      for (let j = 0; j < len; j++) m[j] = rnd();
      m[0] = 8;
      m[2] = 0;
      m[3] = 0;
      new DataView(m.buffer).setUint16(2, inetChecksum(m));
      r.host.decision = ([EchoDecision.Forward, EchoDecision.Local, EchoDecision.Prohibited] as const)[i % 3]!;
      r.input(ipv4Packet({ src: GUEST4, dst: ipv4(`198.51.100.${rnd()}`), protocol: 1, id: i, payload: m }), i);
      // Truncated and garbage messages on the ICMP path too.
      r.input(ipv4Packet({ src: GUEST4, dst: FAR4, protocol: 1, id: i, payload: m.subarray(0, rnd() % 8) }), i);
    }
    const flow = r.host.requests[0]!.flow;
    flow.reply(new Uint8Array(3), 0, 3, 1);
    flow.reply(new Uint8Array(70000), 0, 70000, 1);
    flow.error(GuestError.TooBig, 0, new Uint8Array(8), 0, 1);
    expect(r.stats.dropCount("icmp-echo-reply-bad")).toBe(2);
  });
});

describe("errors toward the guest", () => {
  function udpFlow(family: 4 | 6): UdpFlow {
    return {
      family,
      destV4: num(FAR4),
      guestV4: num(GUEST4),
      destV6: family === 6 ? FAR6 : null,
      guestV6: family === 6 ? GUEST6 : null,
      destPort: 53,
      guestPort: 40000,
    } as unknown as UdpFlow;
  }

  test("UDP port unreachable (IPv4) comes from the destination and quotes the datagram's IP and UDP headers byte for byte", () => {
    const r = rig();
    r.stack.icmp.udpError(udpFlow(4), 100, GuestError.PortUnreachable, 0, 0);
    const f = r.frames[0]!;
    expect([...f.subarray(12, 20)]).toEqual([...FAR4, ...GUEST4]);
    const quote = Uint8Array.of(
      ...[0x45, 0, 0, 128, 0, 0, 0, 0, 64, 17, 0, 0, ...GUEST4, ...FAR4],
      ...[0x9c, 0x40, 0, 53, 0, 108, 0, 0],
    );
    new DataView(quote.buffer).setUint16(10, inetChecksum(quote.subarray(0, 20)));
    const msg = Uint8Array.of(3, 3, 0, 0, 0, 0, 0, 0, ...quote);
    new DataView(msg.buffer).setUint16(2, inetChecksum(msg));
    expect(f.subarray(20)).toEqual(msg);
  });

  test("UDP errors over IPv6: host unreachable from the gateway, and too big with the MTU for the guest's packets", () => {
    const r = rig();
    r.stack.icmp.udpError(udpFlow(6), 1, GuestError.HostUnreachable, 0, 0);
    r.stack.icmp.udpError(udpFlow(6), 1, GuestError.TooBig, 1232, 0);
    const [a, b] = r.frames as [Uint8Array, Uint8Array];
    expect(a.subarray(8, 40)).toEqual(Uint8Array.of(...GW6, ...GUEST6));
    const quote = Uint8Array.of(0x60, 0, 0, 0, 0, 9, 17, 64, ...GUEST6, ...FAR6, 0x9c, 0x40, 0, 53, 0, 9, 0, 0);
    const msg = Uint8Array.of(1, 3, 0, 0, 0, 0, 0, 0, ...quote);
    new DataView(msg.buffer).setUint16(2, icmp6Checksum(GW6, GUEST6, msg));
    expect(a.subarray(40)).toEqual(msg);
    expect([b[40], b[41]]).toEqual([2, 0]);
    expect(new DataView(b.buffer, b.byteOffset).getUint32(44)).toBe(1280);
  });

  test("errors pass a token bucket of 50, refilled at one per ms; the ones held back are counted", () => {
    const r = rig();
    for (let i = 0; i < 60; i++) r.stack.icmp.udpError(udpFlow(4), 1, GuestError.PortUnreachable, 0, 1000);
    expect(r.frames.length).toBe(50);
    expect(r.stats.dropCount("icmp-error-rate-limited")).toBe(10);
    for (let i = 0; i < 20; i++) r.stack.icmp.udpError(udpFlow(4), 1, GuestError.PortUnreachable, 0, 1010);
    expect(r.frames.length).toBe(60);
    expect(r.stats.dropCount("icmp-error-rate-limited")).toBe(20);
  });
});
