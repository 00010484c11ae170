// Capabilities and no_new_privs for the sandbox and the seccomp filter (src/sandbox/).
// Every call here acts on the calling thread only (capabilities are
// per-thread in Linux); docs/sandbox.md says what that means under Bun.
import { check, errno, libc, SysError } from "./libc.ts";

const PR_CAPBSET_DROP = 24;
const PR_SET_NO_NEW_PRIVS = 38;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const EINVAL = 22;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
export const CAP_NET_BIND_SERVICE = 10;

/** No execve from here on can gain privileges (set-uid bits, file capabilities). */
export function setNoNewPrivs(): void {
  check("prctl", libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS");
}

/**
 * Leaves only the capabilities in `keep` (capability numbers) in the
 * bounding, effective and permitted sets; the inheritable and ambient
 * sets end up empty.
 */
export function dropCapabilities(keep: readonly number[]): void {
  check("prctl", libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "PR_CAP_AMBIENT_CLEAR_ALL");
  // Up to the kernel's last capability: past it PR_CAPBSET_DROP says EINVAL.
  for (let cap = 0; ; cap++) {
    if (keep.includes(cap)) continue;
    if (libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) === 0) continue;
    const e = errno();
    if (e === EINVAL) break;
    throw new SysError("prctl", e, `PR_CAPBSET_DROP ${cap}`);
  }
  // struct __user_cap_header_struct { u32 version; int pid } and two
  // struct __user_cap_data_struct { u32 effective, permitted, inheritable }.
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
  const data = new Uint32Array(6);
  for (const cap of keep) {
    data[(cap >> 5) * 3] = data[(cap >> 5) * 3]! | (1 << (cap & 31));
    data[(cap >> 5) * 3 + 1] = data[(cap >> 5) * 3 + 1]! | (1 << (cap & 31));
  }
  check("capset", libc.capset(header, data), keep.length === 0 ? "all cleared" : `keeping ${keep.join(",")}`);
}
