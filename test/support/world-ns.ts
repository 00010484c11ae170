// A "world" namespace behind a HostNs, for -enable-routing tests: an
// address that the host reaches only through its default route (so it is
// not covered by any host "local route": docs/compatibility.md, Host routes).
//
//   host netns  w0: 203.0.113.1/32, 2001:db8:1::1/128, default dev w0 (v4 and v6)
//   world netns w1: 198.51.100.1/32, 2001:db8:2::1/128, default dev w1
//
// Everything stays inside namespaces the test created: the veth pair joins
// the two, nothing else.
import { HostNs } from "./netns.ts";

export const WORLD4 = "198.51.100.1";
export const WORLD6 = "2001:db8:2::1";

async function sh(ns: HostNs, script: string): Promise<void> {
  const r = await ns.exec(["sh", "-ec", script]);
  if (r.code !== 0) throw new Error(`${script} exited ${r.code}: ${r.stderr}${r.stdout}`);
}

/** Creates the world namespace and wires `host` to it; destroy it like any HostNs. */
export async function createWorld(host: HostNs): Promise<HostNs> {
  const world = await HostNs.create();
  try {
    const noDad = "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0";
    await sh(world, noDad);
    await sh(
      host,
      [
        noDad,
        `ip link add w0 type veth peer name w1 netns ${world.pid}`,
        "ip addr add 203.0.113.1/32 dev w0",
        "ip addr add 2001:db8:1::1/128 dev w0 nodad",
        "ip link set w0 up",
        "ip route add default dev w0",
        "ip -6 route add default dev w0",
      ].join("\n"),
    );
    await sh(
      world,
      [
        `ip addr add ${WORLD4}/32 dev w1`,
        `ip addr add ${WORLD6}/128 dev w1 nodad`,
        "ip link set w1 up",
        "ip route add default dev w1",
        "ip -6 route add default dev w1",
      ].join("\n"),
    );
    return world;
  } catch (e) {
    await world.destroy();
    throw e;
  }
}
