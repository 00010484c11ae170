// Foundation: the fds a supervisor hands over work at whatever number they
// have. A parent with files of its own open rarely passes fd 3: here a
// Python parent holds forty files, puts the stack's end of a SOCK_DGRAM
// socketpair at fd N with dup2 and passes it (and a few unrelated files)
// with pass_fds, as supervisors and VM managers do. The stack re-executes
// itself once at start (src/runtime-env.ts); the fds must survive that.
import { afterEach, describe, expect, test } from "bun:test";
import { HostNs } from "../../support/netns.ts";
import { BINARY, StackProcess } from "../../support/stack.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/**
 * argv: BINARY FD READY_FD EXIT_FD (-1: not passed). Plays the guest on
 * its end of the socketpair: asks who-has 10.0.2.10 and prints "ARP REPLY"
 * once the stack answers. With a ready fd it prints "READY <what was
 * written>"; with an exit fd it closes the write end of that pipe to stop
 * the stack, else sends SIGTERM. Then "STDERR <line>" for each line of the
 * stack's stderr and "EXIT <code>".
 */
const PARENT = String.raw`
import os, select, socket, subprocess, sys, time
binary, fd, ready, exit_fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
held = [os.open("/dev/null", os.O_RDONLY) for _ in range(40)]
guest, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
os.dup2(theirs.fileno(), fd)
theirs.close()
args = [binary, "-fd", str(fd)]
mine = [fd]
ready_r = exit_w = -1
if ready >= 0:
    ready_r, w = os.pipe()
    os.dup2(w, ready)
    os.close(w)
    args += ["-ready-fd", str(ready)]
    mine.append(ready)
if exit_fd >= 0:
    r, exit_w = os.pipe()
    os.dup2(r, exit_fd)
    os.close(r)
    args += ["-exit-fd", str(exit_fd)]
    mine.append(exit_fd)
others = [h for h in held[:3] if h not in mine]
p = subprocess.Popen(args, pass_fds=mine + others, stderr=subprocess.PIPE)
for n in mine:
    os.close(n)
if ready_r >= 0:
    print("READY " + os.read(ready_r, 16).decode(), flush=True)
guest_mac = bytes.fromhex("02000a000264")
who_has = (b"\xff" * 6 + guest_mac + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01"
           + guest_mac + bytes([10, 0, 2, 100]) + b"\x00" * 6 + bytes([10, 0, 2, 10]))
try:
    guest.send(who_has)
    deadline = time.time() + 5
except OSError:  # the stack is gone
    deadline = 0
while time.time() < deadline:
    if not select.select([guest], [], [], 0.1)[0]:
        continue
    f = guest.recv(2000)
    if f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02" and f[28:32] == bytes([10, 0, 2, 10]):
        print("ARP REPLY", flush=True)
        break
if exit_w >= 0:
    os.close(exit_w)
else:
    p.terminate()
err = p.communicate(timeout=10)[1].decode()
for line in err.splitlines():
    print("STDERR " + line)
print("EXIT %d" % p.returncode, flush=True)
`;

async function runParent(fd: number, readyFd = -1, exitFd = -1): Promise<string[]> {
  const host = await HostNs.create();
  cleanups.push(() => host.destroy());
  const r = await host.exec(["python3", "-c", PARENT, BINARY, String(fd), String(readyFd), String(exitFd)], { timeoutMs: 30_000 });
  if (r.stderr !== "") throw new Error(`parent failed: ${r.stderr}`);
  return r.stdout.trimEnd().split("\n");
}

describe("-fd at any descriptor number", () => {
  for (const n of [6, 9, 14, 34]) {
    test(`-fd ${n}: the stack starts on it and answers ARP`, async () => {
      const out = await runParent(n);
      expect(out).not.toContain("STDERR [!] Failed to create linkEP: bad file descriptor");
      expect(out.some((l) => /^STDERR \[\+\] #\d+ Slirpnetstack started$/.test(l))).toBe(true);
      expect(out).toContain("ARP REPLY");
      expect(out.at(-1)).toBe("EXIT 0");
    }, 20_000);
  }

  test("-ready-fd 37 and -exit-fd 41: ready is written, closing the exit pipe stops the stack", async () => {
    const out = await runParent(21, 37, 41);
    expect(out[0]).toBe("READY 1");
    expect(out).toContain("ARP REPLY");
    expect(out.at(-1)).toBe("EXIT 0");
    expect(out.at(-2)).toMatch(/^STDERR \[-\] #\d+ Slirpnetstack closing$/);
  }, 20_000);
});

describe("-fd naming a descriptor the parent did not pass", () => {
  // Only stdio is passed; the runtime's own fds (its epoll, its eventfd)
  // sit at the low numbers, and the stack must not take one for the link.
  for (const n of [3, 4, 5]) {
    test(`-fd ${n}: the link endpoint fails, exit 251`, async () => {
      const host = await HostNs.create();
      cleanups.push(() => host.destroy());
      const stack = StackProcess.spawn(["-fd", String(n)], { host });
      cleanups.push(() => stack.destroy());
      expect(await stack.exitCode(3000)).toBe(251);
      expect(stack.stderr.lines).toEqual(["[!] Failed to create linkEP: bad file descriptor"]);
    });
  }
});
