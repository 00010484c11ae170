// The -enable-seccomp filter as the kernel would run it: the assembled
// program, run by a classic BPF interpreter (test/support/cbpf.ts) on
// synthetic seccomp_data records, for both architectures.
import { describe, expect, test } from "bun:test";
import { AUDIT_ARCH, DENIED, DENY, PRCTL_ALLOWED, SECCOMP_RET_ALLOW, X32_SYSCALL_BIT, buildFilter, deniedOn, seccompArch, type SeccompArch } from "../../../src/sandbox/seccomp.ts";
import { decode, run, seccompData, validate } from "../../support/cbpf.ts";

/** slirp4netns 1.2's deny list (seccompfilter_rules.h), by name. */
const SLIRP4NETNS_1_2 = [
  "execve", "lookup_dcookie", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev",
  "delete_module", "finit_module", "init_module", "chroot", "fsconfig", "fsmount", "fsopen", "fspick",
  "mount", "move_mount", "open_tree", "pivot_root", "umount", "umount2", "open_by_handle_at",
  "execveat", "pidfd_open", "pidfd_send_signal", "prctl", "setns", "unshare",
  "kexec_file_load", "kexec_load", "reboot", "name_to_handle_at",
];

/** Syscalls the running stack makes (sockets, epoll, signals, threads, memory, files, exit), by number per arch. */
const USED: Record<SeccompArch, Record<string, number>> = {
  x64: {
    read: 0, write: 1, close: 3, mmap: 9, munmap: 11, rt_sigaction: 13, rt_sigprocmask: 14, rt_sigreturn: 15, ioctl: 16,
    writev: 20, madvise: 28, socket: 41, connect: 42, sendto: 44, recvfrom: 45, sendmsg: 46, recvmsg: 47, shutdown: 48,
    bind: 49, listen: 50, getsockname: 51, setsockopt: 54, getsockopt: 55, clone: 56, kill: 62, fcntl: 72,
    getpid: 39, gettid: 186, futex: 202, epoll_wait: 232, epoll_ctl: 233, tgkill: 234, openat: 257, accept4: 288,
    eventfd2: 290, epoll_create1: 291, sched_getaffinity: 204, clock_gettime: 228, exit: 60, exit_group: 231,
    rt_sigtimedwait: 128, unlink: 87, getrandom: 318, seccomp: 317, clone3: 435, rseq: 334,
  },
  arm64: {
    read: 63, write: 64, close: 57, mmap: 222, munmap: 215, rt_sigaction: 134, rt_sigprocmask: 135, rt_sigreturn: 139,
    ioctl: 29, writev: 66, madvise: 233, socket: 198, connect: 203, sendto: 206, recvfrom: 207, sendmsg: 211,
    recvmsg: 212, shutdown: 210, bind: 200, listen: 201, getsockname: 204, setsockopt: 208, getsockopt: 209,
    clone: 220, kill: 129, fcntl: 25, getpid: 172, gettid: 178, futex: 98, epoll_pwait: 22, epoll_ctl: 21,
    tgkill: 131, openat: 56, accept4: 242, eventfd2: 19, epoll_create1: 20, sched_getaffinity: 123,
    clock_gettime: 113, exit: 93, exit_group: 94, rt_sigtimedwait: 137, unlinkat: 35, getrandom: 278,
    seccomp: 277, clone3: 435, rseq: 293,
  },
};

const ARCHES: SeccompArch[] = ["x64", "arm64"];
// linux/audit.h: AUDIT_ARCH_I386 (int 0x80 on x86-64) and AUDIT_ARCH_ARM (compat on arm64).
const AUDIT_ARCH_I386 = 0x40000003;
const AUDIT_ARCH_ARM = 0x40000028;

describe.each(ARCHES)("seccomp filter on %s", (arch) => {
  const prog = decode(buildFilter(arch));
  const verdict = (nr: number, auditArch = AUDIT_ARCH[arch]) => run(prog, seccompData({ nr, arch: auditArch, args: [1n, 2n, 3n, 4n, 5n, 6n] }));

  test("the kernel would take it: length, jumps, loads, a return at the end", () => {
    expect(() => validate(prog)).not.toThrow();
  });

  test("denies slirp4netns 1.2's list wherever the architecture has the syscall", () => {
    const denied = new Set(deniedOn(arch).map((s) => s.name));
    for (const name of SLIRP4NETNS_1_2) {
      const row = DENIED.find((s) => s.name === name);
      expect(row, name).toBeDefined();
      if (row![arch] !== null) expect(denied.has(name), name).toBe(true);
    }
    // umount (the one-argument form) exists on neither; everything else does on both.
    expect(SLIRP4NETNS_1_2.filter((n) => !denied.has(n))).toEqual(["umount"]);
  });

  test("each denied syscall gets ERRNO(EPERM), whatever its arguments", () => {
    expect(DENY).toBe(0x00050001);
    for (const { name, nr } of deniedOn(arch)) expect([name, verdict(nr)]).toEqual([name, DENY]);
  });

  test("prctl is denied but for naming a thread (PR_SET_NAME, PR_GET_NAME), checked on the option's 32 bits", () => {
    const prctl = DENIED.find((s) => s.name === "prctl")![arch]!;
    const call = (option: bigint) => run(prog, seccompData({ nr: prctl, arch: AUDIT_ARCH[arch], args: [option, 0n, 0n, 0n, 0n, 0n] }));
    expect(call(BigInt(PRCTL_ALLOWED.PR_SET_NAME))).toBe(SECCOMP_RET_ALLOW);
    expect(call(BigInt(PRCTL_ALLOWED.PR_GET_NAME))).toBe(SECCOMP_RET_ALLOW);
    // The kernel reads the option as an int: high bits do not change it.
    expect(call((1n << 32n) | BigInt(PRCTL_ALLOWED.PR_SET_NAME))).toBe(SECCOMP_RET_ALLOW);
    // PR_SET_DUMPABLE 4, PR_SET_SECCOMP 22, PR_SET_NO_NEW_PRIVS 38, PR_CAP_AMBIENT 47, PR_SET_MM 35, PR_SET_PDEATHSIG 1
    for (const option of [0n, 1n, 4n, 14n, 17n, 22n, 35n, 38n, 47n]) expect([option, call(option)]).toEqual([option, DENY]);
  });

  test("every other number up to 1023 is allowed: exactly the table is denied", () => {
    const denied = new Set(deniedOn(arch).map((s) => s.nr));
    for (let nr = 0; nr < 1024; nr++) expect([nr, verdict(nr)]).toEqual([nr, denied.has(nr) ? DENY : SECCOMP_RET_ALLOW]);
  });

  test("the syscalls the running stack makes are allowed", () => {
    for (const [name, nr] of Object.entries(USED[arch])) {
      expect(DENIED.some((s) => s.name === name)).toBe(false);
      expect([name, verdict(nr)]).toEqual([name, SECCOMP_RET_ALLOW]);
    }
  });

  test("another architecture's syscalls are all denied, even ones allowed natively", () => {
    const read = USED[arch].read!;
    for (const other of [AUDIT_ARCH_I386, AUDIT_ARCH_ARM, AUDIT_ARCH[arch === "x64" ? "arm64" : "x64"], 0]) {
      expect(verdict(read, other)).toBe(DENY);
      expect(verdict(USED[arch].futex!, other)).toBe(DENY);
    }
  });

  test("table: names unique, numbers unique on the architecture", () => {
    expect(new Set(DENIED.map((s) => s.name)).size).toBe(DENIED.length);
    const nrs = deniedOn(arch).map((s) => s.nr);
    expect(new Set(nrs).size).toBe(nrs.length);
  });
});

describe("x86-64 specifics", () => {
  const prog = decode(buildFilter("x64"));
  test("x32 ABI syscalls (nr with bit 0x40000000) are denied, even read and futex", () => {
    for (const nr of [0, 1, 202, 0x200 /* x32's own numbering starts at 512 */]) {
      expect(run(prog, seccompData({ nr: X32_SYSCALL_BIT | nr, arch: AUDIT_ARCH.x64 }))).toBe(DENY);
    }
  });
  test("iopl and ioperm exist only there", () => {
    expect(deniedOn("x64").some((s) => s.name === "iopl")).toBe(true);
    expect(deniedOn("arm64").some((s) => s.name === "iopl")).toBe(false);
  });
});

describe("architecture", () => {
  test("x64 and arm64 have tables; anything else is refused by name", () => {
    expect(seccompArch("x64")).toBe("x64");
    expect(seccompArch("arm64")).toBe("arm64");
    expect(() => seccompArch("ia32")).toThrow("seccomp: no syscall table for architecture ia32 (only x86-64 and arm64)");
    expect(() => seccompArch("riscv64")).toThrow("riscv64");
  });
  test("AUDIT_ARCH values: the ELF machine, 64-bit, little-endian (linux/audit.h)", () => {
    expect(AUDIT_ARCH.x64).toBe((62 | 0x80000000 | 0x40000000) >>> 0);
    expect(AUDIT_ARCH.arm64).toBe((183 | 0x80000000 | 0x40000000) >>> 0);
  });
});
