// -max-udp-flows: the engine's UDP flow table is capped; a new 4-tuple
// beyond the cap ends the least recently active flow (datagrams either way
// count as activity) instead of being refused, and each eviction is counted.
import { describe, expect, test } from "bun:test";
import { EnginePair, UdpApp, A_V4, B_V4 } from "../../support/engine-pair.ts";
import type { UdpFlow } from "../../../src/stack/udp.ts";

/** The guest (B) sends one datagram from `port` to the stack (A) port 53: A's table gets a flow. */
function guestSends(pair: EnginePair, port: number, flows: Map<number, UdpFlow>): void {
  let f = flows.get(port);
  if (f === undefined) {
    f = pair.b.stack.udp.openV4(B_V4, port, A_V4, 53, new UdpApp(pair), pair.now);
    flows.set(port, f);
  }
  f.send(new Uint8Array([port & 0xff]), 0, 1, pair.now);
  pair.advance(1);
}

describe("-max-udp-flows", () => {
  test("at the cap the least recently active flow ends (reason evicted), counted; the new flow is admitted", () => {
    const pair = new EnginePair();
    const a = pair.a.stack.udp;
    a.maxFlows = 3;
    const guest = new Map<number, UdpFlow>();
    for (const p of [1001, 1002, 1003]) guestSends(pair, p, guest);
    expect(a.flowCount).toBe(3);
    const [f1, f2, f3] = pair.a.udpApps;
    // 1001 is active again from the guest's side, 1002 from the stack's: 1003 is now the least recently active.
    guestSends(pair, 1001, guest);
    f2!.flow.send(new Uint8Array([9]), 0, 1, pair.now);
    pair.advance(1);
    guestSends(pair, 1004, guest);
    expect(a.flowCount).toBe(3);
    expect(pair.a.stats.limitCount("udp-flows")).toBe(1);
    expect([f1!.closed, f2!.closed, f3!.closed as string | null]).toEqual([null, null, "evicted"]);
    expect(pair.a.udpApps.length).toBe(4);
    // A flood of new 4-tuples never grows the table past the cap.
    for (let p = 2000; p < 2100; p++) guestSends(pair, p, guest);
    expect(a.flowCount).toBe(3);
    expect(pair.a.stats.limitCount("udp-flows")).toBe(101);
    expect(pair.a.udpApps.filter((x) => x.closed === null).map((x) => x.flow.guestPort)).toEqual([2097, 2098, 2099]);
  });
});
