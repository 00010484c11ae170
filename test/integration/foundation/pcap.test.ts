// Foundation: `-pcap FILE` (docs/compatibility.md, Packet capture): classic
// big-endian libpcap, LINKTYPE_RAW, snaplen = MTU, first record the 28-byte
// ARP priming request, both directions recorded, file opened without
// truncation.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DgramPair } from "../../support/fdpair.ts";
import { HostNs } from "../../support/netns.ts";
import { withRig } from "../../support/rig.ts";
import { StackProcess } from "../../support/stack.ts";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "slirp-pcap-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface PcapRecord {
  sec: number;
  usec: number;
  caplen: number;
  origlen: number;
  data: Uint8Array;
}

function parsePcap(buf: Uint8Array, maxRecords = Infinity): { header: DataView; records: PcapRecord[]; end: number } {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: PcapRecord[] = [];
  let off = 24;
  while (off + 16 <= buf.length && records.length < maxRecords) {
    const caplen = v.getUint32(off + 8);
    if (off + 16 + caplen > buf.length) break;
    records.push({
      sec: v.getUint32(off),
      usec: v.getUint32(off + 4),
      caplen,
      origlen: v.getUint32(off + 12),
      data: buf.subarray(off + 16, off + 16 + caplen),
    });
    off += 16 + caplen;
  }
  return { header: new DataView(buf.buffer, buf.byteOffset, 24), records, end: off };
}

function isIcmpEcho(r: PcapRecord, type: number, src: string, dst: string): boolean {
  const d = r.data;
  if (d.length < 28 || d[0]! >> 4 !== 4 || d[9] !== 1) return false;
  const ihl = (d[0]! & 0xf) * 4;
  return d.subarray(12, 16).join(".") === src && d.subarray(16, 20).join(".") === dst && d[ihl] === type;
}

function isIcmp6Echo(r: PcapRecord, type: number): boolean {
  const d = r.data;
  return d.length >= 48 && d[0]! >> 4 === 6 && d[6] === 58 && d[40] === type;
}

async function tcpdump(path: string): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(["tcpdump", "-r", path, "-nn"], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: out + err };
}

describe("-pcap", () => {
  test("format, first record, both directions, tcpdump reads it", async () => {
    const file = join(dir, "fresh.pcap");
    await withRig({ args: ["-pcap", file] }, async ({ guest, stack }) => {
      // The header is on disk as soon as the stack has started.
      const early = readFileSync(file);
      expect(early.length).toBeGreaterThanOrEqual(24);
      expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
      expect((await guest.exec(["ping", "-6", "-c1", "-W5", "fd00::2"])).code).toBe(0);
      expect(await stack.stop()).toBe(0);
    });
    const buf = new Uint8Array(readFileSync(file));
    const { header, records, end } = parsePcap(buf);
    expect(header.getUint32(0)).toBe(0xa1b2c3d4); // big-endian magic
    expect(header.getUint16(4)).toBe(2);
    expect(header.getUint16(6)).toBe(4);
    expect(header.getInt32(8)).toBe(0);
    expect(header.getUint32(12)).toBe(0);
    expect(header.getUint32(16)).toBe(65521); // snaplen = the device MTU
    expect(header.getUint32(20)).toBe(101); // LINKTYPE_RAW
    expect(end).toBe(buf.length); // whole records only

    // Record 1: the ARP priming request "who-has 10.0.2.100 tell 10.0.2.2", a 28-byte ARP body.
    const first = records[0]!;
    expect(first.caplen).toBe(28);
    expect(first.origlen).toBe(28);
    const arp = new DataView(first.data.buffer, first.data.byteOffset, 28);
    expect(arp.getUint16(0)).toBe(1);
    expect(arp.getUint16(2)).toBe(0x0800);
    expect(arp.getUint16(6)).toBe(1); // request
    expect(first.data.subarray(14, 18).join(".")).toBe("10.0.2.2");
    expect(first.data.subarray(24, 28).join(".")).toBe("10.0.2.100");

    // Both directions, without Ethernet headers.
    expect(records.some((r) => isIcmpEcho(r, 8, "10.0.2.100", "10.0.2.2"))).toBe(true);
    expect(records.some((r) => isIcmpEcho(r, 0, "10.0.2.2", "10.0.2.100"))).toBe(true);
    expect(records.some((r) => isIcmp6Echo(r, 128))).toBe(true);
    expect(records.some((r) => isIcmp6Echo(r, 129))).toBe(true);
    for (const r of records) {
      expect(r.caplen).toBeLessThanOrEqual(65521);
      expect(r.caplen).toBe(r.origlen);
      expect(r.usec).toBeLessThan(1_000_000);
      expect(Math.abs(r.sec - Date.now() / 1000)).toBeLessThan(120);
    }

    const td = await tcpdump(file);
    expect(td.code).toBe(0);
    expect(td.out).toContain("link-type RAW (Raw IP), snapshot length 65521");
    // ARP bodies in a raw-IP capture are not decodable; tcpdump shows them as "unknown ip 0".
    expect(td.out.split("\n")[0]).toContain("unknown ip 0");
    expect(td.out).toMatch(/10\.0\.2\.100 > 10\.0\.2\.2: ICMP echo request/);
    expect(td.out).toMatch(/10\.0\.2\.2 > 10\.0\.2\.100: ICMP echo reply/);
    expect(td.out).toMatch(/fd00::100 > fd00::2: ICMP6, echo request/);
    expect(td.out).toMatch(/fd00::2 > fd00::100: ICMP6, echo reply/);
  });

  test("snaplen follows the device MTU, and long packets are captured whole", async () => {
    const file = join(dir, "mtu1500.pcap");
    await withRig({ args: ["-pcap", file], guest: { mtu: 1500 } }, async ({ guest, stack }) => {
      expect((await guest.exec(["ping", "-c1", "-W5", "-s", "3000", "10.0.2.2"])).code).toBe(0);
      expect(await stack.stop()).toBe(0);
    });
    const buf = new Uint8Array(readFileSync(file));
    const { header, records, end } = parsePcap(buf);
    expect(header.getUint32(16)).toBe(1500);
    expect(end).toBe(buf.length);
    // The fragments of the request and the reply, each at most one MTU.
    const frags = records.filter((r) => r.data[0]! >> 4 === 4 && r.data[9] === 1);
    expect(frags.length).toBeGreaterThanOrEqual(6);
    for (const r of frags) expect(r.caplen).toBeLessThanOrEqual(1500);
    expect((await tcpdump(file)).code).toBe(0);
  });

  test("an existing longer file is not truncated: the stale tail stays", async () => {
    const file = join(dir, "stale.pcap");
    const staleSize = 1 << 20;
    writeFileSync(file, new Uint8Array(staleSize).fill(0xee));
    await withRig({ args: ["-pcap", file] }, async ({ guest, stack }) => {
      expect((await guest.exec(["ping", "-c1", "-W5", "10.0.2.2"])).code).toBe(0);
      expect(await stack.stop()).toBe(0);
    });
    expect(statSync(file).size).toBe(staleSize);
    const buf = new Uint8Array(readFileSync(file));
    const { header, records, end } = parsePcap(buf, 3);
    expect(header.getUint32(0)).toBe(0xa1b2c3d4);
    expect(records[0]!.caplen).toBe(28);
    // Somewhere after the new records the old bytes are still there.
    expect(end).toBeLessThan(staleSize / 2);
    expect(buf.subarray(staleSize - 4096).every((b) => b === 0xee)).toBe(true);
  });

  test("a new file is created with mode 0600, whatever the umask (captures hold guest traffic)", async () => {
    const file = join(dir, "mode.pcap");
    const old = process.umask(0);
    try {
      await withRig({ args: ["-pcap", file] }, async ({ stack }) => {
        expect(await stack.stop()).toBe(0);
      });
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  test("-fd mode: snaplen is -mtu, the first record is the ARP priming request", async () => {
    const file = join(dir, "fd.pcap");
    const host = await HostNs.create();
    const pair = DgramPair.create();
    try {
      const stack = await StackProcess.start(["-fd", "3", "-mtu", "1400", "-pcap", file], { host, extraFds: [pair.remote] });
      pair.closeRemote();
      // The priming request reaches the socket: it has been captured by then.
      await pair.collect((all) => all.length > 0, 5000);
      expect(await stack.stop()).toBe(0);
    } finally {
      await pair.destroy();
      await host.destroy();
    }
    const buf = new Uint8Array(readFileSync(file));
    const { header, records, end } = parsePcap(buf);
    expect(header.getUint32(0)).toBe(0xa1b2c3d4);
    expect(header.getUint32(16)).toBe(1400);
    expect(header.getUint32(20)).toBe(101);
    expect(end).toBe(buf.length);
    expect(records[0]!.caplen).toBe(28);
    expect((await tcpdump(file)).code).toBe(0);
  });
});
