// What DHCPv4 offers for DNS: the forwarder when it is on; otherwise the
// host's IPv4 resolvers the guest can reach (no loopback ones, none the
// routing policy refuses); the host's search domains either way.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatIP, ipv4Text } from "../../../src/wire/addr.ts";
import { Dhcp4HostDns } from "../../../src/host/control/dhcp4-info.ts";
import { ResolvConf } from "../../../src/host/control/resolv-conf.ts";
import { DEFAULT_GUEST_NET_V4 } from "../../../src/wire/guest-net.ts";

const dir = mkdtempSync(join(tmpdir(), "dhcp4-info-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function resolvConf(text: string): ResolvConf {
  const path = join(dir, `resolv-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(path, text);
  const t = (Date.now() - 60_000) / 1000;
  utimesSync(path, t, t);
  return new ResolvConf(path);
}

const TEXT = "nameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 198.51.100.1\nnameserver 127.0.0.1\nsearch corp.example lab.example\n";

test("forwarder on: 10.0.2.3 only, and the host's search domains", () => {
  const info = new Dhcp4HostDns(resolvConf(TEXT), DEFAULT_GUEST_NET_V4.dns, () => true);
  expect(info.dnsServers(0).map((a) => ipv4Text(a))).toEqual(["10.0.2.3"]);
  expect(info.searchDomains(0)).toEqual(["corp.example", "lab.example"]);
});

test("forwarder off: the reachable non-loopback IPv4 resolvers, in the file's order", () => {
  const asked: string[] = [];
  const info = new Dhcp4HostDns(resolvConf(TEXT), null, (ip, port) => {
    asked.push(`${formatIP(ip)}:${port}`);
    return formatIP(ip) !== "198.51.100.1";
  });
  expect(info.dnsServers(0).map((a) => ipv4Text(a))).toEqual(["192.0.2.53"]);
  expect(asked).toEqual(["192.0.2.53:53", "198.51.100.1:53"]);
  expect(info.searchDomains(0)).toEqual(["corp.example", "lab.example"]);
});

test("forwarder off, only a loopback stub (systemd-resolved): no DNS server at all", () => {
  const info = new Dhcp4HostDns(resolvConf("nameserver 127.0.0.53\n"), null, () => true);
  expect(info.dnsServers(0)).toEqual([]);
  expect(info.searchDomains(0)).toEqual([]);
});
