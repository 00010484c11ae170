// Namespace files (nsfs): which user namespace owns a network namespace.
import { libc, errno, SysError } from "./libc.ts";
import { closeFd, openPath, O_RDONLY } from "./sys.ts";

const NS_GET_USERNS = 0xb701; // _IO(0xb7, 0x1), linux/nsfs.h
const EPERM = 1;

/**
 * Opens the user namespace that owns the namespace at `path` (ioctl
 * NS_GET_USERNS). Returns its fd (close-on-exec), or null when that user
 * namespace lies outside ours (EPERM: then it is no namespace of ours to
 * enter). Throws SysError("open", …) when the path cannot be opened and
 * SysError("ioctl", ENOTTY) when it is not a namespace file.
 */
export function openOwnerUserns(path: string): number | null {
  const fd = openPath(path, O_RDONLY);
  try {
    const u = libc.ioctl(fd, NS_GET_USERNS, 0 as never);
    if (u >= 0) return u;
    const e = errno();
    if (e === EPERM) return null;
    throw new SysError("ioctl", e, "NS_GET_USERNS");
  } finally {
    closeFd(fd);
  }
}
