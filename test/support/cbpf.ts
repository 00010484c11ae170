// A classic BPF interpreter for seccomp filters, to run an assembled
// program on synthetic struct seccomp_data records in unit tests. It knows
// the instructions a seccomp filter may use for this (loads of 32-bit words
// of seccomp_data, conditional jumps against a constant, unconditional
// jumps, returns of a constant) and refuses anything else, and it checks
// what the kernel's seccomp_check_filter (kernel/seccomp.c) and
// bpf_check_classic (net/core/filter.c) check: a length of 1 to 4096, jump
// targets inside the program, aligned loads inside seccomp_data, a return
// at the end.

const BPF_MAXINSNS = 4096;
/** sizeof(struct seccomp_data): int nr, __u32 arch, __u64 instruction_pointer, __u64 args[6]. */
export const SECCOMP_DATA_BYTES = 64;

// linux/bpf_common.h
const BPF_CLASS = (code: number) => code & 0x07;
const BPF_LD = 0x00;
const BPF_JMP = 0x05;
const BPF_RET = 0x06;
const BPF_W = 0x00;
const BPF_ABS = 0x20;
const BPF_K = 0x00;
const BPF_JA = 0x00;
const BPF_JEQ = 0x10;
const BPF_JGT = 0x20;
const BPF_JGE = 0x30;
const BPF_JSET = 0x40;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** struct sock_filter[] bytes (little-endian) as instructions. */
export function decode(bytes: Uint8Array): Insn[] {
  if (bytes.length % 8 !== 0) throw new Error(`program of ${bytes.length} bytes is not whole instructions`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = [];
  for (let off = 0; off < bytes.length; off += 8) {
    out.push({ code: v.getUint16(off, true), jt: v.getUint8(off + 2), jf: v.getUint8(off + 3), k: v.getUint32(off + 4, true) });
  }
  return out;
}

/** Throws when the kernel would refuse `prog` as a seccomp filter, or when it uses an instruction this interpreter does not run. */
export function validate(prog: Insn[]): void {
  if (prog.length === 0 || prog.length > BPF_MAXINSNS) throw new Error(`program length ${prog.length} not in 1..${BPF_MAXINSNS}`);
  prog.forEach((insn, pc) => {
    switch (insn.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (insn.k % 4 !== 0 || insn.k >= SECCOMP_DATA_BYTES) throw new Error(`pc ${pc}: load at offset ${insn.k} outside seccomp_data or unaligned`);
        break;
      case BPF_JMP | BPF_JA:
        if (pc + 1 + insn.k >= prog.length) throw new Error(`pc ${pc}: jump past the end`);
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
      case BPF_JMP | BPF_JGT | BPF_K:
      case BPF_JMP | BPF_JGE | BPF_K:
      case BPF_JMP | BPF_JSET | BPF_K:
        if (pc + 1 + Math.max(insn.jt, insn.jf) >= prog.length) throw new Error(`pc ${pc}: jump past the end`);
        break;
      case BPF_RET | BPF_K:
        break;
      default:
        throw new Error(`pc ${pc}: instruction 0x${insn.code.toString(16)} not supported`);
    }
  });
  if (BPF_CLASS(prog[prog.length - 1]!.code) !== BPF_RET) throw new Error("program does not end in a return");
}

/** One syscall as the filter sees it. */
export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  args?: readonly bigint[];
}

export function seccompData(d: SeccompData): Uint8Array {
  const bytes = new Uint8Array(SECCOMP_DATA_BYTES);
  const v = new DataView(bytes.buffer);
  v.setInt32(0, d.nr, true);
  v.setUint32(4, d.arch >>> 0, true);
  v.setBigUint64(8, d.instructionPointer ?? 0n, true);
  (d.args ?? []).forEach((a, i) => v.setBigUint64(16 + 8 * i, a, true));
  return bytes;
}

/** Runs a validated program on one record; returns the filter's 32-bit return value. */
export function run(prog: Insn[], data: Uint8Array): number {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let a = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    switch (code) {
      case BPF_LD | BPF_W | BPF_ABS:
        a = v.getUint32(k, true);
        break;
      case BPF_JMP | BPF_JA:
        pc += k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += a === k >>> 0 ? jt : jf;
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        pc += a > k >>> 0 ? jt : jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += a >= k >>> 0 ? jt : jf;
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        pc += (a & k) !== 0 ? jt : jf;
        break;
      case BPF_RET | BPF_K:
        return k >>> 0;
      default:
        throw new Error(`pc ${pc}: instruction 0x${code.toString(16)} not supported`);
    }
  }
  throw new Error("ran off the end of the program");
}
