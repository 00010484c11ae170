// Numbers an off-path attacker must not predict: initial sequence numbers
// (RFC 6528), timestamp offsets (RFC 7323 §7.1) and ephemeral ports
// (RFC 6056), all keyed hashes under the stack's secret key.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { SipHash } from "../../../src/stack/secret.ts";
import { Guest, Harness, GUEST_V4, SERVER_V4, GUEST_V6, SERVER_V6 } from "../../support/tcp-harness.ts";
import { AppConn, keyFromSeed } from "../../support/engine-pair.ts";

const u32 = (x: number): number => x >>> 0;
const KEY_A = keyFromSeed(1);
const KEY_B = keyFromSeed(2);

/** The stack's ISS for a guest SYN from `sport`, answered at `ms`. */
function passiveIss(h: Harness, sport: number, ms: number): number {
  h.now = ms;
  const g = new Guest(h, { sport, ts: true });
  g.syn();
  const synAck = g.readSynAck();
  h.conn.abort(h.now);
  h.take();
  return synAck.seq;
}

describe("SipHash-2-4", () => {
  test("the reference vectors (key 00..0f, message 00..n-1)", () => {
    const key = Uint8Array.from({ length: 16 }, (_, i) => i);
    const s = new SipHash(key);
    const msg = Uint8Array.from({ length: 64 }, (_, i) => i);
    const hex = (n: number): string => {
      s.hash(msg, n);
      return s.hi.toString(16).padStart(8, "0") + s.lo.toString(16).padStart(8, "0");
    };
    expect(hex(0)).toBe("726fdb47dd0e0e31");
    expect(hex(1)).toBe("74f839c593dc67fd");
    expect(hex(15)).toBe("a129ca6149be45e5"); // the paper's appendix A
    expect(hex(63)).toBe("958a324ceb064572");
  });
});

describe("initial sequence numbers (RFC 6528)", () => {
  test("the same 4-tuple later: the ISN advances with a 4 µs clock", () => {
    const h = new Harness({ key: KEY_A });
    const first = passiveIss(h, 40000, 10_000);
    const second = passiveIss(h, 40000, 11_000);
    expect(u32(second - first)).toBe(250_000);
    const third = passiveIss(h, 40000, 11_000.5);
    expect(u32(third - second)).toBe(125);
  });

  test("other 4-tuples: ISNs unrelated to each other, and to the key", () => {
    const a = new Harness({ key: KEY_A });
    const b = new Harness({ key: KEY_B });
    const isnA = [40000, 40001, 40002].map((p) => passiveIss(a, p, 10_000));
    const isnB = [40000, 40001, 40002].map((p) => passiveIss(b, p, 10_000));
    // Neighbouring ports at the same instant: no common step between them,
    // and the steps differ under another key.
    const stepsA = [u32(isnA[1]! - isnA[0]!), u32(isnA[2]! - isnA[1]!)];
    const stepsB = [u32(isnB[1]! - isnB[0]!), u32(isnB[2]! - isnB[1]!)];
    expect(stepsA[0]).not.toBe(stepsA[1]);
    expect(stepsA).not.toEqual(stepsB);
    expect(isnA[0]).not.toBe(isnB[0]);
  });

  test("with a fixed key, the same ISNs every run (passive and active opens)", () => {
    const run = (): number[] => {
      const h = new Harness({ key: KEY_A });
      const isns = [passiveIss(h, 40000, 10_000), passiveIss(h, 40001, 10_007)];
      const app = new AppConn(null, h);
      app.conn = h.stack.tcp.connectV4(SERVER_V4, 0, GUEST_V4, 22, app, h.now);
      isns.push(h.one().seq);
      return isns;
    };
    expect(run()).toEqual(run());
  });

  test("an active open toward the guest (-L) uses the same keyed ISN, IPv6 too", () => {
    const h = new Harness({ key: KEY_A, family: 6 });
    const app = new AppConn(null, h);
    app.conn = h.stack.tcp.connectV6(SERVER_V6, 5000, GUEST_V6, 22, app, h.now);
    const syn1 = h.one();
    app.conn.abort(h.now);
    h.take();
    h.now += 4;
    const app2 = new AppConn(null, h);
    app2.conn = h.stack.tcp.connectV6(SERVER_V6, 5000, GUEST_V6, 22, app2, h.now);
    expect(u32(h.one().seq - syn1.seq)).toBe(1000);
  });
});

describe("timestamp offsets (RFC 7323 §7.1)", () => {
  test("two connections' TSvals differ by a secret offset; each still counts milliseconds", () => {
    const h = new Harness({ key: KEY_A });
    const g1 = new Guest(h, { sport: 40000, ts: true });
    g1.handshake();
    const c1 = h.stack.tcp.connections().next().value!;
    const g2 = new Guest(h, { sport: 40001, ts: true });
    g2.syn();
    const s2 = g2.readSynAck();
    g2.send({ flags: 0x10 });
    h.apps[0]!.send("a");
    const p1 = h.one();
    h.now += 25;
    h.apps[0]!.send("b");
    const p1b = h.one();
    expect(u32(p1b.options.tsVal - p1.options.tsVal)).toBe(25);
    // Neither is our clock, and they are not the same clock either.
    expect(p1.options.tsVal).not.toBe(u32(h.now - 25));
    expect(s2.options.tsVal).not.toBe(u32(h.now - 25));
    expect(u32(p1.options.tsVal - s2.options.tsVal)).not.toBe(0);
    expect(c1.tsOffset).not.toBe(0);
  });

  test("the same 4-tuple keeps its offset: a new incarnation's TSvals continue the old ones", () => {
    const h = new Harness({ key: KEY_A });
    const g = new Guest(h, { sport: 40000, ts: true });
    g.syn();
    const first = g.readSynAck().options.tsVal;
    h.conn.abort(h.now);
    h.take();
    h.now += 500;
    const g2 = new Guest(h, { sport: 40000, ts: true });
    g2.syn();
    expect(u32(g2.readSynAck().options.tsVal - first)).toBe(500);
  });

  test("RTT samples from echoed timestamps still measure the round trip", () => {
    const h = new Harness({ key: KEY_A });
    const g = new Guest(h, { ts: true });
    g.handshake();
    h.app.send("x");
    const p = h.one();
    g.absorb(p);
    h.now += 30;
    g.send({});
    // The handshake gave a 0 ms sample; this one is 30 ms: SRTT = 7/8·0 + 1/8·30.
    expect(h.conn.rtt.srtt).toBe(30 / 8);
  });
});

describe("ephemeral ports (RFC 6056)", () => {
  const ports = (key: Uint8Array, n: number, family: 4 | 6 = 4): number[] => {
    const h = new Harness({ key, family });
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const app = new AppConn(null, h);
      const c =
        family === 4
          ? h.stack.tcp.connectV4(SERVER_V4, 0, GUEST_V4, 22, app, h.now)
          : h.stack.tcp.connectV6(SERVER_V6, 0, GUEST_V6, 22, app, h.now);
      out.push(c.destPort);
    }
    return out;
  };

  test("-L connections toward one guest port: distinct ports in the ephemeral range, reproducible with a key, other keys other ports", () => {
    for (const family of [4, 6] as const) {
      const a = ports(KEY_A, 50, family);
      expect(new Set(a).size).toBe(50);
      for (const p of a) expect(p >= 32768 && p <= 60999).toBe(true);
      expect(ports(KEY_A, 50, family)).toEqual(a);
      const b = ports(KEY_B, 50, family);
      expect(b[0]).not.toBe(a[0]);
    }
  });

  test("UDP flows toward the guest (-L udp) take keyed ports as well", () => {
    const udpPorts = (key: Uint8Array): number[] => {
      const h = new Harness({ key });
      const handler = { onDatagram: () => {}, onClosed: () => {} };
      return [0, 1, 2].map(() => h.stack.udp.openV4(SERVER_V4, 0, GUEST_V4, 53, handler, h.now).destPort);
    };
    const a = udpPorts(KEY_A);
    expect(new Set(a).size).toBe(3);
    expect(udpPorts(KEY_A)).toEqual(a);
    expect(udpPorts(KEY_B)).not.toEqual(a);
  });

  test("no Math.random anywhere in src/", () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith(".ts") && readFileSync(path, "utf8").includes("Math.random")) offenders.push(path);
      }
    };
    walk(join(import.meta.dir, "..", "..", "..", "src"));
    expect(offenders).toEqual([]);
  });
});
