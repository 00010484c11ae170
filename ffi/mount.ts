// mount(2) for the run-mode helper: make the (new, private) mount namespace
// stop propagating, then bind a file over another (resolv.conf).
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
