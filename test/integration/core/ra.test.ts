// IPv6 self-configuration against the built binary with real clients: a
// guest whose tap has no address (accept_ra 2, forwarding 0) gets a SLAAC
// fd00::/64 address and a default route via the stack's link-local
// address from the Linux kernel itself; rdisc6 (ndisc6) sees the prefix,
// the MTU, RDNSS and DNSSL; TCP over the SLAAC address reaches a host
// server; dhclient -6 -S (isc-dhcp-client) gets the DNS servers and the
// search list by stateless DHCPv6.
//
// The stack runs in a mount namespace of its own with a test resolv.conf
// bound over /etc/resolv.conf: nameservers ::1 (the host's own loopback),
// fe80::1 (the host's link), HOST6 (on the host's lo: reachable with
// -enable-host) and 2001:db8::dead (not reachable: routing is off), so
// what is advertised without the forwarder is exactly HOST6.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestNs, HostNs } from "../../support/netns.ts";
import { BINARY as DEFAULT_BINARY, StackProcess } from "../../support/stack.ts";
import { HostServers, PYTHON } from "../../support/host-servers.ts";
import { HOST6, HOST_ADDRS } from "./core-rig.ts";

setDefaultTimeout(90_000);

const BINARY = process.env.SLIRPNETSTACK_BINARY || DEFAULT_BINARY;
const STACK_LL = "fe80::7271:aaff:fe4b:29aa";
const MTU = 9000;
const RESOLV = `nameserver ::1\nnameserver fe80::1%eth0\nnameserver ${HOST6}\nnameserver 2001:db8::dead\nsearch example.test corp.example\n`;

interface Rig {
  host: HostNs;
  servers: HostServers;
  guest: GuestNs;
  stack: StackProcess;
  dir: string;
}

async function createRig(args: string[]): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), "slirp-ra-"));
  writeFileSync(join(dir, "resolv.conf"), RESOLV);
  const host = await HostNs.create(HOST_ADDRS);
  const servers = await HostServers.start(host);
  const guest = await GuestNs.create({ bare: true, mtu: MTU });
  const stack = await StackProcess.start(
    ["-m", "--propagation", "private", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', join(dir, "resolv.conf"), BINARY, "-netns", guest.netnsPath, ...args],
    { host, binary: "unshare" },
  );
  return { host, servers, guest, stack, dir };
}

async function destroyRig(r: Rig | undefined): Promise<void> {
  if (!r) return;
  await r.stack.destroy();
  await r.guest.destroy();
  await r.servers.destroy();
  await r.host.destroy();
  rmSync(r.dir, { recursive: true, force: true });
}

/** The modified EUI-64 interface identifier of a MAC (RFC 4291 appendix A), as the kernel forms the SLAAC address. */
function slaacAddress(mac: string): string {
  const b = mac.split(":").map((h) => parseInt(h, 16));
  const g = [(b[0]! ^ 2) * 256 + b[1]!, b[2]! * 256 + 0xff, 0xfe * 256 + b[3]!, b[4]! * 256 + b[5]!];
  return `fd00::${g.map((x) => x.toString(16)).join(":")}`;
}

interface IpAddr {
  local: string;
  scope: string;
  tentative?: boolean;
}

async function guestState(g: GuestNs): Promise<{ addrs: IpAddr[]; defaults: Array<{ gateway?: string; dev?: string; protocol?: string }>; mac: string }> {
  const a = JSON.parse(await g.run(["ip", "-6", "-j", "addr", "show", "dev", "tun0"])) as Array<{ addr_info: IpAddr[] }>;
  const l = JSON.parse(await g.run(["ip", "-j", "link", "show", "dev", "tun0"])) as Array<{ address: string }>;
  const r = JSON.parse(await g.run(["ip", "-6", "-j", "route", "show", "default"])) as Array<{ gateway?: string; dev?: string; protocol?: string }>;
  return { addrs: a[0]?.addr_info ?? [], defaults: r, mac: l[0]!.address };
}

/** Waits (10 s at most) for a global address that finished DAD and a default route; returns what is there. */
async function waitConfigured(g: GuestNs): Promise<Awaited<ReturnType<typeof guestState>> & { ms: number }> {
  const t0 = Date.now();
  let s = await guestState(g);
  while (Date.now() - t0 < 10_000) {
    if (s.addrs.some((x) => x.scope === "global" && !x.tentative) && s.defaults.length > 0) break;
    await Bun.sleep(100);
    s = await guestState(g);
  }
  return { ...s, ms: Date.now() - t0 };
}

/** rdisc6's report, as field -> values. */
function parseRdisc6(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const k = line.slice(0, i).trim();
    const v = line.slice(i + 1).trim();
    m.set(k, [...(m.get(k) ?? []), v]);
  }
  return m;
}

describe("-ra, forwarder off: the host's reachable resolver", () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await createRig(["-ra", "-enable-host"]);
  });
  afterAll(() => destroyRig(rig));

  test("the kernel configures a SLAAC address and a default route via the stack's link-local address within 10 s", async () => {
    const s = await waitConfigured(rig!.guest);
    const global = s.addrs.filter((x) => x.scope === "global").map((x) => x.local);
    expect({ global, defaults: s.defaults.map((d) => [d.gateway, d.dev, d.protocol]) }).toEqual({
      global: [slaacAddress(s.mac)],
      defaults: [[STACK_LL, "tun0", "ra"]],
    });
    expect(s.ms).toBeLessThan(10_000);
  });

  test("rdisc6 shows the router's flags, the prefix, the MTU, RDNSS and DNSSL", async () => {
    const out = await rig!.guest.run(["rdisc6", "-1", "-w", "2000", "tun0"]);
    const f = parseRdisc6(out);
    expect(f.get("Stateful address conf.")).toEqual(["No"]);
    expect(f.get("Stateful other conf.")).toEqual(["Yes"]);
    expect(f.get("Router lifetime")![0]).toStartWith("1800 ");
    expect(f.get("Source link-layer address")).toEqual(["70:71:AA:4B:29:AA"]);
    expect(f.get("MTU")).toEqual([`${MTU} bytes (valid)`]);
    expect(f.get("Prefix")).toEqual(["fd00::/64"]);
    expect(f.get("On-link")).toEqual(["Yes"]);
    expect(f.get("Autonomous address conf.")).toEqual(["Yes"]);
    // ::1, fe80::1 and 2001:db8::dead are not the guest's to reach.
    expect(f.get("Recursive DNS server")).toEqual([HOST6]);
    expect(f.get("DNS search list")).toEqual(["example.test corp.example"]);
    expect(out).toContain(`from ${STACK_LL}`);
  });

  test("TCP from the SLAAC address to a host server over IPv6", async () => {
    const s = await guestState(rig!.guest);
    const src = s.addrs.find((x) => x.scope === "global")!.local;
    const script = [
      "import socket, sys",
      "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)",
      "s.sendall(b'x' * 100000); s.shutdown(socket.SHUT_WR)",
      "n = 0",
      "while True:",
      "    d = s.recv(65536)",
      "    if not d: break",
      "    n += len(d)",
      "print(s.getsockname()[0], n)",
    ].join("\n");
    const out = await rig!.guest.run([PYTHON, "-c", script, HOST6, String(rig!.servers.ports.echo)]);
    expect(out.trim()).toBe(`${src} 100000`);
  });

  test("dhclient -6 -S gets the DNS servers and the search list by stateless DHCPv6", async () => {
    const dir = rig!.dir;
    const record = join(dir, "dhclient-record");
    const script = join(dir, "dhclient-script");
    writeFileSync(script, `#!/bin/sh\necho "$reason|$new_dhcp6_name_servers|$new_dhcp6_domain_search|$new_dhcp6_server_id" >> ${record}\n`);
    chmodSync(script, 0o755);
    writeFileSync(record, "");
    const p = rig!.guest.spawn(["dhclient", "-6", "-S", "-d", "-sf", script, "-lf", join(dir, "lease6"), "-pf", join(dir, "pid6"), "tun0"]);
    const end = Date.now() + 15_000;
    let lines: string[] = [];
    while (Date.now() < end) {
      lines = readFileSync(record, "utf8").split("\n").filter((l) => l.split("|")[1]);
      if (lines.length > 0) break;
      await Bun.sleep(100);
    }
    p.kill("SIGKILL");
    expect(lines.length).toBeGreaterThan(0);
    const [, servers, search, serverId] = lines[0]!.split("|");
    expect(servers).toBe(HOST6);
    expect(search).toBe("example.test. corp.example.");
    // DUID-LL of the gateway MAC, as dhclient prints it.
    expect(serverId).toBe("0:3:0:1:70:71:aa:4b:29:aa");
  });
});

describe("-ra with the DNS forwarder", () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await createRig(["-ra", "-enable-dns"]);
  });
  afterAll(() => destroyRig(rig));

  test("RDNSS names fd00::3, DNSSL the host's search list", async () => {
    await waitConfigured(rig!.guest);
    const f = parseRdisc6(await rig!.guest.run(["rdisc6", "-1", "-w", "2000", "tun0"]));
    expect(f.get("Recursive DNS server")).toEqual(["fd00::3"]);
    expect(f.get("DNS search list")).toEqual(["example.test corp.example"]);
  });
});

describe("attach mode without -ra", () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await createRig([]);
  });
  afterAll(() => destroyRig(rig));

  test("no router advertisement: the guest stays without a global address or default route", async () => {
    // The tap's link-local address is up (DAD done), so a router would have been heard.
    const end = Date.now() + 10_000;
    while (Date.now() < end && !(await guestState(rig!.guest)).addrs.some((x) => x.scope === "link" && !x.tentative)) await Bun.sleep(100);
    const r = await rig!.guest.exec(["rdisc6", "-1", "-r", "2", "-w", "1000", "tun0"]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 2, out: "Soliciting ff02::2 (ff02::2) on tun0...\nTimed out.\nTimed out.\nNo response.\n" });
    const s = await guestState(rig!.guest);
    expect(s.addrs.filter((x) => x.scope === "global")).toEqual([]);
    expect(s.defaults).toEqual([]);
  });
});
