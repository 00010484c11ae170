// The DHCPv4 server against real clients, in a guest whose tap is up with
// no address and no route (GuestNs bare):
// - busybox udhcpc gets 10.0.2.100/24, router 10.0.2.2, the DNS server and
//   search domains the host's resolv.conf calls for, and the tap's MTU;
//   applied with `ip`, that configuration downloads from a host server;
// - isc-dhcp-client (dhclient) gets a lease, renews it (an 8 s lease, from
//   the SLIRPNETSTACK_DHCP_LEASE_S test hook), releases it and gets it
//   again;
// - 2000 DISCOVERs from random MACs (raw frames) leave the stack alive and
//   a fresh udhcpc still gets 10.0.2.100.
// The stack runs in its own mount namespace with a resolv.conf of the
// test's (127.0.0.53, a loopback stub the guest cannot reach, then
// 192.0.2.1 on the host's lo; search corp.example lab.example).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestNs, HostNs } from "../../support/netns.ts";
import { BINARY, StackProcess } from "../../support/stack.ts";
import { HostServers, PYTHON, expectedHash } from "../../support/host-servers.ts";
import { waitUntil } from "../../support/rig.ts";
import { HOST4, HOST_ADDRS } from "./core-rig.ts";

setDefaultTimeout(120_000);

const TAP_MTU = 65521;
let dir = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "slirp-dhcp-"));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "resolv.conf"), "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.example lab.example\n", { mode: 0o644 });
  // The stack under test, in a mount namespace of its own where the test's
  // resolv.conf is /etc/resolv.conf.
  writeFileSync(
    join(dir, "stack.sh"),
    `#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount --bind "$SLIRP_TEST_RESOLV" /etc/resolv.conf && exec "$0" "$@"' "$SLIRP_TEST_REAL" "$@"\n`,
    { mode: 0o755 },
  );
  // udhcpc's script: records what it was given, applies it with ip.
  writeFileSync(
    join(dir, "udhcpc.sh"),
    `#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    echo "event=$1|ip=$ip|subnet=$subnet|router=$router|dns=$dns|mtu=$mtu|domain=$domain|search=$search|lease=$lease|serverid=$serverid" >> "$UDHCPC_OUT"
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route replace default via "$r" dev "$interface"; done ;;
esac
exit 0
`,
    { mode: 0o755 },
  );
  // dhclient's script (-sf): the same, in dhclient-script(8)'s variables
  // (dhclient passes the script no environment of its own: the path is fixed).
  writeFileSync(
    join(dir, "dhclient.sh"),
    `#!/bin/sh
echo "reason=$reason|ip=$new_ip_address|subnet=$new_subnet_mask|router=$new_routers|dns=$new_domain_name_servers|mtu=$new_interface_mtu|search=$new_domain_search|lease=$new_dhcp_lease_time|old=$old_ip_address" >> ${join(dir, "dhclient.out")}
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    for r in $new_routers; do ip route replace default via "$r" dev "$interface"; done ;;
  EXPIRE|FAIL|RELEASE|STOP)
    ip -4 addr flush dev "$interface" ;;
esac
exit 0
`,
    { mode: 0o755 },
  );
  writeFileSync(join(dir, "dhclient.conf"), "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, domain-search, interface-mtu;\n", { mode: 0o644 });
  // DISCOVERs from random MACs, through an AF_PACKET socket on the guest's tap.
  writeFileSync(
    join(dir, "flood.py"),
    `import random, socket, struct, sys, time
ifname, count = sys.argv[1], int(sys.argv[2])
r = random.Random(16)
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for i in range(count):
    mac = bytes([2]) + bytes(r.getrandbits(8) for _ in range(5))
    msg = bytes([1, 1, 6, 0]) + r.getrandbits(32).to_bytes(4, "big") + bytes(20) + mac + bytes(10 + 192) + bytes([99, 130, 83, 99, 53, 1, 1, 255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(msg), 0) + msg
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0, bytes(4), b"\\xff" * 4)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(b"\\xff" * 6 + mac + b"\\x08\\x00" + ip + udp)
    if i % 50 == 49:
        time.sleep(0.002)
print(count)
`,
  );
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

interface DhcpRig {
  host: HostNs;
  guest: GuestNs;
  servers: HostServers;
  stack: StackProcess;
  metricsPort: number;
}

async function createRig(args: string[], env: Record<string, string> = {}): Promise<DhcpRig> {
  const host = await HostNs.create(HOST_ADDRS);
  const servers = await HostServers.start(host);
  const guest = await GuestNs.create({ bare: true, mtu: TAP_MTU });
  const stack = await StackProcess.start(["-netns", guest.netnsPath, "-m", "tcp://127.0.0.1:0", ...args], {
    host,
    binary: join(dir, "stack.sh"),
    env: { SLIRP_TEST_RESOLV: join(dir, "resolv.conf"), SLIRP_TEST_REAL: BINARY, ...env },
  });
  const m = /Running metrics on 127\.0\.0\.1:(\d+)$/m.exec(stack.stderr.text());
  if (!m) throw new Error(`no metrics line in:\n${stack.stderr.text()}`);
  return { host, guest, servers, stack, metricsPort: Number(m[1]) };
}

async function destroyRig(rig: DhcpRig): Promise<void> {
  await rig.stack.destroy();
  await rig.guest.destroy();
  await rig.servers.destroy();
  await rig.host.destroy();
}

async function counters(rig: DhcpRig): Promise<{ events: Record<string, number>; drops: Record<string, number> }> {
  const r = await rig.host.exec(["curl", "-sS", "--noproxy", "*", "--max-time", "10", `http://127.0.0.1:${rig.metricsPort}/debug/pprof/counters`]);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

/** Parses "k=v|k=v" lines. */
function records(path: string): Array<Record<string, string>> {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => Object.fromEntries(l.split("|").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])));
}

async function udhcpc(rig: DhcpRig, out: string): Promise<Record<string, string>> {
  const r = await rig.guest.exec(
    ["env", `UDHCPC_OUT=${out}`, "busybox", "udhcpc", "-i", "tun0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", join(dir, "udhcpc.sh"), "-O", "mtu", "-O", "search"],
    { timeoutMs: 30_000 },
  );
  expect(r.code).toBe(0);
  const rec = records(out);
  expect(rec.length).toBeGreaterThan(0);
  return rec[rec.length - 1]!;
}

/** The guest downloads 1 MB from the host's HTTP server with the configuration it was given. */
async function download(rig: DhcpRig): Promise<void> {
  const url = `http://${HOST4}:${rig.servers.ports.http}/download?size=1000000&seed=dhcp`;
  const r = await rig.guest.exec(["sh", "-c", `curl -sS --noproxy '*' --max-time 20 '${url}' | sha256sum`], { timeoutMs: 30_000 });
  expect(r.stderr).toBe("");
  expect(r.stdout.split(" ")[0]).toBe(await expectedHash(1_000_000, "dhcp"));
}

describe("DHCPv4 with udhcpc (busybox)", () => {
  let rig: DhcpRig;
  beforeAll(async () => {
    // No DNS forwarder: the guest is offered the host's resolvers it can reach.
    rig = await createRig(["-dhcp", "-enable-host"]);
  });
  afterAll(async () => {
    await destroyRig(rig);
  });

  test("gets address, netmask, router, DNS, search domains and MTU, and a download works with them", async () => {
    expect(await rig.guest.run(["ip", "-4", "-o", "addr", "show", "dev", "tun0"])).toBe("");
    const got = await udhcpc(rig, join(dir, "udhcpc-1.out"));
    expect(got).toMatchObject({
      event: "bound",
      ip: "10.0.2.100",
      subnet: "255.255.255.0",
      router: "10.0.2.2",
      // 127.0.0.53 is the host's loopback stub: out of the guest's reach, not offered.
      dns: "192.0.2.1",
      mtu: String(TAP_MTU),
      domain: "corp.example",
      search: "corp.example lab.example",
      lease: "86400",
      serverid: "10.0.2.2",
    });
    expect(await rig.guest.run(["ip", "-4", "-o", "addr", "show", "dev", "tun0"])).toContain("inet 10.0.2.100/24");
    expect(await rig.guest.run(["ip", "-4", "route", "show", "default"])).toContain("default via 10.0.2.2 dev tun0");
    await download(rig);
    const c = await counters(rig);
    expect(c.events["dhcp-offer"]).toBe(1);
    expect(c.events["dhcp-ack"]).toBe(1);
  });
});

describe("DHCPv4 with dhclient (isc-dhcp-client)", () => {
  let rig: DhcpRig;
  beforeAll(async () => {
    rig = await createRig(["-dhcp", "-enable-host", "-enable-dns"], { SLIRPNETSTACK_DHCP_LEASE_S: "8" });
  });
  afterAll(async () => {
    await destroyRig(rig);
  });

  function dhclient(extra: string[]): string[] {
    return [
      "dhclient",
      "-v",
      ...extra,
      "-cf",
      join(dir, "dhclient.conf"),
      "-sf",
      join(dir, "dhclient.sh"),
      "-lf",
      join(dir, "dhclient.leases"),
      "-pf",
      join(dir, "dhclient.pid"),
      "tun0",
    ];
  }

  test("gets a lease, renews it, releases it and gets it again", async () => {
    const out = join(dir, "dhclient.out");
    const first = rig.guest.spawn(dhclient(["-d"]));
    const bound = await waitUntil("dhclient BOUND", () => records(out).find((r) => r.reason === "BOUND"), 20_000, 100);
    expect(bound).toMatchObject({
      ip: "10.0.2.100",
      subnet: "255.255.255.0",
      router: "10.0.2.2",
      dns: "10.0.2.3", // the forwarder is on
      mtu: String(TAP_MTU),
      search: "corp.example. lab.example.", // dhclient writes names absolute
      lease: "8",
    });
    expect(await rig.guest.run(["ip", "-4", "-o", "addr", "show", "dev", "tun0"])).toContain("inet 10.0.2.100/24");
    await download(rig);
    // T1 is half the lease: dhclient renews, unicast to the server.
    const renew = await waitUntil("dhclient RENEW", () => records(out).find((r) => r.reason === "RENEW"), 20_000, 100);
    expect(renew).toMatchObject({ ip: "10.0.2.100", router: "10.0.2.2", dns: "10.0.2.3", lease: "8" });
    expect((await counters(rig)).events["dhcp-ack"]).toBeGreaterThanOrEqual(2);
    first.kill("SIGTERM");
    await first.exited;
    // -r: DHCPRELEASE for the lease in the lease file.
    const rel = await rig.guest.exec(dhclient(["-r"]), { timeoutMs: 20_000 });
    expect(rel.code).toBe(0);
    await waitUntil("DHCPRELEASE counted", async () => (await counters(rig)).events["dhcp-release"] === 1, 10_000, 100);
    expect(records(out).some((r) => r.reason === "RELEASE")).toBe(true);
    expect(await rig.guest.run(["ip", "-4", "-o", "addr", "show", "dev", "tun0"])).toBe("");
    // And again: the address it had.
    const acksBefore = (await counters(rig)).events["dhcp-ack"]!;
    const n = records(out).length;
    const again = rig.guest.spawn(dhclient(["-d"]));
    const rebound = await waitUntil(
      "dhclient bound again",
      () => records(out).slice(n).find((r) => r.reason === "BOUND" || r.reason === "REBOOT"),
      20_000,
      100,
    );
    expect(rebound).toMatchObject({ ip: "10.0.2.100", router: "10.0.2.2", dns: "10.0.2.3" });
    expect((await counters(rig)).events["dhcp-ack"]).toBeGreaterThan(acksBefore);
    await download(rig);
    again.kill("SIGTERM");
    await again.exited;
  });
});

describe("DHCPv4 under a DISCOVER flood", () => {
  let rig: DhcpRig;
  beforeAll(async () => {
    rig = await createRig(["-dhcp", "-enable-host"]);
  });
  afterAll(async () => {
    await destroyRig(rig);
  });

  test("2000 DISCOVERs from random MACs: the stack stays up and a fresh udhcpc still gets 10.0.2.100", async () => {
    const r = await rig.guest.exec([PYTHON, join(dir, "flood.py"), "tun0", "2000"], { timeoutMs: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("2000");
    // Every DISCOVER was answered (an offer records nothing, so none hit the lease cap).
    // Every DISCOVER that reached the stack was answered (an offer records
    // nothing, so none met the lease cap); the tap's queue may have dropped
    // some on the way when the stack was slower than the sender.
    const dropped = JSON.parse(await rig.guest.run(["ip", "-s", "-j", "link", "show", "tun0"]))[0].stats64.tx.dropped as number;
    expect(dropped).toBeLessThan(1000);
    await waitUntil("an offer for each DISCOVER", async () => (await counters(rig)).events["dhcp-offer"] === 2000 - dropped, 20_000, 100);
    expect(rig.stack.proc.exitCode).toBeNull();
    const got = await udhcpc(rig, join(dir, "udhcpc-flood.out"));
    expect(got).toMatchObject({ event: "bound", ip: "10.0.2.100", router: "10.0.2.2", dns: "192.0.2.1", mtu: String(TAP_MTU) });
    await download(rig);
  });
});
