// A small program the src/ns integration tests run, often as an ordinary
// user (setpriv), to exercise acquireDevice / startRunMode from a process of
// its own and prove the device works. It prints one line
// `PROBE-RESULT {json}` on stdout at the end (a run-mode command's output,
// which shares stdout, comes before it).
//
//   bun ns-probe.ts attach NETNS IFNAME [--offloads N] [--userns PATH]
//       acquireDevice; then writes "who-has 10.0.2.100 tell 10.0.2.2" into
//       the device and waits for the guest kernel's ARP reply.
//   bun ns-probe.ts run [--offloads N] [--mtu N] [--resolv FILE] [--no-go] [--forward-signals] -- COMMAND…
//       startRunMode; go(); while the command runs, watches the tap for the
//       guest's ARP request for 10.0.2.2; reports the command's status.
//       --forward-signals installs the run-mode signal policy
//       (forwardRunModeSignals) as the stack would.
import { acquireDevice, startRunMode, forwardRunModeSignals, runHiddenCommand, DeviceError, type TunAttachment } from "../../src/ns/index.ts";
import { PollSet, readFd, writeFd, closeFd } from "../../ffi/sys.ts";

const VNET = 12;
const OUR_MAC = [0x70, 0x71, 0xaa, 0x4b, 0x29, 0xaa];

function result(obj: unknown, code = 0): never {
  process.stdout.write(`PROBE-RESULT ${JSON.stringify(obj)}\n`);
  process.exit(code);
}

function failure(e: unknown): never {
  if (e instanceof DeviceError) {
    result({ ok: false, lines: e.lines(), exitCode: e.exitCode, step: e.step, reason: e.reason, text: e.text });
  }
  result({ ok: false, unexpected: String((e as Error)?.stack ?? e) });
}

function arpFrame(op: number, spa: number[], tpa: number[]): Uint8Array {
  const f = new Uint8Array(42);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
  f.set(OUR_MAC, 6);
  f.set([0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0, op], 12);
  f.set(OUR_MAC, 22);
  f.set(spa, 28);
  f.set(tpa, 38);
  return f;
}

/** Reads frames for up to `ms`, returning the first one `match` accepts (vnet header stripped). */
function readUntil(dev: TunAttachment, ms: number, match: (f: Uint8Array) => boolean): Uint8Array | null {
  const poll = new PollSet([dev.fd]);
  const buf = new Uint8Array(new ArrayBuffer(70000));
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (poll.wait(Math.max(1, Math.min(50, end - Date.now()))) === 0) continue;
    const n = readFd(dev.fd, buf, 0, buf.length);
    if (n <= 0) continue;
    const frame = buf.slice(dev.vnetHdr ? VNET : 0, n);
    if (match(frame)) return frame;
  }
  return null;
}

const isArp = (f: Uint8Array, op: number, spa: string, tpa: string) =>
  f.length >= 42 && f[12] === 0x08 && f[13] === 0x06 && f[21] === op && f.slice(28, 32).join(".") === spa && f.slice(38, 42).join(".") === tpa;

function flag(args: string[], name: string): string | null {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : null;
}

// Compiled (see probeCommand in unpriv.ts), the probe is also its own
// namespace helper, as the slirpnetstack binary is.
if (await runHiddenCommand(process.argv.slice(2))) process.exit(0);

const [mode, ...rest] = process.argv.slice(2);

if (mode === "attach") {
  const [netns, ifname] = rest;
  let dev: TunAttachment;
  let opened = false;
  try {
    dev = await acquireDevice({
      netns: netns!,
      ifname: ifname!,
      offloads: Number(flag(rest, "--offloads") ?? 0),
      userns: flag(rest, "--userns"),
      onOpening: () => {
        opened = true;
      },
    });
  } catch (e) {
    failure(e);
  }
  const req = arpFrame(1, [10, 0, 2, 2], [10, 0, 2, 100]);
  const out = dev.vnetHdr ? new Uint8Array(VNET + req.length) : req;
  if (dev.vnetHdr) out.set(req, VNET);
  // Asked again every 250 ms, as a real ARP client would: opening the tap
  // brings its carrier up, and until the kernel's link watcher has acted on
  // that (at most once a second per device) the guest's transmit queue can
  // drop what it sends. One request and a 3 s wait failed once in CI-like
  // runs with no reply at all.
  let wrote = 0;
  let reply: Uint8Array | null = null;
  for (let i = 0; i < 12 && reply === null; i++) {
    wrote = writeFd(dev.fd, out, out.length);
    reply = readUntil(dev, 250, (f) => isArp(f, 2, "10.0.2.100", "10.0.2.2"));
  }
  closeFd(dev.fd);
  result({ ok: true, device: dev, opened, wrote, arpReply: reply !== null, replyMac: reply ? Array.from(reply.slice(22, 28)) : null });
}

if (mode === "run") {
  const dd = rest.indexOf("--");
  const opts = dd >= 0 ? rest.slice(0, dd) : rest;
  const command = dd >= 0 ? rest.slice(dd + 1) : [];
  let session;
  const t0 = Date.now();
  try {
    session = await startRunMode({
      command,
      offloads: Number(flag(opts, "--offloads") ?? 0),
      mtu: flag(opts, "--mtu") !== null ? Number(flag(opts, "--mtu")) : undefined,
      resolvConf: flag(opts, "--resolv"),
    });
  } catch (e) {
    failure(e);
  }
  const setupMs = Date.now() - t0;
  if (opts.includes("--no-go")) {
    const status = await session.abort();
    closeFd(session.device.fd);
    result({ ok: true, aborted: true, status });
  }
  let done = false;
  let status = -1;
  void session.exited.then((s) => {
    done = true;
    status = s;
  });
  if (opts.includes("--forward-signals")) forwardRunModeSignals(session.pid);
  session.go();
  let sawArp = false;
  while (!done) {
    if (!sawArp && readUntil(session.device, 20, (f) => isArp(f, 1, "10.0.2.100", "10.0.2.2")) !== null) sawArp = true;
    await Bun.sleep(sawArp ? 10 : 1);
  }
  closeFd(session.device.fd);
  result({ ok: true, device: session.device, pid: session.pid, status, sawArp, setupMs });
}

process.stderr.write("usage: ns-probe.ts attach NETNS IFNAME | run [opts] -- COMMAND…\n");
process.exit(2);
