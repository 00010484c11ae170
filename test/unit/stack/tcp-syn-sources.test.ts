// RFC 1122 §4.2.3.10: a SYN from a broadcast or multicast address (or to
// one) is dropped silently: no connection request, no RST. Frames are
// built by hand (test/support/frames.ts), independent of src/wire.
import { describe, expect, test } from "bun:test";
import { inetChecksum, ipv4, ipv4Packet } from "../../support/frames.ts";
import { Harness, GUEST_V6, SERVER_V6, SYN, ACK } from "../../support/tcp-harness.ts";

function tcpSegment(sport: number, dport: number, flags: number, pseudo: Uint8Array): Uint8Array {
  const t = new Uint8Array(20);
  const d = new DataView(t.buffer);
  d.setUint16(0, sport);
  d.setUint16(2, dport);
  d.setUint32(4, 1000);
  d.setUint32(8, flags & ACK ? 1 : 0);
  t[12] = 5 << 4;
  t[13] = flags;
  d.setUint16(14, 65535);
  const all = new Uint8Array(pseudo.length + 20);
  all.set(pseudo, 0);
  all.set(t, pseudo.length);
  d.setUint16(16, inetChecksum(all));
  return t;
}

function segmentV4(src: string, dst: string, flags: number = SYN): Uint8Array {
  const pseudo = new Uint8Array(12);
  pseudo.set(ipv4(src), 0);
  pseudo.set(ipv4(dst), 4);
  pseudo[9] = 6;
  pseudo[11] = 20;
  return ipv4Packet({ src: ipv4(src), dst: ipv4(dst), protocol: 6, id: 1, payload: tcpSegment(40000, 80, flags, pseudo) });
}

function segmentV6(src: Uint8Array, dst: Uint8Array, flags: number = SYN): Uint8Array {
  const pseudo = new Uint8Array(40);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  pseudo[35] = 20;
  pseudo[39] = 6;
  const tcp = tcpSegment(40000, 80, flags, pseudo);
  const b = new Uint8Array(60);
  b[0] = 0x60;
  b[5] = 20;
  b[6] = 6;
  b[7] = 64;
  b.set(src, 8);
  b.set(dst, 24);
  b.set(tcp, 40);
  return b;
}

const v6 = (text: string): Uint8Array => {
  const out = new Uint8Array(16);
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  h.forEach((g, i) => new DataView(out.buffer).setUint16(2 * i, parseInt(g, 16)));
  t.forEach((g, i) => new DataView(out.buffer).setUint16(16 - 2 * (t.length - i), parseInt(g, 16)));
  return out;
};

describe("SYNs from or to broadcast and multicast addresses (RFC 1122 §4.2.3.10)", () => {
  test("IPv4: sources 0.0.0.0, 255.255.255.255, 224.0.0.0/4 and 240.0.0.0/4 open nothing and draw no RST", () => {
    const h = new Harness({ family: 4 });
    for (const src of ["0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1"]) {
      h.inject(segmentV4(src, "192.0.2.1"));
      h.inject(segmentV4(src, "192.0.2.1", ACK)); // no connection: would draw a RST
    }
    expect(h.requests.length).toBe(0);
    h.none();
    expect(h.stats.dropCount("non-unicast-source")).toBe(12);
  });

  test("IPv4: destinations 255.255.255.255, 224.0.0.0/4 and the guest subnet's broadcast open nothing", () => {
    const h = new Harness({ family: 4 });
    for (const dst of ["255.255.255.255", "224.0.0.1", "10.0.2.255"]) h.inject(segmentV4("10.0.2.100", dst));
    expect(h.requests.length).toBe(0);
    h.none();
    expect(h.stats.dropCount("ipv4-not-unicast")).toBe(3);
  });

  test("IPv6: sources :: and ff00::/8 open nothing and draw no RST; multicast destinations neither", () => {
    const h = new Harness({ family: 6 });
    for (const src of [v6("::"), v6("ff02::1"), v6("ff05::1:3")]) {
      h.inject(segmentV6(src, SERVER_V6));
      h.inject(segmentV6(src, SERVER_V6, ACK));
    }
    h.inject(segmentV6(GUEST_V6, v6("ff02::1")));
    expect(h.requests.length).toBe(0);
    h.none();
    expect(h.stats.dropCount("non-unicast-source")).toBe(6);
    expect(h.stats.dropCount("ipv6-multicast")).toBe(1);
  });

  test("a unicast SYN built the same way still opens a connection", () => {
    const h = new Harness({ family: 4, tcp: {} });
    h.policy = "hold";
    h.inject(segmentV4("10.0.2.100", "192.0.2.1"));
    const h6 = new Harness({ family: 6 });
    h6.policy = "hold";
    h6.inject(segmentV6(GUEST_V6, SERVER_V6));
    expect(h.requests.length).toBe(1);
    expect(h6.requests.length).toBe(1);
  });
});
