// Records the reference slirp4netns's answers to command lines that fail
// (or exit) before it touches any namespace: stdout, stderr and exit code,
// the program's path replaced by "$0". Run: bun test/integration/slirp4netns/record-fixtures.ts
import { writeFileSync } from "node:fs";

const REFERENCE = process.env.SLIRP4NETNS ?? "/usr/bin/slirp4netns";

export const CASES: string[][] = [
  ["--help"],
  ["-h"],
  ["--enable-sandbox", "--help"],
  [],
  ["--bogus"],
  ["--bogus=3", "1"],
  ["--mtu=68", "1", "--bogus"],
  ["-x"],
  ["--mtu"],
  ["-e"],
  ["--mtu=abc", "1"],
  ["--mtu=70000", "1"],
  ["--mtu=-1", "1"],
  ["--mtu=67", "1"],
  ["--exit-fd=x", "1"],
  ["--ready-fd=x", "1"],
  ["-r", "-1", "1"],
  ["--cidr=bad", "1", "tap0"],
  ["--cidr=10.0.2.0/30", "1", "tap0"],
  ["--cidr=10.0.2.0/0", "1", "tap0"],
  ["--cidr=300.0.2.0/24", "1", "tap0"],
  ["--cidr=10.0.2.100/24", "1", "tap0"],
  ["--cidr=bad", "--outbound-addr=nosuch0", "1", "tap0"],
  ["--netns-type=foo", "1"],
  ["--netns-type=path"],
  ["--target-type=foo", "1"],
  ["--macaddress=zz", "-c", "1", "tap0"],
  ["--macaddress=02:00:00:00:00:01", "1", "tap0"],
  ["-c", "--macaddress=1:2:3:4:5:6:7", "1", "tap0"],
  ["-c", "--macaddress=1:2:100:4:5:6", "1", "tap0"],
  ["-c", "--macaddress=1:2::4:5:6", "1", "tap0"],
  ["--outbound-addr=nosuch0", "1", "tap0"],
  ["--outbound-addr=::1", "1", "tap0"],
  ["--outbound-addr6=nosuch0", "1", "tap0"],
  ["--outbound-addr6=127.0.0.1", "1", "tap0"],
  ["--outbound-addr=192.0.2.1", "--bogus", "1", "tap0"],
  ["--outbound-addr6=2001:db8::1", "--help"],
  ["abc"],
];

if (import.meta.main) {
  const out = CASES.map((args) => {
    const r = Bun.spawnSync([REFERENCE, ...args], { stdin: "ignore" });
    const clean = (b: Buffer) => b.toString().replaceAll(REFERENCE, "$0");
    return { args, code: r.exitCode, stdout: clean(r.stdout), stderr: clean(r.stderr) };
  });
  writeFileSync(`${import.meta.dir}/fixtures/cli.json`, JSON.stringify(out, null, 2) + "\n");
}
