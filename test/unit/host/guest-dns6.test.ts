// What RAs (RDNSS, DNSSL) and stateless DHCPv6 tell the guest about DNS:
// fd00::3 when the forwarder is on; otherwise the host's IPv6 resolvers
// the guest can reach (no loopback, link-local or IPv4 ones, none the
// routing policy refuses); the search domains in DNS wire form either way.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatIP, ipv6Text } from "../../../src/wire/addr.ts";
import { HostDns6, REFRESH_MS } from "../../../src/host/control/guest-dns6.ts";
import { ResolvConf } from "../../../src/host/control/resolv-conf.ts";
import { MAX_SEARCH_BYTES } from "../../../src/stack/services/guest-dns.ts";

const dir = mkdtempSync(join(tmpdir(), "guest-dns6-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function resolvConf(text: string): ResolvConf {
  const path = join(dir, `resolv-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(path, text);
  const t = (Date.now() - 60_000) / 1000;
  utimesSync(path, t, t);
  return new ResolvConf(path);
}

const TEXT = "nameserver ::1\nnameserver fe80::1%eth0\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 2001:db8::dead\nnameserver 2001:db8::54\nsearch corp.example lab.example\n";
const names = (d: readonly Uint8Array[]) => d.map((w) => Buffer.from(w).toString("hex"));
const CORP = "04636f7270076578616d706c6500";
const LAB = "036c6162076578616d706c6500";

test("forwarder on: fd00::3 only, and the host's search domains in wire form", () => {
  const info = new HostDns6(resolvConf(TEXT), true, () => true).get(0);
  expect(info.servers.map((s) => ipv6Text(s))).toEqual(["fd00::3"]);
  expect(names(info.domains)).toEqual([CORP, LAB]);
});

test("forwarder off: the reachable global IPv6 resolvers, in the file's order; the policy is asked about port 53", () => {
  const asked: string[] = [];
  const info = new HostDns6(resolvConf(TEXT), false, (ip, port) => {
    asked.push(`${formatIP(ip)}:${port}`);
    return formatIP(ip) !== "2001:db8::dead";
  }).get(0);
  expect(info.servers.map((s) => ipv6Text(s))).toEqual(["2001:db8::53", "2001:db8::54"]);
  expect(asked).toEqual(["2001:db8::53:53", "2001:db8::dead:53", "2001:db8::54:53"]);
});

test("nothing reachable, no search line: empty lists (no RDNSS, no option 23)", () => {
  const info = new HostDns6(resolvConf("nameserver ::1\nnameserver 10.0.0.1\n"), false, () => true).get(0);
  expect(info).toEqual({ servers: [], domains: [] });
});

test("names that are not DNS names are left out; the list stops at MAX_SEARCH_BYTES", () => {
  const long = Array.from({ length: 40 }, (_, i) => `d${i}.${"x".repeat(40)}.example`);
  const info = new HostDns6(resolvConf(`search ${"a".repeat(64)}.example corp.example ${long.join(" ")}\n`), false, () => true).get(0);
  expect(names(info.domains)[0]).toBe(CORP);
  const total = info.domains.reduce((n, d) => n + d.length, 0);
  expect(total).toBeLessThanOrEqual(MAX_SEARCH_BYTES);
  expect(total + info.domains[1]!.length).toBeGreaterThan(MAX_SEARCH_BYTES);
});

test("a flood of requests reads the host at most once per REFRESH_MS", () => {
  let asked = 0;
  const dns = new HostDns6(resolvConf(TEXT), false, () => {
    asked++;
    return true;
  });
  for (let t = 0; t < REFRESH_MS; t += 10) dns.get(t);
  expect(asked).toBe(3);
  dns.get(REFRESH_MS);
  expect(asked).toBe(6);
});
