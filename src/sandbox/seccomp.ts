// -enable-seccomp: a seccomp filter (seccomp(2), the kernel's
// Documentation/userspace-api/seccomp_filter.rst) that makes the syscalls a
// running network stack never needs fail with EPERM, so that a bug an
// attacker drives through guest frames cannot use them.
//
// Like slirp4netns's --enable-seccomp it is a deny list over ALLOW: the
// process is Bun (JavaScriptCore, its allocator, its thread pool), whose
// full set of syscalls is not ours to enumerate, and an allow list that
// misses one would break the stack at runtime. Denied are slirp4netns 1.2's
// list (running programs, debugging other processes, kernel modules,
// mounts, namespaces, prctl, kexec and reboot, file handles) and a few more
// that nothing here uses (keyrings, bpf, perf, userfaultfd, swap, clock and
// host name setting, process accounting, quotas, the kernel log, x86 port
// I/O); docs/hostile.md ("seccomp") says why each group goes.
//
// The program is classic BPF over struct seccomp_data (linux/seccomp.h):
//   load arch; not this process's AUDIT_ARCH_* -> deny
//   load nr;   x86-64 only: the x32 bit set -> deny
//   nr == each denied number -> deny
//   nr != prctl -> allow
//   load args[0]; PR_SET_NAME or PR_GET_NAME -> allow
//   deny
// prctl is denied but for naming a thread: JavaScriptCore names each
// helper thread it starts (the garbage collector's "HeapHelper") with
// PR_SET_NAME at any time, and the stack's own syscalls are never denied.
// A syscall of another ABI (int 0x80 on x86-64: AUDIT_ARCH_I386; x32) has
// other numbers, so the table below would not match it: such syscalls are
// all denied, and nothing of ours makes them.
// buildFilter is pure; installSeccomp puts the filter on the process
// through ffi/seccomp.ts.
import { setNoNewPrivs } from "../../ffi/caps.ts";
import { seccompSetModeFilter } from "../../ffi/seccomp.ts";

/** The architectures the table has numbers for (process.arch's names). */
export type SeccompArch = "x64" | "arm64";

/**
 * AUDIT_ARCH_* (linux/audit.h): the ELF machine with __AUDIT_ARCH_64BIT
 * (0x80000000) and __AUDIT_ARCH_LE (0x40000000). EM_X86_64 is 62,
 * EM_AARCH64 183.
 */
export const AUDIT_ARCH: Record<SeccompArch, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };

/** __X32_SYSCALL_BIT (arch/x86/include/uapi/asm/unistd.h): x32 syscalls carry it in nr. */
export const X32_SYSCALL_BIT = 0x40000000;

/** seccomp(2)'s own number (asm/unistd_64.h; asm-generic/unistd.h for arm64). */
const SYS_SECCOMP: Record<SeccompArch, number> = { x64: 317, arm64: 277 };

/** One denied syscall and its numbers (null: the arch has no such syscall, nothing to deny). */
export interface DeniedSyscall {
  name: string;
  x64: number | null;
  arm64: number | null;
}

// x64: arch/x86/entry/syscalls/syscall_64.tbl (asm/unistd_64.h);
// arm64: include/uapi/asm-generic/unistd.h.
const d = (name: string, x64: number | null, arm64: number | null): DeniedSyscall => ({ name, x64, arm64 });

/** The deny list: slirp4netns 1.2's first, then ours. */
export const DENIED: readonly DeniedSyscall[] = [
  // From slirp4netns 1.2's list: running programs
  d("execve", 59, 221),
  d("execveat", 322, 281),
  // other processes' memory and control
  d("ptrace", 101, 117),
  d("process_vm_readv", 310, 270),
  d("process_vm_writev", 311, 271),
  d("pidfd_getfd", 438, 438),
  d("lookup_dcookie", 212, 18),
  // kernel modules
  d("init_module", 175, 105),
  d("finit_module", 313, 273),
  d("delete_module", 176, 106),
  // mounts
  d("mount", 165, 40),
  d("umount", null, null),
  d("umount2", 166, 39),
  d("pivot_root", 155, 41),
  d("chroot", 161, 51),
  d("open_tree", 428, 428),
  d("move_mount", 429, 429),
  d("fsopen", 430, 430),
  d("fsconfig", 431, 431),
  d("fsmount", 432, 432),
  d("fspick", 433, 433),
  // namespaces
  d("unshare", 272, 97),
  d("setns", 308, 268),
  // process attributes (but naming a thread, see PRCTL_ALLOWED), pidfds
  d("prctl", 157, 167),
  d("pidfd_open", 434, 434),
  d("pidfd_send_signal", 424, 424),
  // replacing or stopping the kernel
  d("kexec_load", 246, 104),
  d("kexec_file_load", 320, 294),
  d("reboot", 169, 142),
  // files by handle
  d("name_to_handle_at", 303, 264),
  d("open_by_handle_at", 304, 265),
  // Ours: mounts
  d("mount_setattr", 442, 442),
  // kernel interfaces unused here
  d("bpf", 321, 280),
  d("perf_event_open", 298, 241),
  d("userfaultfd", 323, 282),
  d("add_key", 248, 217),
  d("request_key", 249, 218),
  d("keyctl", 250, 219),
  d("iopl", 172, null),
  d("ioperm", 173, null),
  d("syslog", 103, 116),
  // system administration
  d("swapon", 167, 224),
  d("swapoff", 168, 225),
  d("acct", 163, 89),
  d("quotactl", 179, 60),
  d("settimeofday", 164, 170),
  d("clock_settime", 227, 112),
  d("clock_adjtime", 305, 266),
  d("adjtimex", 159, 171),
  d("sethostname", 170, 161),
  d("setdomainname", 171, 162),
];

// Classic BPF (linux/filter.h, linux/bpf_common.h) and seccomp's return
// values (linux/seccomp.h).
const BPF_LD_W_ABS = 0x00 | 0x00 | 0x20;
const BPF_JMP_JEQ_K = 0x05 | 0x10 | 0x00;
const BPF_JMP_JSET_K = 0x05 | 0x40 | 0x00;
const BPF_RET_K = 0x06 | 0x00;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EPERM = 1;
/** What every denied syscall gets: -1 with errno EPERM. */
export const DENY = SECCOMP_RET_ERRNO | EPERM;
/** Offsets in struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]. */
const SECCOMP_DATA_NR = 0;
const SECCOMP_DATA_ARCH = 4;
/** args[0]'s low 32 bits (little-endian): prctl's option is an int. */
const SECCOMP_DATA_ARG0_LO = 16;
/** The prctl options (linux/prctl.h) the filter lets through: a thread's name. */
export const PRCTL_ALLOWED = { PR_SET_NAME: 15, PR_GET_NAME: 16 } as const;
/** Size of struct sock_filter: __u16 code; __u8 jt; __u8 jf; __u32 k. */
const SOCK_FILTER_BYTES = 8;

/** The architecture of this process, or an error naming it when the table has no numbers for it. */
export function seccompArch(arch: string = process.arch): SeccompArch {
  if (arch === "x64" || arch === "arm64") return arch;
  throw new Error(`seccomp: no syscall table for architecture ${arch} (only x86-64 and arm64)`);
}

/** The syscalls denied on `arch`, in table order (names without a number there are left out). */
export function deniedOn(arch: SeccompArch): { name: string; nr: number }[] {
  return DENIED.flatMap((s) => (s[arch] === null ? [] : [{ name: s.name, nr: s[arch] }]));
}

/** Where a conditional jump goes: one of the two returns at the end, or on to the next instruction. */
type Target = "allow" | "deny" | "next";

interface Insn {
  code: number;
  k: number;
  jt?: Target;
  jf?: Target;
}

/**
 * The filter for `arch` as struct sock_filter[] bytes (native byte order:
 * both architectures are little-endian). Every jump goes forward, to the
 * next instruction or to one of the two returns at the end; the kernel
 * accepts jump offsets of 0-255.
 */
export function buildFilter(arch: SeccompArch): Uint8Array {
  const prctl = DENIED.find((s) => s.name === "prctl")![arch]!;
  const prog: Insn[] = [
    { code: BPF_LD_W_ABS, k: SECCOMP_DATA_ARCH },
    { code: BPF_JMP_JEQ_K, k: AUDIT_ARCH[arch], jf: "deny" },
    { code: BPF_LD_W_ABS, k: SECCOMP_DATA_NR },
  ];
  if (arch === "x64") prog.push({ code: BPF_JMP_JSET_K, k: X32_SYSCALL_BIT, jt: "deny" });
  for (const { nr } of deniedOn(arch)) if (nr !== prctl) prog.push({ code: BPF_JMP_JEQ_K, k: nr, jt: "deny" });
  prog.push(
    { code: BPF_JMP_JEQ_K, k: prctl, jf: "allow" },
    { code: BPF_LD_W_ABS, k: SECCOMP_DATA_ARG0_LO },
    { code: BPF_JMP_JEQ_K, k: PRCTL_ALLOWED.PR_SET_NAME, jt: "allow" },
    { code: BPF_JMP_JEQ_K, k: PRCTL_ALLOWED.PR_GET_NAME, jt: "allow", jf: "deny" },
  );
  const at: Record<Target, number> = { allow: prog.length, deny: prog.length + 1, next: -1 };
  prog.push({ code: BPF_RET_K, k: SECCOMP_RET_ALLOW }, { code: BPF_RET_K, k: DENY });

  const out = new Uint8Array(prog.length * SOCK_FILTER_BYTES);
  const view = new DataView(out.buffer);
  prog.forEach((insn, i) => {
    const off = i * SOCK_FILTER_BYTES;
    const skip = (t: Target = "next"): number => {
      if (t === "next") return 0;
      const n = at[t] - (i + 1);
      if (n > 255) throw new Error(`seccomp: filter too long for a jump (${n})`);
      return n;
    };
    view.setUint16(off, insn.code, true);
    view.setUint8(off + 2, skip(insn.jt));
    view.setUint8(off + 3, skip(insn.jf));
    view.setUint32(off + 4, insn.k >>> 0, true);
  });
  return out;
}

/**
 * Denies the table's syscalls to every thread of this process, for good:
 * no_new_privs (execve could no longer gain privileges; seccomp(2)
 * requires it of a process without CAP_SYS_ADMIN, and slirp4netns sets it
 * either way), then the filter with TSYNC. no_new_privs belongs to the
 * calling thread, but TSYNC gives it to every thread it moves to the
 * filter (kernel/seccomp.c, seccomp_sync_threads). Returns the names
 * denied.
 * Throws (an Error naming the architecture, the failing call and its
 * errno, or the thread that could not be synchronised) when it cannot.
 */
export function installSeccomp(): string[] {
  const arch = seccompArch();
  const filter = buildFilter(arch);
  setNoNewPrivs();
  seccompSetModeFilter(SYS_SECCOMP[arch], filter);
  return deniedOn(arch).map((s) => s.name);
}
