// SCM_RIGHTS over a SOCK_SEQPACKET socketpair (ffi/scm.ts), within one process.
import { expect, test } from "bun:test";
import { seqpacketPair, sendFd, recvFd, sendMessage, recvMessage, waitReadable } from "../../../ffi/scm.ts";
import { SysError } from "../../../ffi/libc.ts";
import { closeFd, eventFd, eventFdSignal, readFd, fdIsOpen } from "../../../ffi/sys.ts";

test("a descriptor crosses: the received fd is the same open file", () => {
  const [a, b] = seqpacketPair();
  const ev = eventFd();
  try {
    sendFd(a, ev);
    const got = recvFd(b, 1000);
    expect(got).not.toBe(ev);
    eventFdSignal(got); // through the copy ...
    const buf = new Uint8Array(new ArrayBuffer(8));
    expect(readFd(ev, buf, 0, 8)).toBe(8); // ... seen through the original
    expect(buf[0]).toBe(1);
    closeFd(got);
  } finally {
    closeFd(ev);
    closeFd(a);
    closeFd(b);
  }
});

test("messages keep their boundaries, with and without a descriptor", () => {
  const [a, b] = seqpacketPair();
  const ev = eventFd();
  try {
    sendMessage(a, new TextEncoder().encode("first"));
    sendMessage(a, new TextEncoder().encode('{"second":true}'), ev);
    const m1 = recvMessage(b, 1000)!;
    expect(new TextDecoder().decode(m1.data)).toBe("first");
    expect(m1.fd).toBe(null);
    const m2 = recvMessage(b, 1000)!;
    expect(new TextDecoder().decode(m2.data)).toBe('{"second":true}');
    expect(m2.fd).not.toBe(null);
    expect(fdIsOpen(m2.fd!)).toBe(true);
    closeFd(m2.fd!);
  } finally {
    closeFd(ev);
    closeFd(a);
    closeFd(b);
  }
});

test("timeout, end of file and errors name the call", () => {
  const [a, b] = seqpacketPair();
  expect(waitReadable(b, 0)).toBe(false);
  const t0 = Date.now();
  expect(() => recvFd(b, 30)).toThrow(SysError);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
  try {
    recvFd(b, 0);
  } catch (e) {
    expect((e as SysError).call).toBe("recvmsg");
    expect((e as SysError).code).toBe("ETIMEDOUT");
  }
  sendMessage(a, new Uint8Array([1]));
  expect(() => recvFd(b, 100)).toThrow("EPROTO");
  closeFd(a);
  expect(recvMessage(b, 100)).toBe(null);
  expect(() => recvFd(b, 100)).toThrow("EPIPE");
  closeFd(b);
  const [c, d] = seqpacketPair();
  closeFd(d);
  try {
    sendFd(c, 0);
    throw new Error("expected EPIPE");
  } catch (e) {
    expect((e as SysError).call).toBe("sendmsg");
    expect((e as SysError).code).toBe("EPIPE");
  }
  closeFd(c);
});

test("many round trips do not leak or corrupt (buffers stay alive)", () => {
  const [a, b] = seqpacketPair();
  const ev = eventFd();
  try {
    for (let i = 0; i < 2000; i++) {
      sendMessage(a, new TextEncoder().encode(`m${i}`), ev);
      const m = recvMessage(b, 1000)!;
      expect(new TextDecoder().decode(m.data)).toBe(`m${i}`);
      closeFd(m.fd!);
      if (i % 500 === 0) Bun.gc(true);
    }
  } finally {
    closeFd(ev);
    closeFd(a);
    closeFd(b);
  }
});
