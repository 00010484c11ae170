// slirp4netns mode's network options on a real kernel:
// - --cidr=10.0.3.0/24 -c --macaddress: the tap gets 10.0.3.100/24 via
//   10.0.3.2 and that MAC; DHCP leases 10.0.3.100 from 10.0.3.2; the DNS
//   forwarder answers at 10.0.3.3; 10.0.3.2:PORT is the host's loopback;
//   the API's add_hostfwd without guest_addr reaches 10.0.3.100;
// - --outbound-addr/--outbound-addr6, as addresses and as an interface
//   name: a host server that prints its peer's address sees that address
//   for the guest's TCP connections and UDP datagrams, both families.
// The stack runs in a HostNs whose lo carries the servers' addresses
// (192.0.2.1, 2001:db8::1) and the outbound ones (192.0.2.7, 2001:db8::7),
// and whose veth out0 carries 192.0.2.8 and 2001:db8::8; in a mount
// namespace of its own, /etc/resolv.conf names a DNS responder on the
// HostNs's 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "../../support/stack.ts";
import { HostNs } from "../../support/netns.ts";
import { BareNs, closeExit, lineClient, lineServer, startSlirp4netns, untilOutput, waitForSlaac, waitReady, type Running } from "./s4n-rig.ts";
import { apiRequest } from "../../support/api-client.ts";

const SERVER4 = "192.0.2.1";
const SERVER6 = "2001:db8::1";
/** TCP and UDP: the peer's address, one line. */
const PEER_PORT = 9000;
const LOOPBACK_PORT = 8001;
const FWD_PORT = 18081;
const MAC = "02:11:22:33:44:55";

const dir = mkdtempSync(join(tmpdir(), "slirp4netns-netopts-"));
const S4N = join(dir, "slirp4netns");
symlinkSync(BINARY, S4N);
const RESOLV = join(dir, "resolv.conf");
writeFileSync(RESOLV, "nameserver 127.0.0.1\n");

/**
 * A TCP server on [::]:PEER_PORT (IPv4 too) and UDP servers on
 * SERVER4:PEER_PORT and [SERVER6]:PEER_PORT (bound, so that replies come
 * from the address the guest sent to) that answer each client with its
 * address (IPv4 as a dotted quad).
 */
const PEER_SERVER = [
  "python3",
  "-c",
  [
    "import socket,threading",
    "def peer(a): return (a[0].removeprefix('::ffff:')+'\\n').encode()",
    "def udp(family,addr):",
    ` s=socket.socket(family,socket.SOCK_DGRAM);s.bind((addr,${PEER_PORT}))`,
    " while True:",
    "  d,a=s.recvfrom(100);s.sendto(peer(a),a)",
    `threading.Thread(target=udp,args=(socket.AF_INET,'${SERVER4}'),daemon=True).start()`,
    `threading.Thread(target=udp,args=(socket.AF_INET6,'${SERVER6}'),daemon=True).start()`,
    "s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)",
    `s.bind(('::',${PEER_PORT}));s.listen()`,
    "while True:",
    " c,a=s.accept();c.sendall(peer(a));c.close()",
  ].join("\n"),
];

/** One datagram to host:PEER_PORT; prints the reply (nothing if none comes within a second). */
function udpClient(host: string): string[] {
  const family = host.includes(":") ? "socket.AF_INET6" : "socket.AF_INET";
  return ["python3", "-c", `import socket\ns=socket.socket(${family},socket.SOCK_DGRAM);s.settimeout(1)\ns.sendto(b'?',('${host}',${PEER_PORT}));print(s.recv(100).decode(),end='')`];
}

/** A DNS server on 127.0.0.1:53 that answers every (single-question) A query with 198.51.100.1. */
const DNS_RESPONDER = [
  "python3",
  "-c",
  [
    "import socket",
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)",
    "s.bind(('127.0.0.1',53))",
    "while True:",
    " q,a=s.recvfrom(512)",
    " i=12",
    " while q[i]: i+=1+q[i]",
    " s.sendto(q[:2]+b'\\x81\\x80'+q[4:6]+b'\\x00\\x01\\x00\\x00\\x00\\x00'+q[12:i+5]+b'\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x01\\x00\\x04'+bytes([198,51,100,1]),a)",
  ].join("\n"),
];

/** Asks `server` for netopts.test's A record; prints the address. */
function dnsQuery(server: string): string[] {
  const q = "b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07netopts\\x04test\\x00\\x00\\x01\\x00\\x01'";
  return ["python3", "-c", `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)\ns.sendto(${q},('${server}',53));r=s.recv(512);print('.'.join(str(b) for b in r[-4:]))`];
}

let host: HostNs;

beforeAll(async () => {
  host = await HostNs.create([`${SERVER4}/32`, "192.0.2.7/32", `${SERVER6}/128`, "2001:db8::7/128"]);
  // out0: an interface whose addresses --outbound-addr=out0 picks (no link-local address, so the IPv6 one is its only one).
  for (const cmd of [
    "ip link add out0 type veth peer name out1",
    "ip link set out0 addrgenmode none",
    "ip link set out1 addrgenmode none",
    "ip link set out0 up",
    "ip link set out1 up",
    "ip addr add 192.0.2.8/32 dev out0",
    "ip addr add 2001:db8::8/128 dev out0 nodad",
  ]) {
    await host.run(cmd.split(" "));
  }
  host.spawn(PEER_SERVER);
  host.spawn(DNS_RESPONDER);
  host.spawn(lineServer("127.0.0.1", LOOPBACK_PORT, "hello from the host loopback"));
  for (let i = 0; i < 200 && (await host.exec(lineClient(SERVER4, PEER_PORT))).stdout === ""; i++) await Bun.sleep(20);
}, 15_000);
afterAll(async () => {
  await host.destroy();
  rmSync(dir, { recursive: true, force: true });
});


/** Closing the exit fd ends it with status 0; returns what it printed on stdout. */
async function stop(r: Running): Promise<string> {
  closeExit(r);
  expect(await r.proc.exited).toBe(0);
  return new Response(r.proc.stdout).text();
}

/** The address the peer server saw for a guest TCP connection and a guest UDP datagram to `server`. */
async function peers(guest: BareNs, server: string): Promise<{ tcp: string; udp: string }> {
  const tcp = (await untilOutput((c) => guest.exec(c), lineClient(server, PEER_PORT))).stdout.trim();
  const udp = (await untilOutput((c) => guest.exec(c), udpClient(server))).stdout.trim();
  return { tcp, udp };
}

describe("slirp4netns mode: --cidr and --macaddress", () => {
  test("--cidr=10.0.3.0/24 -c --macaddress: the tap, DHCP, DNS at .3, host loopback at .2, add_hostfwd's default guest .100", async () => {
    const guest = await BareNs.create();
    const r = startSlirp4netns({
      host,
      dir,
      s4n: S4N,
      name: "cidr",
      args: (api) => ["--cidr=10.0.3.0/24", "-c", `--macaddress=${MAC}`, "--api-socket", api, "-e", "3", "-r", "4", "--netns-type=path", `/proc/${guest.pid}/ns/net`, "tap0"],
      enterUserns: guest.pid,
      resolvConf: RESOLV,
    });
    expect(await waitReady(r)).toBe("1");

    const [link] = JSON.parse((await guest.exec(["ip", "-j", "addr", "show", "dev", "tap0"])).stdout) as { address: string; flags: string[]; addr_info: { family: string; local: string; prefixlen: number }[] }[];
    expect(link!.address).toBe(MAC);
    expect(link!.flags).toContain("UP");
    expect(link!.addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["10.0.3.100/24"]);
    expect((await guest.exec(["ip", "route", "show", "default"])).stdout).toContain("default via 10.0.3.2 dev tap0");

    // Traffic with that MAC: the host server sees the guest's connection and datagram.
    expect(await peers(guest, SERVER4)).toEqual({ tcp: SERVER4, udp: SERVER4 });

    // DHCP: the guest address of the network, from its gateway.
    const dhcp = await guest.exec(["busybox", "udhcpc", "-i", "tap0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"]);
    expect(dhcp.code).toBe(0);
    expect(dhcp.stdout + dhcp.stderr).toContain("lease of 10.0.3.100 obtained from 10.0.3.2");

    // The DNS forwarder at the network's .3.
    expect((await untilOutput((c) => guest.exec(c), dnsQuery("10.0.3.3"))).stdout).toBe("198.51.100.1\n");

    // Host loopback (no --disable-host-loopback): the gateway's port is the host's 127.0.0.1's.
    expect(await untilOutput((c) => guest.exec(c), lineClient("10.0.3.2", LOOPBACK_PORT))).toEqual({ stdout: "hello from the host loopback\n", stderr: "" });

    // add_hostfwd without guest_addr: the network's guest address.
    expect(await apiRequest(r.api, { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: FWD_PORT, guest_port: 80 } })).toBe('{"return":{"id":1}}');
    const guestServer = Bun.spawn(guest.enter(lineServer("10.0.3.100", 80, "hello from the guest")), { stdout: "ignore", stderr: "inherit" });
    try {
      expect((await untilOutput((c) => host.exec(c), lineClient("127.0.0.1", FWD_PORT))).stdout).toBe("hello from the guest\n");
    } finally {
      guestServer.kill("SIGKILL");
    }

    expect(await stop(r)).toBe("");
    await guest.destroy();
  }, 60_000);
});

describe("slirp4netns mode: --outbound-addr and --outbound-addr6", () => {
  async function outbound(name: string, options: string[]): Promise<{ v4: { tcp: string; udp: string }; v6: { tcp: string; udp: string }; stdout: string }> {
    const guest = await BareNs.create();
    const r = startSlirp4netns({
      host,
      dir,
      s4n: S4N,
      name,
      args: () => [...options, "--enable-ipv6", "-c", "-e", "3", "-r", "4", String(guest.pid), "tap0"],
      enterUserns: null,
    });
    expect(await waitReady(r)).toBe("1");
    await waitForSlaac(guest);
    const v4 = await peers(guest, SERVER4);
    const v6 = await peers(guest, SERVER6);
    const stdout = await stop(r);
    await guest.destroy();
    return { v4, v6, stdout };
  }

  test("addresses: the host's server sees 192.0.2.7 and 2001:db8::7 for TCP and UDP; the experimental warnings on stdout", async () => {
    expect(await outbound("outbound-addr", ["--outbound-addr=192.0.2.7", "--outbound-addr6=2001:db8::7"])).toEqual({
      v4: { tcp: "192.0.2.7", udp: "192.0.2.7" },
      v6: { tcp: "2001:db8::7", udp: "2001:db8::7" },
      stdout: "WARNING: Support for --outbound-addr is experimental\nWARNING: Support for --outbound-addr6 is experimental\n",
    });
  }, 60_000);

  test("an interface name: out0's IPv4 and IPv6 addresses", async () => {
    const r = await outbound("outbound-if", ["--outbound-addr=out0", "--outbound-addr6=out0"]);
    expect([r.v4, r.v6]).toEqual([
      { tcp: "192.0.2.8", udp: "192.0.2.8" },
      { tcp: "2001:db8::8", udp: "2001:db8::8" },
    ]);
  }, 60_000);

  test("without them, the kernel picks the source as usual", async () => {
    const r = await outbound("outbound-none", []);
    expect([r.v4, r.v6]).toEqual([
      { tcp: SERVER4, udp: SERVER4 },
      { tcp: SERVER6, udp: SERVER6 },
    ]);
  }, 60_000);
});
