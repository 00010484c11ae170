// slirp4netns mode: what a command line slirp4netns would run means in
// slirpnetstack's flags (stackFlags, outboundFlags), which options this
// mode refuses by name (unsupportedOption), and the guest network, MAC and
// outbound addresses its network options give (slirp4netnsNetwork).
import { describe, expect, test } from "bun:test";
import { parseCidr, parseMacAddress, parseSlirp4netnsArgs, slirp4netnsNetwork, unsupportedOption, type Slirp4netnsConfig, type Slirp4netnsNetwork } from "../../../src/slirp4netns/cli.ts";
import { outboundFlags, stackFlags } from "../../../src/slirp4netns/main.ts";
import { ipv4Text, parseIP, type IP } from "../../../src/wire/addr.ts";
import { DEFAULT_GUEST_NET_V4, guestNetV4FromText } from "../../../src/wire/guest-net.ts";

function config(args: string[]): Slirp4netnsConfig {
  const o = parseSlirp4netnsArgs(args, "slirp4netns");
  if (o.kind !== "run") throw new Error(`not a run: ${JSON.stringify(o)}`);
  return o.config;
}

describe("slirp4netns command line -> slirpnetstack flags", () => {
  test("RootlessKit's: a PID target is its /proc net namespace; the tap name; DNS on, no RAs without -6", () => {
    expect(stackFlags(config(["--mtu", "65520", "-r", "4", "-e", "3", "--configure", "--disable-host-loopback", "1234", "tap0"]))).toEqual([
      "-netns", "/proc/1234/ns/net", "-interface", "tap0", "-mtu", "65520",
      "-enable-routing", "-enable-host", "-dhcp", "-quiet", "-enable-dns",
      "-ready-fd", "4", "-exit-fd", "3",
    ]);
  });

  test("Podman's: a path target, -6 adds router advertisements, the API socket; the default MTU is 1500 and the tap tap0", () => {
    expect(stackFlags(config(["--api-socket", "/run/s.sock", "--enable-ipv6", "--netns-type=path", "/run/netns/x"]))).toEqual([
      "-netns", "/run/netns/x", "-interface", "tap0", "-mtu", "1500",
      "-enable-routing", "-enable-host", "-dhcp", "-quiet", "-enable-dns", "-ra",
      "-api-socket", "/run/s.sock",
    ]);
  });

  test("--disable-dns leaves the DNS forwarder off", () => {
    expect(stackFlags(config(["--disable-dns", "1"]))).not.toContain("-enable-dns");
  });

  test("--enable-seccomp is carried out: -enable-seccomp, not refused", () => {
    expect(unsupportedOption(config(["--enable-seccomp", "1"]))).toBeNull();
    expect(stackFlags(config(["--enable-seccomp", "1"]))).toContain("-enable-seccomp");
    expect(stackFlags(config(["1"]))).not.toContain("-enable-seccomp");
  });

  test("--enable-sandbox and its old name --create-sandbox are carried out: -enable-sandbox, not refused", () => {
    for (const name of ["--enable-sandbox", "--create-sandbox"]) {
      expect(unsupportedOption(config([name, "1"]))).toBeNull();
      expect(stackFlags(config([name, "1"]))).toContain("-enable-sandbox");
    }
    expect(stackFlags(config(["1"]))).not.toContain("-enable-sandbox");
  });
});

describe("options this mode refuses by name", () => {
  test("no refused option: null, whatever the network options say", () => {
    expect(unsupportedOption(config(["1"]))).toBeNull();
    expect(unsupportedOption(config(["--cidr=10.0.3.0/24", "--outbound-addr=eth0", "--outbound-addr6=eth0", "-c", "--macaddress=02:00:00:00:00:01", "1"]))).toBeNull();
  });
});

/** Interfaces for the outbound lookups: eth0 with both families, v4only with IPv4 alone. */
function lookup(name: string, family: 4 | 6): IP | null {
  if (name === "eth0") return parseIP(family === 4 ? "198.51.100.7" : "2001:db8::7");
  if (name === "v4only" && family === 4) return parseIP("203.0.113.9");
  return null;
}

function network(args: string[]): Slirp4netnsNetwork | string {
  return slirp4netnsNetwork(config(args), lookup);
}

describe("--cidr, --outbound-addr(6), --macaddress: the addresses, or slirp4netns's message", () => {
  test("the default: 10.0.2.0/24, no MAC, no outbound address", () => {
    expect(network(["1"])).toEqual({ net: DEFAULT_GUEST_NET_V4, mac: null, outboundV4: null, outboundV6: null });
  });

  test("--cidr: the plan of that network", () => {
    const n = network(["--cidr=10.0.3.0/24", "1"]);
    if (typeof n === "string") throw new Error(n);
    expect([ipv4Text(n.net.gateway), ipv4Text(n.net.dns), ipv4Text(n.net.guest), n.net.prefix]).toEqual(["10.0.3.2", "10.0.3.3", "10.0.3.100", 24]);
  });

  test("--cidr refused as slirp4netns refuses it", () => {
    expect(parseCidr("bad")).toBe("invalid CIDR: bad\n");
    expect(parseCidr("1.2.3.4/123")).toBe("invalid CIDR: 1.2.3.4/123\n");
    expect(parseCidr("1.2.3/24")).toBe("invalid CIDR: 1.2.3/24\n");
    expect(parseCidr("300.0.2.0/24")).toBe("invalid network address: 300.0.2.0\n");
    expect(parseCidr("10.0.2.0/0")).toBe("prefix length needs to be 1-25\n");
    expect(parseCidr("10.0.2.0/26")).toBe("prefix length needs to be 1-25\n");
    expect(parseCidr("10.0.2.99/24")).toBe("CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24\n");
    expect(parseCidr("10.0.2.128/25")).toEqual(guestNetV4FromText("10.0.2.128/25")!);
  });

  test("--macaddress: six parts as scanf's %x reads each; fewer leave zeros", () => {
    expect(parseMacAddress("02:00:00:00:00:01")).toEqual(new Uint8Array([2, 0, 0, 0, 0, 1]));
    expect(parseMacAddress("2:a:B:0xc: +d:0e")).toEqual(new Uint8Array([2, 10, 11, 12, 13, 14]));
    expect(parseMacAddress("2:ffzz:3")).toEqual(new Uint8Array([2, 255, 3, 0, 0, 0]));
    expect(parseMacAddress("1:2:3")).toEqual(new Uint8Array([1, 2, 3, 0, 0, 0]));
    const reason = "macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by a ':').";
    expect(parseMacAddress("zz")).toBe(`"zz" is an invalid MAC address.\n${reason}`);
    expect(parseMacAddress("1:2::4:5:6")).toBe(`"1:2::4:5:6" is an invalid MAC address.\n${reason}`);
    expect(parseMacAddress("1:2:100:4:5:6")).toBe(`"1:2:100:4:5:6" is an invalid MAC address.\n${reason}`);
    expect(parseMacAddress("1:-1:3:4:5:6")).toBe(`"1:-1:3:4:5:6" is an invalid MAC address.\n${reason}`);
    expect(parseMacAddress("1:2:3:4:5:6:7")).toBe(`"1:2:3:4:5:6:7" is an invalid MAC address.  Is it too long?\n${reason}`);
    expect(network(["-c", "--macaddress=02:00:00:00:00:01", "1"])).toMatchObject({ mac: new Uint8Array([2, 0, 0, 0, 0, 1]) });
  });

  test("--outbound-addr: an IPv4 literal, else an interface's IPv4 address", () => {
    expect(network(["--outbound-addr=192.0.2.7", "1"])).toMatchObject({ outboundV4: parseIP("192.0.2.7"), outboundV6: null });
    expect(network(["--outbound-addr=eth0", "1"])).toMatchObject({ outboundV4: parseIP("198.51.100.7") });
    expect(network(["--outbound-addr=::1", "1"])).toBe("outbound-addr has to be valid ipv4 address or interface name.");
    expect(network(["--outbound-addr=nosuch0", "1"])).toBe("outbound-addr has to be valid ipv4 address or interface name.");
  });

  test("--outbound-addr6: an IPv6 literal, else its own interface's IPv6 address", () => {
    expect(network(["--outbound-addr6=2001:db8::7", "1"])).toMatchObject({ outboundV4: null, outboundV6: parseIP("2001:db8::7") });
    expect(network(["--outbound-addr6=eth0", "1"])).toMatchObject({ outboundV6: parseIP("2001:db8::7") });
    expect(network(["--outbound-addr6=v4only", "1"])).toBe("outbound-addr has to be valid ipv4 address or iterface name.");
    expect(network(["--outbound-addr6=127.0.0.1", "1"])).toBe("outbound-addr has to be valid ipv4 address or iterface name.");
  });

  test("checked in slirp4netns's order: --cidr, --outbound-addr, --outbound-addr6, --macaddress", () => {
    expect(network(["-c", "--macaddress=zz", "--outbound-addr6=x", "--outbound-addr=x", "--cidr=bad", "1"])).toBe("invalid CIDR: bad\n");
    expect(network(["-c", "--macaddress=zz", "--outbound-addr6=x", "--outbound-addr=x", "1"])).toStartWith("outbound-addr has to be valid ipv4 address or interface");
    expect(network(["-c", "--macaddress=zz", "--outbound-addr6=x", "1"])).toStartWith("outbound-addr has to be valid ipv4 address or iterface");
    expect(network(["-c", "--macaddress=zz", "1"])).toStartWith('"zz" is an invalid MAC address.');
  });

  test("--macaddress needs --configure; experimental options warn on stdout as met", () => {
    const o = parseSlirp4netnsArgs(["--macaddress=02:00:00:00:00:01", "1", "tap0"], "slirp4netns");
    expect(o).toMatchObject({ kind: "exit", code: 1, stderr: "--macaddr cannot be specified when --configure or -c is not specified\n" });
    const r = parseSlirp4netnsArgs(["--outbound-addr=eth0", "--outbound-addr6", "eth0", "1"], "slirp4netns");
    expect(r).toMatchObject({ kind: "run", stdout: "WARNING: Support for --outbound-addr is experimental\nWARNING: Support for --outbound-addr6 is experimental\n" });
  });

  test("the outbound addresses become -source-ipv4 and -source-ipv6", () => {
    const n = network(["--outbound-addr=eth0", "--outbound-addr6=2001:db8::7", "1"]);
    if (typeof n === "string") throw new Error(n);
    expect(outboundFlags(n)).toEqual(["-source-ipv4", "198.51.100.7", "-source-ipv6", "2001:db8::7"]);
    expect(outboundFlags({ ...n, outboundV4: null, outboundV6: null })).toEqual([]);
  });
});
