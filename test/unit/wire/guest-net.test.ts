// The guest's IPv4 plan: every address derived from the network's CIDR
// with slirp4netns's offsets, and the networks that cannot hold it.
import { describe, expect, test } from "bun:test";
import { DEFAULT_GUEST_NET_V4, guestNetV4, guestNetV4FromText, guestNetV4Text, MAX_GUEST_PREFIX_V4 } from "../../../src/wire/guest-net.ts";
import { ipv4FromText, ipv4Text } from "../../../src/wire/addr.ts";

function texts(cidr: string) {
  const n = guestNetV4FromText(cidr);
  if (n === null) return null;
  return { network: ipv4Text(n.network), prefix: n.prefix, netmask: ipv4Text(n.netmask), broadcast: ipv4Text(n.broadcast), gateway: ipv4Text(n.gateway), dns: ipv4Text(n.dns), guest: ipv4Text(n.guest) };
}

describe("guest IPv4 plan", () => {
  test("the default: 10.0.2.0/24, gateway .2, DNS .3, guest .100", () => {
    expect(texts("10.0.2.0/24")).toEqual({ network: "10.0.2.0", prefix: 24, netmask: "255.255.255.0", broadcast: "10.0.2.255", gateway: "10.0.2.2", dns: "10.0.2.3", guest: "10.0.2.100" });
    expect(DEFAULT_GUEST_NET_V4).toEqual(guestNetV4FromText("10.0.2.0/24")!);
  });

  test("another /24, a wide network and the narrowest one", () => {
    expect(texts("10.0.3.0/24")).toMatchObject({ gateway: "10.0.3.2", dns: "10.0.3.3", guest: "10.0.3.100", broadcast: "10.0.3.255" });
    expect(texts("172.16.0.0/12")).toEqual({ network: "172.16.0.0", prefix: 12, netmask: "255.240.0.0", broadcast: "172.31.255.255", gateway: "172.16.0.2", dns: "172.16.0.3", guest: "172.16.0.100" });
    expect(texts("192.168.7.128/25")).toEqual({ network: "192.168.7.128", prefix: 25, netmask: "255.255.255.128", broadcast: "192.168.7.255", gateway: "192.168.7.130", dns: "192.168.7.131", guest: "192.168.7.228" });
    expect(texts("128.0.0.0/1")).toMatchObject({ netmask: "128.0.0.0", broadcast: "255.255.255.255", guest: "128.0.0.100" });
  });

  test("the guest address and the 16 DHCP leases after it stay inside the network up to the longest prefix", () => {
    const n = guestNetV4(ipv4FromText("10.0.2.128")!, MAX_GUEST_PREFIX_V4)!;
    expect(n.guest + 15 < n.broadcast).toBe(true);
    expect(guestNetV4(ipv4FromText("10.0.2.128")!, MAX_GUEST_PREFIX_V4 + 1)).toBeNull();
  });

  test("refused: host bits set, a prefix out of 1..25, text that is no NETWORK/PREFIX", () => {
    expect(guestNetV4(ipv4FromText("10.0.2.100")!, 24)).toBeNull();
    expect(guestNetV4(0, 0)).toBeNull();
    for (const bad of ["10.0.2.0/26", "10.0.2.0/0", "10.0.2.0", "10.0.2/24", "10.0.2.0/24x", "fd00::/64", "10.0.2.0/ 24"]) expect(guestNetV4FromText(bad)).toBeNull();
  });

  test("text round trip", () => {
    for (const cidr of ["10.0.2.0/24", "10.0.3.0/24", "172.16.0.0/12", "192.168.7.128/25"]) expect(guestNetV4Text(guestNetV4FromText(cidr)!)).toBe(cidr);
  });
});
