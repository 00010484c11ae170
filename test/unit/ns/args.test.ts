// Argument building for the rootless paths (src/ns/args.ts).
import { describe, expect, test } from "bun:test";
import {
  netnsPid,
  nsenterArgs,
  unshareArgs,
  attachHelperArgs,
  runHelperArgs,
  selfCommand,
  isCompiled,
  defaultCommand,
  findExecutable,
  HIDDEN_COMMAND,
} from "../../../src/ns/args.ts";
import { DEFAULT_GUEST_NET_V4, guestNetV4FromText } from "../../../src/wire/guest-net.ts";

describe("netnsPid", () => {
  test.each([
    ["/proc/1234/ns/net", 1234],
    ["/proc/1234/task/1240/ns/net", 1234],
    ["/proc/1/ns/net/", 1],
    ["/proc/self/ns/net", null],
    ["/proc/thread-self/ns/net", null],
    ["/proc/1234/ns/user", null],
    ["/proc/0123/ns/net", null],
    ["/run/netns/foo", null],
    ["proc/12/ns/net", null],
    ["", null],
  ])("%p -> %p", (path, pid) => {
    expect(netnsPid(path)).toBe(pid);
  });
});

describe("nsenterArgs", () => {
  test("by PID, entering its user namespace, keeping our credentials", () => {
    expect(nsenterArgs({ kind: "pid", pid: 42, enterUser: true })).toEqual(["--preserve-credentials", "-U", "-n", "-t", "42"]);
  });
  test("by PID in our own user namespace (nsenter -U would fail with EINVAL)", () => {
    expect(nsenterArgs({ kind: "pid", pid: 42, enterUser: false })).toEqual(["-n", "-t", "42"]);
  });
  test("by path with a user namespace", () => {
    expect(nsenterArgs({ kind: "path", netns: "/run/netns/a", userns: "/proc/self/fd/4" })).toEqual([
      "--preserve-credentials",
      "--user=/proc/self/fd/4",
      "--net=/run/netns/a",
    ]);
  });
  test("by path alone", () => {
    expect(nsenterArgs({ kind: "path", netns: "/run/netns/a", userns: null })).toEqual(["--net=/run/netns/a"]);
  });
});

test("unshare flags: user (root-mapped), net and mount namespaces, no fork", () => {
  expect(unshareArgs()).toEqual(["--user", "--map-root-user", "--net", "--mount"]);
});

describe("helper command lines", () => {
  test("attach", () => {
    expect(attachHelperArgs({ ifname: "tun0", offloads: 103 })).toEqual([HIDDEN_COMMAND, "attach", "--ifname", "tun0", "--offloads", "103", "--sock-fd", "3"]);
  });
  test("attach creating the tap: the MTU, the guest network, and with --configure the MAC", () => {
    const net = guestNetV4FromText("10.0.3.0/24")!;
    expect(attachHelperArgs({ ifname: "tap0", offloads: 0, create: { mtu: 1500, configure: true, net, mac: new Uint8Array([2, 0x11, 0x22, 0x33, 0x44, 0x55]) } })).toEqual([
      HIDDEN_COMMAND, "attach", "--ifname", "tap0", "--offloads", "0", "--sock-fd", "3",
      "--create-mtu", "1500", "--create-net", "10.0.3.0/24", "--configure", "--create-mac", "02:11:22:33:44:55",
    ]);
    expect(attachHelperArgs({ ifname: "tap0", offloads: 0, create: { mtu: 65520, configure: false, net: DEFAULT_GUEST_NET_V4, mac: null } }).slice(8)).toEqual(["--create-mtu", "65520", "--create-net", "10.0.2.0/24"]);
  });
  test("run keeps the command after --, untouched", () => {
    const a = runHelperArgs({ ifname: "tun0", mtu: 65520, offloads: 0, resolvConf: "/tmp/r", command: ["ls", "-la", "--", "--x"], parentDeathSignal: 15 });
    expect(a).toEqual([
      HIDDEN_COMMAND, "run", "--ifname", "tun0", "--mtu", "65520", "--offloads", "0", "--sock-fd", "3",
      "--stderr-fd", "4", "--pdeathsig", "15", "--resolv-conf", "/tmp/r", "--", "ls", "-la", "--", "--x",
    ]);
  });
  test("run without resolv.conf or command", () => {
    const a = runHelperArgs({ ifname: "tun0", mtu: 1500, offloads: 0, resolvConf: null, command: [] });
    expect(a).not.toContain("--resolv-conf");
    expect(a[a.length - 1]).toBe("--");
  });
});

describe("selfCommand", () => {
  test("compiled: the binary itself", () => {
    expect(selfCommand("/usr/bin/slirpnetstack", true)).toEqual(["/usr/bin/slirpnetstack"]);
  });
  test("from source: bun plus the helper entry point", () => {
    const c = selfCommand("/x/bun", false);
    expect(c[0]).toBe("/x/bun");
    expect(c[1]).toEndWith("/src/ns/helper-main.ts");
    expect(c).toHaveLength(2);
  });
  test("compiled detection", () => {
    expect(isCompiled("/$bunfs/root/slirpnetstack")).toBe(true);
    expect(isCompiled("/work/main/src/ns/args.ts")).toBe(false);
    expect(isCompiled()).toBe(false);
  });
});

describe("defaultCommand", () => {
  test("given command wins", () => expect(defaultCommand(["ls"], { SHELL: "/bin/zsh" })).toEqual(["ls"]));
  test("$SHELL", () => expect(defaultCommand([], { SHELL: "/bin/zsh" })).toEqual(["/bin/zsh"]));
  test("/bin/sh without $SHELL", () => {
    expect(defaultCommand([], {})).toEqual(["/bin/sh"]);
    expect(defaultCommand([], { SHELL: "" })).toEqual(["/bin/sh"]);
  });
});

describe("findExecutable (execvp rules)", () => {
  const fs: Record<string, "exec" | "noexec"> = { "/a/x": "noexec", "/b/x": "exec", "/a/y": "noexec", "./rel": "exec", "bin/z": "exec" };
  const probe = (p: string) => fs[p] ?? "missing";
  test("first executable in PATH", () => expect(findExecutable("x", "/a:/b", probe)).toEqual({ path: "/b/x" }));
  test("found but not executable: EACCES (126)", () => expect(findExecutable("y", "/a:/b", probe)).toEqual({ errno: 13 }));
  test("not found: ENOENT (127)", () => expect(findExecutable("nope", "/a:/b", probe)).toEqual({ errno: 2 }));
  test("a name with a slash is not searched", () => {
    expect(findExecutable("bin/z", "/a", probe)).toEqual({ path: "bin/z" });
    expect(findExecutable("/a/x", "/b", probe)).toEqual({ errno: 13 });
    expect(findExecutable("/b/none", "/b", probe)).toEqual({ errno: 2 });
  });
  test("empty PATH entry is the current directory", () => expect(findExecutable("rel", ":/a", probe)).toEqual({ path: "./rel" }));
  test("empty name", () => expect(findExecutable("", "/b", probe)).toEqual({ errno: 2 }));
});
