// src/ns as root: the direct path (setns on the JS thread) keeps today's
// behaviour and upstream's lines; the helper path and run mode work as root
// too.
import { test, expect, beforeAll, afterAll } from "bun:test";
import { GuestNs } from "../../support/netns.ts";
import { runProbe } from "../../support/unpriv.ts";
import { acquireDevice, DeviceError } from "../../../src/ns/index.ts";
import { closeFd } from "../../../ffi/sys.ts";
import { readlinkSync } from "node:fs";

const OFFLOADS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;

let guest: GuestNs;

beforeAll(async () => {
  if (process.geteuid?.() !== 0) throw new Error("these tests run as root");
  guest = await GuestNs.create();
});

afterAll(async () => {
  await guest?.destroy();
});

test("direct attach: tap with offloads, Opening callback inside, and back in our namespace", async () => {
  const home = readlinkSync("/proc/thread-self/ns/net");
  const seen: string[] = [];
  const dev = await acquireDevice({
    netns: guest.netnsPath,
    ifname: "tun0",
    offloads: OFFLOADS,
    onOpening: () => seen.push(readlinkSync("/proc/thread-self/ns/net")),
  });
  try {
    expect(dev.kind).toBe("tap");
    expect(dev.mtu).toBe(65521);
    expect(dev.vnetHdr).toBe(true);
    expect(dev.offloads & 0x01).toBe(0x01);
    expect(seen).toEqual([readlinkSync(guest.netnsPath)]);
    expect(readlinkSync("/proc/thread-self/ns/net")).toBe(home);
  } finally {
    closeFd(dev.fd);
  }
});

test("direct attach: the device answers (kernel ARP reply through the fd)", async () => {
  const r = await runProbe(null, ["attach", guest.netnsPath, "tun0", "--offloads", String(OFFLOADS)]);
  expect(r.result).toMatchObject({ ok: true, opened: true, arpReply: true, device: { kind: "tap", vnetHdr: true } });
});

test("direct attach failures print upstream's lines", async () => {
  const fail = async (netns: string, ifname: string): Promise<DeviceError> => {
    try {
      const dev = await acquireDevice({ netns, ifname, offloads: 0 });
      closeFd(dev.fd);
    } catch (e) {
      if (e instanceof DeviceError) return e;
      throw e;
    }
    throw new Error("expected a DeviceError");
  };
  const noNs = await fail("/nonexistent/netns", "tun0");
  expect(noNs.exitCode).toBe(253);
  expect(noNs.lines()).toEqual([
    `[!] Can't join netns /nonexistent/netns: joining net namespace "/nonexistent/netns": no such file or directory`,
    `Failed to open TUN/TAP: joining net namespace "/nonexistent/netns": no such file or directory`,
  ]);
  const noDev = await fail(guest.netnsPath, "nosuch0");
  expect(noDev.lines()).toEqual(["[!] GetMTU(nosuch0) = no such device", "Failed to open TUN/TAP: no such device"]);
});

test("the helper path works as root too (nsenter -U -n -t PID)", async () => {
  let opened = 0;
  const dev = await acquireDevice({ netns: guest.netnsPath, ifname: "tun0", offloads: 0, rootless: true, onOpening: () => opened++ });
  try {
    expect(dev).toMatchObject({ kind: "tap", mtu: 65521, vnetHdr: false, offloads: 0 });
    expect(opened).toBe(1);
  } finally {
    closeFd(dev.fd);
  }
});

test("run mode as root", async () => {
  const r = await runProbe(null, ["run", "--offloads", String(OFFLOADS), "--", "sh", "-c", "ip -o addr show dev tun0; exit 5"]);
  expect(r.result).toMatchObject({ ok: true, status: 5, device: { kind: "tap", mtu: 65520, vnetHdr: true } });
  expect(r.output).toContain("inet 10.0.2.100/24");
  expect(r.output).toContain("inet6 fd00::100/64");
});
