// Core: the TCP caps against the built binary. A flood of SYNs from forged
// addresses to a host listener holds at most -max-syn-received host
// connections per handshake stage; 3000 guest downloads that never read
// keep the stack's memory within -max-buffer-bytes (plus 16 KiB per
// connection). Both cases make the hostile-case checks
// (test/support/hostile-checks.ts) while the attack runs and after it.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { FileSink } from "bun";
import { readFileSync, rmSync } from "node:fs";
import { PYTHON } from "../../support/host-servers.ts";
import { PY_STOP, backgroundAttack, beginCase, hostileChecks, limitHits, whileAttacking, type HostileTarget } from "../../support/hostile-checks.ts";
import { HOST4, createCoreRig, destroyCoreRig, hostileTarget, type CoreRig } from "./core-rig.ts";

setDefaultTimeout(150_000);

const BUDGET_MIB = 64;
const SYN_CAP = 256;
const STALLED = 3000;
/**
 * The SYN rate while the guest's own connections are checked. Unpaced, the
 * script sends 50-75k SYN/s, more than the stack reads from the tap on this
 * 2-core machine: the guest's tap queue (txqueuelen 1000) then drops ~15-40k
 * frames/s, the guest's own SYNs and ACKs among them, and the download
 * times out 1 run in 3 (measured: 3/3 at 20k SYN/s, 2/3 at 35k, and one
 * full-suite run on a machine loaded by other work failed at 10k). A
 * quarter of the highest rate measured 3/3. The unpaced flood is the
 * first case's.
 * Memory under the unpaced flood rises and falls with the garbage collector
 * (~1 KiB of garbage per SYN: 125 MiB after a collection, up to ~340 MiB
 * just before one), so its peak is not this case's bound either.
 */
const DURING_RATE = 5_000;
const STATS_FILE = `/tmp/slirpnetstack-tcp-limits-${process.pid}.json`;

/**
 * The host side: accepts every connection on HOST4:0 and writes to each
 * as fast as it takes data, never reading; every 50 ms it writes how many
 * connections are open, and the most ever open at once, to STATS_FILE.
 */
const BLASTER = `
import json, os, selectors, socket, sys, time
path = sys.argv[1]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("${HOST4}", 0)); ls.listen(4096); ls.setblocking(False)
print(json.dumps({"port": ls.getsockname()[1]}), flush=True)
sel = selectors.DefaultSelector(); sel.register(ls, selectors.EVENT_READ)
chunk = b"x" * 65536
open_, peak, last = 0, 0, 0.0
while True:
    for key, ev in sel.select(0.05):
        s = key.fileobj
        if s is ls:
            while True:
                try: c, _ = ls.accept()
                except BlockingIOError: break
                c.setblocking(False); sel.register(c, selectors.EVENT_WRITE); open_ += 1; peak = max(peak, open_)
            continue
        try:
            while s.send(chunk) > 0: pass
        except BlockingIOError: pass
        except OSError:
            sel.unregister(s); s.close(); open_ -= 1
    if time.time() - last > 0.05:
        last = time.time()
        with open(path + ".tmp", "w") as f: json.dump({"open": open_, "peak": peak}, f)
        os.replace(path + ".tmp", path)
`;

/**
 * At least COUNT SYNs from forged addresses (198.18.0.0/15, which the guest
 * does not own) and ports to dst:port, then more until stdin closes; at
 * most RATE a second (0: as fast as the tap takes them). Prints what it
 * sent and its rate.
 */
const FLOOD = `${PY_STOP}
import json, socket, struct, sys, time, random
ifname, dst, port, count, rate = sys.argv[1], socket.inet_aton(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
eth = bytes.fromhex("7071aa4b29aa") + bytes.fromhex("020000000064") + b"\\x08\\x00"
r = random.Random(7)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); s.bind((ifname, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
sent = 0
i = 0
t0 = time.monotonic()
while i < count or not stop_requested():
    if i == 1000:
        print("started", flush=True)
    if rate and i % 100 == 0:
        ahead = t0 + i / rate - time.monotonic()
        if ahead > 0: time.sleep(ahead)
    i += 1
    src = bytes([198, 18 + (i >> 16 & 1), i >> 8 & 255, i & 255])
    tcp = struct.pack("!HHIIBBHHH", 1024 + r.randrange(60000), port, r.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    for attempt in range(200):
        try:
            s.send(eth + ip + tcp); sent += 1; break
        except OSError:
            time.sleep(0.002)
print(json.dumps({"sent": sent, "tried": i, "perSecond": round(sent / (time.monotonic() - t0))}))
`;

/** Opens n connections with a tiny receive buffer, never reads, says "held", and keeps them until stdin closes. */
const STALL = `
import resource, socket, sys
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
socks = []
for i in range(n):
    c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(20); c.connect((host, port)); socks.append(c)
print("held", len(socks), flush=True)
sys.stdin.read()
`;

let rig: CoreRig;
let t: HostileTarget;
let blaster: ReturnType<CoreRig["host"]["spawn"]>;
let port = 0;

function blasterStats(): { open: number; peak: number } {
  return JSON.parse(readFileSync(STATS_FILE, "utf8")) as { open: number; peak: number };
}

beforeAll(async () => {
  rig = await createCoreRig({ args: ["-enable-host", "-max-buffer-bytes", `${BUDGET_MIB}MiB`, "-max-syn-received", String(SYN_CAP)] });
  t = hostileTarget(rig);
  blaster = rig.host.spawn([PYTHON, "-c", BLASTER, STATS_FILE]);
  const line = await new Response(blaster.stdout).body!.getReader().read();
  port = (JSON.parse(new TextDecoder().decode(line.value).split("\n")[0]!) as { port: number }).port;
});

afterAll(async () => {
  blaster?.kill("SIGKILL");
  if (rig) await destroyCoreRig(rig);
  rmSync(STATS_FILE, { force: true });
});

describe("TCP caps", () => {
  test("a flood of 100000 SYNs from forged addresses holds at most -max-syn-received host connections per stage", async () => {
    const before = await beginCase(t);
    const flood = backgroundAttack<{ sent: number; tried: number; perSecond: number }>(rig.guest, [PYTHON, "-c", FLOOD, rig.guest.ifname, HOST4, String(port), "100000", "0"]);
    const r = await flood.finish();
    expect(r.sent).toBe(r.tried);
    expect(r.sent).toBe(100_000);
    console.log(`unpaced flood: ${r.perSecond} SYN/s`);
    // Handshakes waiting for the host's connect, and SYN-RECEIVED ones.
    const { peak } = blasterStats();
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(2 * SYN_CAP);
    await hostileChecks(t, { phase: "after", since: before, moved: [limitHits("tcp-syn-received")] });
    // While more than half the places are taken, a SYN-ACK goes twice:
    // those forged half-open connections end within seconds, not after
    // the 63 s of six tries.
    const end = Date.now() + 20_000;
    while (blasterStats().open > SYN_CAP / 2 && Date.now() < end) await Bun.sleep(200);
    expect(blasterStats().open).toBeLessThanOrEqual(SYN_CAP / 2);
  });

  test(`while a SYN flood of ${DURING_RATE} a second runs, the guest's own new connections get through: a download and a UDP echo`, async () => {
    const before = await beginCase(t);
    const flood = backgroundAttack<{ sent: number; tried: number; perSecond: number }>(rig.guest, [PYTHON, "-c", FLOOD, rig.guest.ifname, HOST4, String(port), "10000", String(DURING_RATE)]);
    const r = await whileAttacking(flood, () => hostileChecks(t, { phase: "during", since: before, moved: [limitHits("tcp-syn-received")], downloadTimeoutS: 60 }));
    expect(r.sent).toBeGreaterThanOrEqual(10_000);
    // The forged handshakes end within seconds (above); the next test needs their places.
    const end = Date.now() + 20_000;
    while (blasterStats().open > SYN_CAP / 2 && Date.now() < end) await Bun.sleep(200);
  });

  test(`${STALLED} downloads into closed windows stay within -max-buffer-bytes; a new download and UDP still work`, async () => {
    const before = await beginCase(t);
    const stall = rig.guest.spawn([PYTHON, "-c", STALL, String(STALLED), HOST4, String(port)], { stdin: "pipe" });
    try {
      const reader = stall.stdout.getReader();
      let said = "";
      while (!said.includes("\n")) {
        const r = await reader.read();
        if (r.done) break;
        said += new TextDecoder().decode(r.value);
      }
      expect(said.trim()).toBe(`held ${STALLED}`);
      // Let every connection fill what it may.
      await Bun.sleep(3000);
      // While they are held.
      await hostileChecks(t, { phase: "during", since: before, moved: [limitHits("tcp-buffer-bytes")] });
    } finally {
      (stall.stdin as FileSink).end();
      stall.kill("SIGKILL");
    }
    await hostileChecks(t, { phase: "after", since: before, moved: [limitHits("tcp-buffer-bytes")] });
  });
});
