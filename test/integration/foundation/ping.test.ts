// Foundation: ICMP echo from the guest is answered by the stack itself
// (docs/compatibility.md, What the stack answers), for any destination,
// over a tap or a tun device, with IPv4 and IPv6, including datagrams that
// must be fragmented and reassembled in both directions (Devices and MTU).
import { describe, expect, test } from "bun:test";
import type { GuestNs } from "../../support/netns.ts";
import { snmpCounters, withRig } from "../../support/rig.ts";

async function ping(guest: GuestNs, args: string[]): Promise<string> {
  const r = await guest.exec(["ping", "-c1", "-W5", ...args], { timeoutMs: 15_000 });
  const out = r.stdout + r.stderr;
  expect({ args, code: r.code, out }).toMatchObject({ code: 0 });
  expect(out).toContain("1 received");
  expect(out).not.toContain("wrong data");
  expect(out).not.toContain("DUP!");
  return out;
}

describe("ping, tap guest (MTU 65521)", () => {
  test("small pings to the gateway, another guest-subnet IP, an outside IP, v6 gateway and v6 outside", async () => {
    await withRig({}, async ({ guest }) => {
      await ping(guest, ["10.0.2.2"]);
      await ping(guest, ["10.0.2.11"]);
      const out = await ping(guest, ["1.1.1.1"]);
      // Answered by the stack itself: the reply comes from the address pinged, with its TTL of 64.
      expect(out).toMatch(/from 1\.1\.1\.1: icmp_seq=1 ttl=64/);
      await ping(guest, ["-6", "fd00::2"]);
      await ping(guest, ["-6", "2001:2::2"]);
    });
  });

  test("64 KB pings (single large frames on this MTU)", async () => {
    await withRig({}, async ({ guest }) => {
      expect(await ping(guest, ["-s", "65000", "10.0.2.2"])).toContain("65008 bytes from 10.0.2.2");
      expect(await ping(guest, ["-6", "-s", "65000", "fd00::2"])).toContain("65008 bytes from fd00::2");
    });
  });
});

describe("ping, tap guest (MTU 1500): fragmentation both ways", () => {
  test("ping -s 65000 over IPv4 and IPv6", async () => {
    await withRig({ guest: { mtu: 1500 } }, async ({ guest }) => {
      const before = await snmpCounters(guest);
      expect(await ping(guest, ["-s", "65000", "10.0.2.2"])).toContain("65008 bytes from 10.0.2.2");
      expect(await ping(guest, ["-6", "-s", "65000", "fd00::2"])).toContain("65008 bytes from fd00::2");
      const after = await snmpCounters(guest);
      const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
      // The guest fragmented its requests (guest -> stack reassembly) ...
      expect(delta("IpFragCreates")).toBeGreaterThanOrEqual(44);
      expect(delta("Ip6FragCreates")).toBeGreaterThanOrEqual(44);
      // ... and reassembled the stack's fragmented replies (stack -> guest fragmentation).
      expect(delta("IpReasmOKs")).toBe(1);
      expect(delta("Ip6ReasmOKs")).toBe(1);
      expect(delta("IpReasmFails")).toBe(0);
      expect(delta("Ip6ReasmFails")).toBe(0);
    });
  });

  test("a reply exactly at the MTU is not fragmented, one byte more is", async () => {
    await withRig({ guest: { mtu: 1500 } }, async ({ guest }) => {
      const s0 = await snmpCounters(guest);
      await ping(guest, ["-M", "do", "-s", "1472", "10.0.2.2"]);
      const s1 = await snmpCounters(guest);
      expect(s1.IpReasmOKs! - s0.IpReasmOKs!).toBe(0);
      await ping(guest, ["-s", "1473", "10.0.2.2"]);
      const s2 = await snmpCounters(guest);
      expect(s2.IpReasmOKs! - s1.IpReasmOKs!).toBe(1);
    });
  });

  test("-mtu is ignored in device mode: the device's MTU wins", async () => {
    await withRig({ guest: { mtu: 1500 }, args: ["-mtu", "9000"] }, async ({ guest }) => {
      const s0 = await snmpCounters(guest);
      await ping(guest, ["-s", "1473", "10.0.2.2"]);
      const s1 = await snmpCounters(guest);
      expect(s1.IpReasmOKs! - s0.IpReasmOKs!).toBe(1);
    });
  });
});

describe("ping, tun guest (raw IP, no ARP)", () => {
  test("v4 and v6, small and large", async () => {
    await withRig({ guest: { mode: "tun" } }, async ({ guest, stack }) => {
      expect(stack.stderr.lines).toContain("[.] Opening tun interface tun0");
      await ping(guest, ["10.0.2.2"]);
      await ping(guest, ["1.1.1.1"]);
      await ping(guest, ["-6", "fd00::2"]);
      await ping(guest, ["-s", "65000", "10.0.2.2"]);
      await ping(guest, ["-6", "-s", "65000", "fd00::2"]);
    });
  });

  test("fragmentation both ways on a 1500-byte tun", async () => {
    await withRig({ guest: { mode: "tun", mtu: 1500 } }, async ({ guest }) => {
      const before = await snmpCounters(guest);
      await ping(guest, ["-s", "65000", "10.0.2.2"]);
      await ping(guest, ["-6", "-s", "65000", "fd00::2"]);
      const after = await snmpCounters(guest);
      expect(after.IpReasmOKs! - before.IpReasmOKs!).toBe(1);
      expect(after.Ip6ReasmOKs! - before.Ip6ReasmOKs!).toBe(1);
    });
  });
});
