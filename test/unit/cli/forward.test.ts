// Forward specs for -L and -R (docs/compatibility.md, Forward specs).
import { describe, expect, test } from "bun:test";
import { applyForwardDefaults, parseForwardSpec, splitBracketFields, type ForwardSide } from "../../../src/cli/forward.ts";
import { formatSpecAddress, formatSpecSide, type ForwardSpec, type HostSide } from "../../../src/host/flows/forward-spec.ts";

describe("splitBracketFields", () => {
  test.each([
    ["", [""]],
    ["80", ["80"]],
    ["1.2.3.4:80", ["1.2.3.4", "80"]],
    ["[::1]", ["::1"]],
    ["[::1]:80", ["::1", "80"]],
    ["[a@srv-[::1]:53]", ["a@srv-[::1]:53"]],
    [":2222:[tcp.echo.server@srv-[::1]:8600]:0", ["", "2222", "tcp.echo.server@srv-[::1]:8600", "0"]],
    ["::1", ["", "", "1"]],
    [":0::53", ["", "0", "", "53"]],
    ["[]", [""]],
    ["[[x]]", ["[x]"]],
    // A stray ']' makes the depth negative: colons are then kept.
    ["a]:b", ["a:b"]],
    ["[a:b", ["a:b"]],
  ])("%j", (text, fields) => {
    expect(splitBracketFields(text)).toEqual(fields);
  });
});

function side(ip: string | null, port: number, label: string | null = null): HostSide {
  return { ip, label, port };
}

function parsed(text: string, which: ForwardSide): ForwardSpec {
  return applyForwardDefaults(parseForwardSpec(text, which), which);
}

/** The printed "NET://BIND" and host side, as the listen/accept lines show them. */
function printed(spec: ForwardSpec): [string, string] {
  return [
    formatSpecAddress(spec.transport, formatSpecSide(spec.bind, spec.bind.label)),
    formatSpecSide(spec.host, spec.host.label),
  ];
}

describe("the spec examples of docs/compatibility.md", () => {
  const ECHO = 7777;
  const P = 5555;
  test.each([
    // -R
    ["remote", "1234", side("10.0.2.2", 1234), side("127.0.0.1", 1234), "tcp://10.0.2.2:1234"],
    ["remote", "1.2.3.4:1235", side("1.2.3.4", 1235), side("127.0.0.1", 1235), "tcp://1.2.3.4:1235"],
    ["remote", `80:127.0.0.1:${ECHO}`, side("10.0.2.2", 80), side("127.0.0.1", ECHO), "tcp://10.0.2.2:80"],
    ["remote", `192.0.2.5:80:127.0.0.1:${ECHO}`, side("192.0.2.5", 80), side("127.0.0.1", ECHO), "tcp://192.0.2.5:80"],
    ["remote", `udp://:0::${ECHO}`, side("10.0.2.2", 0), side("127.0.0.1", ECHO), "udp://10.0.2.2:0"],
    ["remote", `udp://[fd00::2]:0::${ECHO}`, side("fd00::2", 0), side("::1", ECHO), "udp://fd00::2:0"],
    [
      "remote",
      `tcp://:2222:tcp.echo.server@srv-${P}:0`,
      side("10.0.2.2", 2222),
      side("127.0.0.1", 0, `tcp.echo.server@srv-${P}`),
      "tcp://10.0.2.2:2222",
    ],
    [
      "remote",
      `tcp://:2222:[tcp.echo.server@srv-[::1]:${P}]:0`,
      side("10.0.2.2", 2222),
      side("127.0.0.1", 0, `tcp.echo.server@srv-[::1]:${P}`),
      "tcp://10.0.2.2:2222",
    ],
    [
      "remote",
      "tcp://tcp.echo.server@srv-1:0::2222",
      side("10.0.2.2", 0, "tcp.echo.server@srv-1"),
      side("127.0.0.1", 2222),
      "tcp://10.0.2.2:0",
    ],
    // -L
    ["local", "1236", side("127.0.0.1", 1236), side("10.0.2.100", 1236), "tcp://127.0.0.1:1236"],
    ["local", "127.1.2.3:1237", side("127.1.2.3", 1237), side("10.0.2.100", 1237), "tcp://127.1.2.3:1237"],
    ["local", "0", side("127.0.0.1", 0), side("10.0.2.100", 0), "tcp://127.0.0.1:0"],
    ["local", `0:10.0.2.100:${P}`, side("127.0.0.1", 0), side("10.0.2.100", P), "tcp://127.0.0.1:0"],
    [
      "local",
      `localhost:0:10.0.2.100:${P}`,
      side("127.0.0.1", 0, "localhost"),
      side("10.0.2.100", P),
      "tcp://127.0.0.1:0",
    ],
    ["local", `udp://:0::${P}`, side("127.0.0.1", 0), side("10.0.2.100", P), "udp://127.0.0.1:0"],
    ["local", `udp://:0:[fd00::100]:${P}`, side("::1", 0), side("fd00::100", P), "udp://::1:0"],
    ["local", `udp://[::1]:0::${P}`, side("::1", 0), side("fd00::100", P), "udp://::1:0"],
    ["local", `udp://0.0.0.0:0::${P}`, side("0.0.0.0", 0), side("10.0.2.100", P), "udp://0.0.0.0:0"],
    ["local", `udp://[::]:::${P}`, side("::", 0), side("fd00::100", P), "udp://:::0"],
    ["local", `tcp://[::]:0:10.0.2.100:${P}`, side("::", 0), side("10.0.2.100", P), "tcp://:::0"],
    ["local", "tcppp://0:10.0.2.100:0", side("127.0.0.1", 0), side("10.0.2.100", 0), "tcp://127.0.0.1:0"],
    ["local", `udpspp://0:10.0.2.100:${P}`, side("127.0.0.1", 0), side("10.0.2.100", P), "udp://127.0.0.1:0"],
    ["local", `udprpc://0:10.0.2.100:${P}`, side("127.0.0.1", 0), side("10.0.2.100", P), "udp://127.0.0.1:0"],
    // Mixed families when both sides are explicit.
    ["local", `tcp://0.0.0.0:0:[fd00::100]:${P}`, side("0.0.0.0", 0), side("fd00::100", P), "tcp://0.0.0.0:0"],
  ] as const)("%s %s", (which, text, bind, host, bindPrinted) => {
    const spec = parsed(text, which);
    expect(spec.bind).toEqual(bind);
    expect(spec.host).toEqual(host);
    expect(printed(spec)[0]).toBe(bindPrinted);
  });

  test.each([
    ["tcp", "tcp", false, false],
    ["udp", "udp", false, false],
    ["udprpc", "udp", true, false],
    ["tcppp", "tcp", false, true],
    ["udpspp", "udp", false, true],
  ] as const)("scheme %s", (scheme, transport, rpc, proxyProtocol) => {
    for (const which of ["local", "remote"] as const) {
      const spec = parseForwardSpec(`${scheme}://80`, which);
      expect(spec).toMatchObject({ scheme, transport, rpc, proxyProtocol });
    }
  });

  test("no scheme means tcp", () => {
    expect(parseForwardSpec("80", "local").scheme).toBe("tcp");
  });
});

describe("field counts", () => {
  test("five or more fields: every part defaults, ports 0", () => {
    const spec = parsed("1:2:3:4:5", "local");
    expect(spec.bind).toEqual(side("127.0.0.1", 0));
    expect(spec.host).toEqual(side("10.0.2.100", 0));
  });

  test("unbracketed IPv6 breaks into fields", () => {
    // "::1" = ["", "", "1"]: bind port "" (0), host IP "", host port 1.
    const spec = parsed("::1", "remote");
    expect(spec.bind).toEqual(side("10.0.2.2", 0));
    expect(spec.host).toEqual(side("127.0.0.1", 1));
  });

  test("an empty spec is all defaults", () => {
    const spec = parsed("", "remote");
    expect(spec.bind).toEqual(side("10.0.2.2", 0));
    expect(spec.host).toEqual(side("127.0.0.1", 0));
  });

  test("the host port is copied only when the bind port is given", () => {
    expect(parsed("1.2.3.4:", "remote").host.port).toBe(0);
    expect(parsed(":9", "remote").host.port).toBe(9);
    expect(parsed("9:1.1.1.1:", "remote").host.port).toBe(9);
  });

  test("IPv4-mapped literals become IPv4 and do not make a spec IPv6", () => {
    const spec = parsed("[::ffff:127.0.0.2]:80", "local");
    expect(spec.bind).toEqual(side("127.0.0.2", 80));
    expect(spec.host).toEqual(side("10.0.2.100", 80));
  });

  test("IPv6 literals are stored in RFC 5952 form", () => {
    expect(parsed("[FD00:0:0::0002]:80", "remote").bind).toEqual(side("fd00::2", 80));
  });

  test("labels do not count for the family; they get the placeholder", () => {
    const spec = parsed("[a.example]:80:[::1]:81", "remote");
    expect(spec.bind).toEqual(side("fd00::2", 80, "a.example"));
    expect(spec.host).toEqual(side("::1", 81));
  });

  test("a label is anything that is not an IP literal", () => {
    const spec = parseForwardSpec("127.000.0.1:80", "local");
    expect(spec.bind).toEqual(side(null, 80, "127.000.0.1"));
  });
});

describe("errors", () => {
  test.each([
    ["udppp://1", 'unknown network type "udppp"'],
    ["TCP://1", 'unknown network type "TCP"'],
    ["://1", 'unknown network type ""'],
    ["ó://1", 'unknown network type "ó"'],
    ["a", 'strconv.ParseUint: parsing "a": invalid syntax'],
    ["65536", 'strconv.ParseUint: parsing "65536": value out of range'],
    ["1.2.3.4:-1", 'strconv.ParseUint: parsing "-1": invalid syntax'],
    ["1:1.2.3.4:x", 'strconv.ParseUint: parsing "x": invalid syntax'],
    // The bind port is checked before the host port.
    ["y:1.2.3.4:x", 'strconv.ParseUint: parsing "y": invalid syntax'],
    ["1:[::1]:99999", 'strconv.ParseUint: parsing "99999": value out of range'],
  ])("%j", (text, message) => {
    expect(() => parseForwardSpec(text, "local")).toThrow(message);
  });

  test.each([
    ["1:255.255.255.255:80", "TCP target 255.255.255.255 is a broadcast address"],
    ["tcppp://1:224.0.0.1:80", "TCP target 224.0.0.1 is a multicast address"],
    ["1:239.255.255.250:80", "TCP target 239.255.255.250 is a multicast address"],
    ["1:[ff02::1]:80", "TCP target ff02::1 is a multicast address"],
    ["1:[::ffff:224.0.0.9]:80", "TCP target 224.0.0.9 is a multicast address"],
  ])("-L %j: a TCP target that is not unicast (MUST-46)", (text, message) => {
    expect(() => parseForwardSpec(text, "local")).toThrow(message);
  });

  test("UDP -L targets and -R sides may be broadcast or multicast; 240.0.0.1 and 10.0.2.255 are left to the network", () => {
    expect(parseForwardSpec("udp://1:224.0.0.1:80", "local").host.ip).toBe("224.0.0.1");
    expect(parseForwardSpec("1:224.0.0.1:80", "remote").host.ip).toBe("224.0.0.1");
    expect(parseForwardSpec("1:240.0.0.1:80", "local").host.ip).toBe("240.0.0.1");
    expect(parseForwardSpec("1:10.0.2.255:80", "local").host.ip).toBe("10.0.2.255");
  });

  test("only the first :// splits the scheme", () => {
    expect(() => parseForwardSpec("tcp://udp://1", "local")).toThrow('strconv.ParseUint: parsing "//1"');
  });
});

describe("printing spec sides", () => {
  test("IP:PORT without brackets", () => {
    expect(formatSpecSide({ ip: "fd00::2", port: 0 }, null)).toBe("fd00::2:0");
    expect(formatSpecSide({ ip: "10.0.2.2", port: 80 }, null)).toBe("10.0.2.2:80");
    expect(formatSpecAddress("udp", "fd00::2:0")).toBe("udp://fd00::2:0");
  });

  test("LABEL-failed when the label does not resolve", () => {
    expect(formatSpecSide(null, "tcp.echo.server@srv-1")).toBe("tcp.echo.server@srv-1-failed");
  });
});
