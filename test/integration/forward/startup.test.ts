// Startup of -L and -R (docs/compatibility.md, startup steps 12 and 13,
// Forward specs, Log lines): the exact listen/accepting lines in
// command-line order (-L before -R), hidden by -quiet; a busy port exits
// 247 with "Failed to listen on" (earlier listen lines stay on stdout); bad
// specs exit 2 with the parse messages.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  createForwardEnv,
  destroyForwardEnv,
  listenPorts,
  runStackToExit,
  startStack,
  stdoutLines,
  stopStacks,
  type ForwardEnv,
} from "../../support/forward-env.ts";
import { BINARY } from "../../support/stack.ts";

setDefaultTimeout(60_000);

let env: ForwardEnv;
beforeAll(async () => {
  env = await createForwardEnv();
});
afterEach(stopStacks);
afterAll(() => destroyForwardEnv(env));

describe("startup lines", () => {
  test("-L lines (plain and PP, tcp and udp), then -R lines, before anything else", async () => {
    const stack = await startStack(env, [
      "-R", "udp://[fd00::2]:0::7",
      "-L", "tcp://127.0.0.1:0::80",
      "-R", "1234",
      "-L", "tcppp://[::1]:0:[fd00::100]:80",
      "-L", "udp://0.0.0.0:0::53",
      "-L", "udpspp://0:10.0.2.100:53",
      "-L", "udprpc://[::]:0::53",
      "-R", "tcp://[2001:db8::5]:443:127.0.0.1:443",
      "-R", "udprpc://10.0.2.2:53:[::1]:53",
    ]);
    const { ports } = await listenPorts(stack, 5);
    expect(await stdoutLines(stack, 9)).toEqual([
      `[+] local-fwd Local listen tcp://127.0.0.1:${ports[0]}`,
      `[+] local-fwd Local PP listen tcp://[::1]:${ports[1]}`,
      `[+] local-fwd Local listen udp://[::]:${ports[2]}`,
      `[+] local-fwd Local PP listen udp://127.0.0.1:${ports[3]}`,
      `[+] local-fwd Local listen udp://[::]:${ports[4]}`,
      "[+] Accepting on remote side udp://fd00::2:0",
      "[+] Accepting on remote side tcp://10.0.2.2:1234",
      "[+] Accepting on remote side tcp://2001:db8::5:443",
      "[+] Accepting on remote side udp://10.0.2.2:53",
    ]);
    for (const p of ports) expect(p).toBeGreaterThan(1023);
    expect(stack.stderr.lines.filter((l) => l !== "").at(-1)).toMatch(/^\[\+\] #\d+ Slirpnetstack started$/);
  });

  test("a fixed -L port is used as given, and the same port is the default target port", async () => {
    const stack = await startStack(env, ["-L", "4567", "-L", "udp://[::1]:4568"]);
    expect(await stdoutLines(stack, 2)).toEqual([
      "[+] local-fwd Local listen tcp://127.0.0.1:4567",
      "[+] local-fwd Local listen udp://[::1]:4568",
    ]);
  });

  test("-quiet hides the listen and accepting lines", async () => {
    const stack = await startStack(env, ["-quiet", "-L", "0", "-L", "udpspp://0:10.0.2.100:53", "-R", "1234", "-R", "udp://[fd00::2]:0::7"]);
    await Bun.sleep(100);
    expect(stack.stdout.lines.filter((l) => l !== "")).toEqual([]);
  });
});

describe("exit 247: a -L that cannot listen", () => {
  test("second -L on the same TCP port: first listen line stays, then Failed to listen", async () => {
    const r = await runStackToExit(env, ["-L", "4000", "-L", "4000"]);
    expect(r.code).toBe(247);
    expect(r.stdout).toEqual(["[+] local-fwd Local listen tcp://127.0.0.1:4000"]);
    expect(r.stderr.at(-1)).toBe("[!] Failed to listen on tcp://127.0.0.1:4000: listen tcp 127.0.0.1:4000: bind: address already in use");
    expect(r.stderr.some((l) => l.includes("Slirpnetstack started"))).toBe(false);
  });

  test("second -L on the same UDP port", async () => {
    const r = await runStackToExit(env, ["-L", "udp://4001", "-L", "udp://4001"]);
    expect(r.code).toBe(247);
    expect(r.stdout).toEqual(["[+] local-fwd Local listen udp://127.0.0.1:4001"]);
    expect(r.stderr.at(-1)).toBe("[!] Failed to listen on udp://127.0.0.1:4001: listen udp 127.0.0.1:4001: bind: address already in use");
  });

  test("IPv6 and PP specs print their bind spec without brackets", async () => {
    const r = await runStackToExit(env, ["-L", "tcppp://[::1]:4002::80", "-L", "tcp://[::1]:4002::80"]);
    expect(r.code).toBe(247);
    expect(r.stdout).toEqual(["[+] local-fwd Local PP listen tcp://[::1]:4002"]);
    expect(r.stderr.at(-1)).toBe("[!] Failed to listen on tcp://::1:4002: listen tcp [::1]:4002: bind: address already in use");
  });

  test("ports held by another process (TCP and UDP)", async () => {
    const t = await env.h.tcpListen("127.0.0.1", 4003);
    const u = await env.h.udpListen("127.0.0.1", 4004);
    try {
      const rt = await runStackToExit(env, ["-L", "tcp://127.0.0.1:4003::80"]);
      expect(rt.code).toBe(247);
      expect(rt.stdout).toEqual([]);
      expect(rt.stderr.at(-1)).toBe("[!] Failed to listen on tcp://127.0.0.1:4003: listen tcp 127.0.0.1:4003: bind: address already in use");
      const ru = await runStackToExit(env, ["-L", "udp://127.0.0.1:4004::80"]);
      expect(ru.code).toBe(247);
      expect(ru.stderr.at(-1)).toBe("[!] Failed to listen on udp://127.0.0.1:4004: listen udp 127.0.0.1:4004: bind: address already in use");
    } finally {
      await env.h.close(t.sid);
      await env.h.close(u.sid);
    }
  });

  test("the same port on TCP and on UDP is fine", async () => {
    const stack = await startStack(env, ["-L", "4005", "-L", "udp://4005"]);
    expect(await stdoutLines(stack, 2)).toEqual([
      "[+] local-fwd Local listen tcp://127.0.0.1:4005",
      "[+] local-fwd Local listen udp://127.0.0.1:4005",
    ]);
  });
});

describe("exit 2: bad specs", () => {
  const cases: Array<[string[], string]> = [
    [["-L", "99999"], 'invalid value "99999" for flag -L: strconv.ParseUint: parsing "99999": value out of range'],
    [["-L", "65536"], 'invalid value "65536" for flag -L: strconv.ParseUint: parsing "65536": value out of range'],
    [["-L", "abc"], 'invalid value "abc" for flag -L: strconv.ParseUint: parsing "abc": invalid syntax'],
    [["-L", "tcp://127.0.0.1:80:10.0.2.100:x"], 'invalid value "tcp://127.0.0.1:80:10.0.2.100:x" for flag -L: strconv.ParseUint: parsing "x": invalid syntax'],
    [["-L", "udp://:-1"], 'invalid value "udp://:-1" for flag -L: strconv.ParseUint: parsing "-1": invalid syntax'],
    [["-R", "tcp://10.0.2.2:80:127.0.0.1:70000"], 'invalid value "tcp://10.0.2.2:80:127.0.0.1:70000" for flag -R: strconv.ParseUint: parsing "70000": value out of range'],
    [["-R", "udp://[fd00::2]: 53"], 'invalid value "udp://[fd00::2]: 53" for flag -R: strconv.ParseUint: parsing " 53": invalid syntax'],
    [["-L", "foo://80"], 'invalid value "foo://80" for flag -L: unknown network type "foo"'],
    [["-L", "udppp://0:10.0.2.100:53"], 'invalid value "udppp://0:10.0.2.100:53" for flag -L: unknown network type "udppp"'],
    [["-R", "udppp://53"], 'invalid value "udppp://53" for flag -R: unknown network type "udppp"'],
    [["-L", "TCP://80"], 'invalid value "TCP://80" for flag -L: unknown network type "TCP"'],
    [["-L"], "flag needs an argument: -L"],
    [["-R"], "flag needs an argument: -R"],
  ];
  for (const [args, message] of cases) {
    test(`${args.join(" ")}`, async () => {
      const r = await runStackToExit(env, args, false);
      expect(r.code).toBe(2);
      expect(r.stdout).toEqual([]);
      expect(r.stderr[0]).toBe(message);
      expect(r.stderr[1]).toBe(`Usage of ${BINARY}:`);
    });
  }

  test("a bad spec after good ones still fails at parse time (nothing listens, no device)", async () => {
    const r = await runStackToExit(env, ["-L", "4100", "-R", "1234", "-L", "udp://1.2.3.4:bad"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toEqual([]);
    expect(r.stderr[0]).toBe('invalid value "udp://1.2.3.4:bad" for flag -L: strconv.ParseUint: parsing "bad": invalid syntax');
    expect(r.stderr.some((l) => l.startsWith("[.]"))).toBe(false);
  });

  test("-R tcppp and udpspp are accepted (and ignored)", async () => {
    const stack = await startStack(env, ["-R", "tcppp://1234", "-R", "udpspp://[fd00::2]:53::53"]);
    expect(await stdoutLines(stack, 2)).toEqual([
      "[+] Accepting on remote side tcp://10.0.2.2:1234",
      "[+] Accepting on remote side udp://fd00::2:53",
    ]);
  });
});
