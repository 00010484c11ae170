// Mounts. For the run-mode helper: make the (new, private) mount namespace
// stop propagating, then bind a file over another (resolv.conf). For the
// sandbox: the tmpfs it pivots into (below).
import { check, cstr, libc } from "./libc.ts";

const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_PRIVATE = 0x40000;

/**
 * `mount --make-rprivate /`: nothing mounted in this namespace afterwards
 * propagates back to the namespace it was copied from.
 */
export function makeRootPrivate(): void {
  check("mount", libc.mount(null, cstr("/"), null, MS_REC | MS_PRIVATE, null), "MS_PRIVATE|MS_REC /");
}

/** `mount --bind SOURCE TARGET`. */
export function bindMount(source: string, target: string): void {
  check("mount", libc.mount(cstr(source), cstr(target), null, MS_BIND, null), `MS_BIND ${source} ${target}`);
}

// The sandbox (src/sandbox/sandbox.ts): a tmpfs, read-only binds into it,
// pivot_root into it, the old root detached.
const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_REMOUNT = 0x20;
const MNT_DETACH = 0x2;
/** SYS_pivot_root: 155 on x86-64, 41 on arm64 (the generic table). */
const SYS_PIVOT_ROOT = process.arch === "arm64" ? 41 : 155;

/** An empty tmpfs of at most `size` (tmpfs(5) size=) on `target`, no devices, set-uid or executables in it. */
export function mountTmpfs(target: string, size: string): void {
  check("mount", libc.mount(cstr("tmpfs"), cstr(target), cstr("tmpfs"), MS_NOSUID | MS_NODEV | MS_NOEXEC, cstr(`size=${size},mode=0755`)), `tmpfs ${target}`);
}

/**
 * `mount --rbind SOURCE TARGET` then read-only, no devices, set-uid or
 * executables (a bind mount takes those flags only from a remount; the
 * mounts under SOURCE keep their own).
 */
export function bindMountReadOnly(source: string, target: string): void {
  check("mount", libc.mount(cstr(source), cstr(target), null, MS_BIND | MS_REC, null), `MS_BIND|MS_REC ${source} ${target}`);
  check("mount", libc.mount(null, cstr(target), null, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null), `MS_REMOUNT|MS_BIND|MS_RDONLY ${target}`);
}

/** The tmpfs at `target` made read-only. */
export function remountTmpfsReadOnly(target: string): void {
  check("mount", libc.mount(cstr("tmpfs"), cstr(target), cstr("tmpfs"), MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null), `MS_REMOUNT|MS_RDONLY ${target}`);
}

/** pivot_root(2): `newRoot` becomes the root of every process and thread of this mount namespace whose root was the old one; the old root is moved to `putOld`. */
export function pivotRoot(newRoot: string, putOld: string): void {
  check("pivot_root", Number(libc.syscall(SYS_PIVOT_ROOT, cstr(newRoot), cstr(putOld), null)), `${newRoot} ${putOld}`);
}

/** umount2(target, MNT_DETACH): gone from the namespace now, freed once nothing uses it. */
export function detachMount(target: string): void {
  check("umount2", libc.umount2(cstr(target), MNT_DETACH), `MNT_DETACH ${target}`);
}

export function chdir(path: string): void {
  check("chdir", libc.chdir(cstr(path)), path);
}

export function mkdir(path: string, mode: number): void {
  check("mkdir", libc.mkdir(cstr(path), mode), path);
}

export function rmdir(path: string): void {
  check("rmdir", libc.rmdir(cstr(path)), path);
}
