// slirp4netns mode: what a command line slirp4netns would run means in
// slirpnetstack's flags (stackFlags), and which options this mode refuses
// by name (unsupportedOption).
import { describe, expect, test } from "bun:test";
import { parseSlirp4netnsArgs, unsupportedOption, type Slirp4netnsConfig } from "../../../src/slirp4netns/cli.ts";
import { stackFlags } from "../../../src/slirp4netns/main.ts";

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
  test("the default network however written, and no refused option: null", () => {
    expect(unsupportedOption(config(["1"]))).toBeNull();
    expect(unsupportedOption(config(["--cidr=10.0.2.0/24", "1"]))).toBeNull();
    expect(unsupportedOption(config(["--cidr=10.0.2.99/24", "1"]))).toBeNull();
  });

  test("another network, or a prefix of another length", () => {
    expect(unsupportedOption(config(["--cidr=10.0.3.0/24", "1"]))).toBe("--cidr=10.0.3.0/24 is not supported yet (only 10.0.2.0/24)");
    expect(unsupportedOption(config(["--cidr=10.0.0.0/16", "1"]))).toBe("--cidr=10.0.0.0/16 is not supported yet (only 10.0.2.0/24)");
  });
});
