// slirp4netns mode's command line: the built binary started through a
// symlink named slirp4netns answers --help, --version and every refused
// command line as slirp4netns 1.2 does (fixtures/cli.json, recorded from
// the reference binary by record-fixtures.ts): same stdout, stderr and
// exit code, the program's path aside.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "../../support/stack.ts";
import { parseSlirp4netnsArgs } from "../../../src/slirp4netns/cli.ts";

interface Recorded {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

const dir = mkdtempSync(join(tmpdir(), "slirp4netns-cli-"));
const S4N = join(dir, "slirp4netns");
symlinkSync(BINARY, S4N);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Recorded {
  const r = Bun.spawnSync([S4N, ...args], { stdin: "ignore" });
  const clean = (b: Buffer) => b.toString().replaceAll(S4N, "$0");
  return { args, code: r.exitCode, stdout: clean(r.stdout), stderr: clean(r.stderr) };
}

const FIXTURES = JSON.parse(readFileSync(join(import.meta.dir, "fixtures", "cli.json"), "utf8")) as Recorded[];

describe("slirp4netns mode: the command line", () => {
  for (const want of FIXTURES) {
    test(`as slirp4netns 1.2: ${JSON.stringify(want.args)}`, () => {
      expect(run(want.args)).toEqual(want);
    });
  }

  test("--help names every option RootlessKit and Podman probe for", () => {
    const r = run(["--help"]);
    for (const name of ["--netns-type", "--enable-ipv6", "--cidr", "--disable-host-loopback", "--api-socket", "--enable-sandbox", "--enable-seccomp", "--userns-path", "--disable-dns", "--outbound-addr"]) {
      expect(r.stdout).toContain(name);
    }
  });

  test("-v and --version: slirp4netns's first line, then ours; exit 0", () => {
    for (const flag of ["-v", "--version"]) {
      const r = run([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^slirp4netns version 1\.2\.0\nslirpnetstack version \S+\nbuild time \S+\n$/);
    }
  });

  test("an option this mode does not carry out is refused by name, exit 1, nothing on stdout", () => {
    const cases: [string[], string][] = [
      [["--target-type=bess"], "$0: --target-type=bess is not supported\n"],
    ];
    for (const [options, stderr] of cases) {
      const r = run([...options, "--netns-type=path", "/nonexistent", "tap0"]);
      expect({ options, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ options, code: 1, stdout: "", stderr });
    }
  });

  test("the same binary under its own name is still slirpnetstack", () => {
    const r = Bun.spawnSync([BINARY, "-version"], { stdin: "ignore" });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toStartWith("slirpnetstack version ");
  });
});

describe("slirp4netns mode: what the command line means", () => {
  test("Podman's command line", () => {
    const r = parseSlirp4netnsArgs(["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6", "-c", "-e", "3", "-r", "4", "--netns-type=path", "/run/netns/x", "tap0"], "slirp4netns");
    expect(r).toEqual({
      kind: "run",
      stdout: "",
      config: {
        configure: true,
        exitFd: 3,
        readyFd: 4,
        mtu: 65520,
        enableIpv6: true,
        apiSocket: "",
        cidr: "10.0.2.0/24",
        disableHostLoopback: true,
        netnsType: "path",
        usernsPath: "",
        enableSandbox: true,
        enableSeccomp: true,
        outboundAddr: "",
        outboundAddr6: "",
        disableDns: false,
        macAddress: "",
        targetType: "netns",
        target: "/run/netns/x",
        tapName: "tap0",
      },
    });
  });

  test("RootlessKit's: short clusters, aliases, a PID target and the default tap name", () => {
    const r = parseSlirp4netnsArgs(["-c6", "-r4", "--api-socket", "/run/api.sock", "--no-host-loopback", "--create-sandbox", "--cidr=10.0.2.0/24", "--disable-dns", "--userns-path=/proc/7/ns/user", "--outbound-addr=eth0", "--macaddress=02:00:00:00:00:01", "1234"], "slirp4netns");
    if (r.kind !== "run") throw new Error(`refused: ${JSON.stringify(r)}`);
    expect(r.config).toMatchObject({ configure: true, enableIpv6: true, readyFd: 4, exitFd: -1, mtu: 1500, apiSocket: "/run/api.sock", disableHostLoopback: true, enableSandbox: true, disableDns: true, usernsPath: "/proc/7/ns/user", outboundAddr: "eth0", macAddress: "02:00:00:00:00:01", netnsType: "pid", target: "1234", tapName: "tap0" });
  });

  test("after --, an option-looking word is the target", () => {
    const r = parseSlirp4netnsArgs(["--netns-type=path", "--", "-weird"], "slirp4netns");
    expect(r.kind === "run" && r.config.target).toBe("-weird");
  });
});
