// getifaddrs(3): an interface's address by name, the way slirp4netns
// resolves --outbound-addr=INTERFACE: the first address of the family in
// libc's list, whether the interface is up or not.
import { read, CString, type Pointer } from "bun:ffi";
import { check, libc } from "./libc.ts";
import { AF_INET, AF_INET6 } from "./net.ts";

// struct ifaddrs (LP64): ifa_next at 0, ifa_name at 8, ifa_addr at 24.
const IFA_NEXT = 0;
const IFA_NAME = 8;
const IFA_ADDR = 24;
// Where the address bytes sit: sockaddr_in's sin_addr, sockaddr_in6's sin6_addr.
const SIN_ADDR = 4;
const SIN6_ADDR = 8;

/** The first IPv4 (`family` 4: 4 bytes) or IPv6 (16 bytes) address of interface `name`; null when it has none or does not exist. */
export function interfaceAddress(name: string, family: 4 | 6): Uint8Array | null {
  const head = new BigUint64Array(1);
  check("getifaddrs", libc.getifaddrs(head));
  const first = Number(head[0]) as Pointer;
  const af = family === 4 ? AF_INET : AF_INET6;
  try {
    for (let p = first; p !== 0; p = read.ptr(p, IFA_NEXT) as Pointer) {
      const addr = read.ptr(p, IFA_ADDR) as Pointer;
      const label = read.ptr(p, IFA_NAME) as Pointer;
      if (addr === 0 || label === 0 || read.u16(addr, 0) !== af) continue;
      if (new CString(label).toString() !== name) continue;
      const off = family === 4 ? SIN_ADDR : SIN6_ADDR;
      const bytes = new Uint8Array(family === 4 ? 4 : 16);
      for (let i = 0; i < bytes.length; i++) bytes[i] = read.u8(addr, off + i);
      return bytes;
    }
    return null;
  } finally {
    if (first !== 0) libc.freeifaddrs(first);
  }
}
