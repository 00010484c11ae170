// Foundation: `-fd N` mode (docs/compatibility.md, Fd mode, and Devices and
// MTU). The stack gets one end of a unix SOCK_DGRAM socketpair as an
// inherited fd; the test plays the guest on the other end, one Ethernet
// frame per datagram.
import { afterEach, describe, expect, test } from "bun:test";
import { DgramPair } from "../../support/fdpair.ts";
import {
  BROADCAST_MAC,
  ETH_ARP,
  ETH_IPV4,
  arpBody,
  ethernet,
  fragmentIpv4,
  icmpEcho,
  ipv4,
  ipv4Text,
  mac,
  macText,
  parseArp,
  parseIpv4,
  pattern,
  reassembleIpv4,
  type ParsedIpv4,
} from "../../support/frames.ts";
import { HostNs } from "../../support/netns.ts";
import { StackProcess } from "../../support/stack.ts";

const GUEST_MAC = mac("02:00:0a:00:02:64");
const STACK_MAC = "70:71:aa:4b:29:aa";
const GUEST_IP = ipv4("10.0.2.100");

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function startFdStack(extraArgs: string[] = []): Promise<{ stack: StackProcess; pair: DgramPair }> {
  const host = await HostNs.create();
  cleanups.push(() => host.destroy());
  const pair = DgramPair.create();
  cleanups.push(() => pair.destroy());
  const stack = await StackProcess.start(["-fd", "3", ...extraArgs], { host, extraFds: [pair.remote] });
  cleanups.push(() => stack.destroy());
  pair.closeRemote();
  return { stack, pair };
}

/** Answers the stack's ARP requests for the guest so it can send IP to us. */
function arpResponder(pair: DgramPair): (f: Uint8Array) => void {
  return (f) => {
    const a = parseArp(f);
    if (a && a.op === 1 && ipv4Text(a.targetIp) === "10.0.2.100") {
      pair.send(
        ethernet(a.senderMac, GUEST_MAC, ETH_ARP, arpBody({ op: 2, senderMac: GUEST_MAC, senderIp: GUEST_IP, targetMac: a.senderMac, targetIp: a.senderIp })),
      );
    }
  };
}

function sameIpDatagram(frames: Uint8Array[]): ParsedIpv4[] {
  const out: ParsedIpv4[] = [];
  for (const f of frames) {
    if (f.length < 14 || ((f[12]! << 8) | f[13]!) !== ETH_IPV4) continue;
    const ip = parseIpv4(f);
    if (ip && ip.protocol === 1 && ip.src === "10.0.2.2" && ip.dst === "10.0.2.100") out.push(ip);
  }
  return out;
}

/**
 * Sends an ICMP echo request with `dataLen` bytes of data, fragmented by us
 * to `sendMtu` if needed, and returns the reply's IP fragments (one entry
 * when the reply was not fragmented) and the reassembled ICMP message.
 */
async function echo(pair: DgramPair, dataLen: number, sendMtu: number, seq: number): Promise<{ frags: ParsedIpv4[]; frames: Uint8Array[]; icmp: Uint8Array }> {
  const data = pattern(dataLen, seq);
  const request = { src: GUEST_IP, dst: ipv4("10.0.2.2"), protocol: 1, id: 0x4000 + seq, payload: icmpEcho(8, 0x1234, seq, data) };
  for (const p of fragmentIpv4(request, sendMtu)) pair.send(ethernet(mac(STACK_MAC), GUEST_MAC, ETH_IPV4, p));
  const respond = arpResponder(pair);
  let icmp: Uint8Array | null = null;
  const frames = await pair.collect(
    (all) => {
      const frags = sameIpDatagram(all);
      icmp = reassembleIpv4(frags);
      return icmp !== null;
    },
    5000,
    respond,
  );
  expect(icmp).not.toBeNull();
  const frags = sameIpDatagram(frames);
  const reply = icmp! as Uint8Array;
  expect(reply[0]).toBe(0); // echo reply
  expect(reply.length).toBe(8 + dataLen);
  expect(Buffer.from(reply.subarray(8)).equals(Buffer.from(data))).toBe(true);
  return { frags, frames, icmp: reply };
}

describe("-fd mode", () => {
  test("stderr has only the started line; ARP who-has 10.0.2.10 gets a reply from 10.0.2.10", async () => {
    const { stack, pair } = await startFdStack();
    expect(stack.stderr.lines).toEqual([`[+] #${stack.pid} Slirpnetstack started`]);
    pair.send(
      ethernet(
        BROADCAST_MAC,
        GUEST_MAC,
        ETH_ARP,
        arpBody({ op: 1, senderMac: GUEST_MAC, senderIp: GUEST_IP, targetMac: new Uint8Array(6), targetIp: ipv4("10.0.2.10") }),
      ),
    );
    const isReply = (f: Uint8Array) => {
      const a = parseArp(f);
      return a !== null && a.op === 2 && ipv4Text(a.senderIp) === "10.0.2.10";
    };
    const frames = await pair.collect((all) => all.some(isReply), 5000);
    const reply = frames.find(isReply);
    expect(reply).toBeDefined();
    const a = parseArp(reply!)!;
    expect(macText(a.senderMac)).toBe(STACK_MAC);
    expect(macText(a.targetMac)).toBe(macText(GUEST_MAC));
    expect(ipv4Text(a.targetIp)).toBe("10.0.2.100");
    // Unicast back to the asker, from the stack's MAC.
    expect(macText(reply!, 0)).toBe(macText(GUEST_MAC));
    expect(macText(reply!, 6)).toBe(STACK_MAC);
    expect(await stack.stop()).toBe(0);
  });

  test("the startup ARP request for 10.0.2.100 arrives on the fd", async () => {
    const { pair } = await startFdStack();
    const isPrime = (f: Uint8Array) => {
      const a = parseArp(f);
      return a !== null && a.op === 1 && ipv4Text(a.targetIp) === "10.0.2.100" && ipv4Text(a.senderIp) === "10.0.2.2";
    };
    const frames = await pair.collect((all) => all.some(isPrime), 5000);
    expect(frames.some(isPrime)).toBe(true);
  });

  test("default MTU is 1500: a 1500-byte echo is answered unfragmented, 1501 bytes is fragmented", async () => {
    const { pair } = await startFdStack();
    const atMtu = await echo(pair, 1472, 1500, 1);
    expect(atMtu.frags.length).toBe(1);
    expect(atMtu.frags[0]!.totalLength).toBe(1500);
    const over = await echo(pair, 1473, 1500, 2);
    expect(over.frags.length).toBe(2);
    for (const f of over.frags) expect(f.totalLength).toBeLessThanOrEqual(1500);
    // Our own fragmented request is reassembled by the stack, too.
    const big = await echo(pair, 8000, 1500, 3);
    expect(big.frags.length).toBe(6);
  });

  test("-mtu 1400 changes the link MTU", async () => {
    const { pair } = await startFdStack(["-mtu", "1400"]);
    const atMtu = await echo(pair, 1372, 1400, 1);
    expect(atMtu.frags.length).toBe(1);
    expect(atMtu.frags[0]!.totalLength).toBe(1400);
    // 1472 bytes of data (a 1500-byte datagram) now needs two fragments.
    const over = await echo(pair, 1472, 1400, 2);
    expect(over.frags.length).toBe(2);
    for (const f of over.frags) expect(f.totalLength).toBeLessThanOrEqual(1400);
    for (const fr of over.frames) expect(fr.length).toBeLessThanOrEqual(1414);
  });

  test("-mtu 1500 given explicitly behaves like the default", async () => {
    const { pair } = await startFdStack(["-mtu", "1500"]);
    expect((await echo(pair, 1472, 1500, 1)).frags.length).toBe(1);
    expect((await echo(pair, 1473, 1500, 2)).frags.length).toBe(2);
  });
});
