// Error classification and the stderr lines (src/ns/errors.ts).
import { describe, expect, test } from "bun:test";
import { SysError } from "../../../ffi/libc.ts";
import {
  DeviceError,
  classifyHelperReport,
  classifyToolFailure,
  errnoFromText,
  usernsDisabledHint,
  type EnvFacts,
} from "../../../src/ns/errors.ts";

const facts: EnvFacts = { uid: 1000, maxUserNamespaces: 96365, unprivilegedUsernsClone: null, apparmorRestrictUserns: null, tunMode: "mode 0600, owner uid 0 gid 0" };
const where = { netns: "/proc/77/ns/net", ifname: "tun0" };

describe("upstream's lines without an environmental cause", () => {
  test("netns", () => {
    const e = new DeviceError({ ...where, step: "netns", sys: new SysError("setns", 1, where.netns) });
    expect(e.exitCode).toBe(253);
    expect(e.lines()).toEqual([
      `[!] Can't join netns /proc/77/ns/net: joining net namespace "/proc/77/ns/net": operation not permitted`,
      `Failed to open TUN/TAP: joining net namespace "/proc/77/ns/net": operation not permitted`,
    ]);
  });
  test("mtu", () => {
    const e = new DeviceError({ ...where, step: "mtu", sys: new SysError("ioctl", 19, "SIOCGIFMTU") });
    expect(e.lines()).toEqual(["[!] GetMTU(tun0) = no such device", "Failed to open TUN/TAP: no such device"]);
  });
  test("open", () => {
    const e = new DeviceError({ ...where, step: "open", sys: new SysError("ioctl", 16, "TUNSETIFF") });
    expect(e.lines()).toEqual(["[!] open(tun0) = device or resource busy", "Failed to open TUN/TAP: device or resource busy"]);
  });
  test("setup names the failed request", () => {
    const e = new DeviceError({ ...where, netns: "", step: "setup", sys: new SysError("netlink", 17, "RTM_NEWADDR 10.0.2.100/24") });
    expect(e.lines()[0]).toBe("[!] Configuring tun0 in the new namespace failed: netlink RTM_NEWADDR 10.0.2.100/24: EEXIST: file exists");
    expect(e.lines()[1]).toBe("Failed to open TUN/TAP: file exists");
  });
});

describe("reports from the helper", () => {
  test("/dev/net/tun EACCES names the device, its mode and the fix", () => {
    const e = classifyHelperReport({ step: "open", call: "open", errno: 13, detail: "/dev/net/tun" }, facts, where);
    expect(e.reason).toBe("tun-inaccessible");
    expect(e.lines()).toEqual([
      "[!] /dev/net/tun is not accessible to uid 1000 (mode 0600, owner uid 0 gid 0); rootless mode needs it world read-writable (chmod 0666 /dev/net/tun, the usual default), or run as root",
      "Failed to open TUN/TAP: permission denied",
    ]);
  });
  test("/dev/net/tun missing", () => {
    const e = classifyHelperReport({ step: "open", call: "open", errno: 2, detail: "/dev/net/tun" }, facts, where);
    expect(e.reason).toBe("tun-missing");
    expect(e.lines()[0]).toBe("[!] /dev/net/tun does not exist; load the tun module (modprobe tun)");
  });
  test("TUNSETIFF EPERM stays upstream's open line", () => {
    const e = classifyHelperReport({ step: "open", call: "ioctl", errno: 1, detail: "TUNSETIFF" }, facts, where);
    expect(e.reason).toBe(null);
    expect(e.lines()[0]).toBe("[!] open(tun0) = operation not permitted");
  });
  test("command not found: 127, one line", () => {
    const e = classifyHelperReport({ step: "exec", call: "execve", errno: 2, detail: "foo", command: "foo" }, facts, where);
    expect(e.exitCode).toBe(127);
    expect(e.lines()).toEqual(["[!] foo: command not found"]);
  });
  test("command not executable: 126", () => {
    const e = classifyHelperReport({ step: "exec", call: "execve", errno: 13, command: "./x" }, facts, where);
    expect(e.exitCode).toBe(126);
    expect(e.lines()).toEqual(["[!] ./x: permission denied"]);
  });
});

describe("nsenter / unshare stderr", () => {
  const pidWhere = { ...where, pid: 77 };
  test("PID gone", () => {
    const e = classifyToolFailure("nsenter", "nsenter: cannot open /proc/77/ns/user: No such file or directory\n", facts, pidWhere);
    expect(e.reason).toBe("pid-gone");
    expect(e.lines()[0]).toBe("[!] process 77 is gone: its network namespace /proc/77/ns/net no longer exists");
    expect(e.lines()[1]).toBe(`Failed to open TUN/TAP: joining net namespace "/proc/77/ns/net": no such file or directory`);
  });
  test("a missing netns path, and a missing user namespace path given with it", () => {
    const pathWhere = { ...where, netns: "/run/netns/x", pid: null };
    expect(classifyToolFailure("nsenter", "nsenter: cannot open /run/netns/x: No such file or directory\n", facts, pathWhere).lines()[0]).toBe("[!] network namespace /run/netns/x does not exist");
    const e = classifyToolFailure("nsenter", "nsenter: cannot open /run/user/9/userns: No such file or directory\n", facts, pathWhere);
    expect(e.reason).toBe("netns-missing");
    expect(e.lines()[0]).toBe("[!] /run/user/9/userns does not exist");
  });
  test("another user's process", () => {
    const e = classifyToolFailure("nsenter", "nsenter: cannot open /proc/77/ns/user: Permission denied\n", facts, pidWhere);
    expect(e.reason).toBe("netns-not-owned");
    expect(e.lines()[0]).toStartWith("[!] cannot open /proc/77/ns/user: it belongs to another user");
  });
  test("netns not owned by our user namespace", () => {
    const e = classifyToolFailure("nsenter", "nsenter: reassociate to namespace 'ns/net' failed: Operation not permitted", facts, pidWhere);
    expect(e.reason).toBe("netns-not-owned");
    expect(e.text).toBe(`joining net namespace "/proc/77/ns/net": operation not permitted`);
  });
  test("user namespace refused while user namespaces are off", () => {
    const off = { ...facts, maxUserNamespaces: 0 };
    const e = classifyToolFailure("nsenter", "nsenter: reassociate to namespace 'ns/user' failed: Operation not permitted", off, pidWhere);
    expect(e.reason).toBe("userns-disabled");
    expect(e.lines()[0]).toBe("[!] user namespaces are disabled (sysctl user.max_user_namespaces = 0); rootless mode needs them, or run as root");
  });
  test("unshare: disabled by sysctl", () => {
    const e = classifyToolFailure("unshare", "unshare: unshare failed: Operation not permitted", { ...facts, unprivilegedUsernsClone: 0 }, { ...where, pid: null });
    expect(e.reason).toBe("userns-disabled");
    expect(e.lines()[0]).toContain("kernel.unprivileged_userns_clone = 0");
  });
  test("unshare: AppArmor restriction", () => {
    const e = classifyToolFailure("unshare", "unshare: write failed /proc/self/uid_map: Operation not permitted", { ...facts, apparmorRestrictUserns: 1 }, { ...where, pid: null });
    expect(e.reason).toBe("userns-disabled");
    expect(e.lines()[0]).toContain("AppArmor");
  });
  test("unshare: limit reached", () => {
    const e = classifyToolFailure("unshare", "unshare: unshare failed: No space left on device", facts, { ...where, pid: null });
    expect(e.reason).toBe("userns-limit");
  });
  test("anything else is quoted", () => {
    const e = classifyToolFailure("unshare", "error: Module not found \"x\"\n", facts, { ...where, pid: null });
    expect(e.reason).toBe("helper-failed");
    expect(e.lines()[0]).toBe('[!] unshare failed: error: Module not found "x"');
  });
});

test("errnoFromText inverts libc's descriptions", () => {
  expect(errnoFromText("Operation not permitted")).toBe(1);
  expect(errnoFromText("No such file or directory")).toBe(2);
  expect(errnoFromText("permission denied")).toBe(13);
  expect(errnoFromText("Invalid argument ")).toBe(22);
  expect(errnoFromText("not an error text")).toBe(null);
});

test("usernsDisabledHint is null when nothing is off", () => {
  expect(usernsDisabledHint(facts)).toBe(null);
});
