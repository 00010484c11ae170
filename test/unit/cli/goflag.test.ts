// The generic Go `flag` re-implementation (docs/compatibility.md, Parsing
// rules and Usage text).
import { describe, expect, test } from "bun:test";
import { FlagSet, unquoteUsage, type FlagParseResult } from "../../../src/cli/goflag.ts";

function sampleSet(): FlagSet {
  return new FlagSet("prog")
    .define({ name: "b", kind: "bool", usage: "a boolean" })
    .define({ name: "quiet", kind: "bool", usage: "be quiet" })
    .define({ name: "n", kind: "int", default: -1, usage: "a number" })
    .define({ name: "u", kind: "uint", usage: "unsigned" })
    .define({ name: "s", kind: "string", default: "tun0", usage: "a string" })
    .define({ name: "d", kind: "duration", default: 5000, usage: "a duration" })
    .define({
      name: "L",
      kind: "value",
      repeatable: true,
      usage: "a list",
      parse: (text) => {
        if (text === "bad") throw new Error("custom failure");
        return text.toUpperCase();
      },
    });
}

async function parse(args: string[]): Promise<FlagParseResult> {
  return await sampleSet().parse(args);
}

async function ok(args: string[]) {
  const result = await parse(args);
  if (result.kind !== "ok") throw new Error(`expected ok, got ${JSON.stringify(result)}`);
  return result;
}

async function errorOf(args: string[]): Promise<string> {
  const result = await parse(args);
  if (result.kind !== "error") throw new Error(`expected an error, got ${result.kind}`);
  return result.message;
}

describe("flag syntax", () => {
  test("-name and --name are the same", async () => {
    expect((await ok(["-n", "3"])).values.get<number>("n")).toBe(3);
    expect((await ok(["--n", "3"])).values.get<number>("n")).toBe(3);
    expect((await ok(["--n=4"])).values.get<number>("n")).toBe(4);
    expect((await ok(["-n=4"])).values.get<number>("n")).toBe(4);
  });

  test("defaults when not given", async () => {
    const { values } = await ok([]);
    expect(values.get<boolean>("b")).toBe(false);
    expect(values.get<number>("n")).toBe(-1);
    expect(values.get<number>("u")).toBe(0);
    expect(values.get<string>("s")).toBe("tun0");
    expect(values.get<number>("d")).toBe(5000);
    expect(values.get<string[]>("L")).toEqual([]);
  });

  test("a non-boolean flag takes the next argument even if it starts with -", async () => {
    expect((await ok(["-n", "-5"])).values.get<number>("n")).toBe(-5);
    expect((await ok(["-s", "-quiet"])).values.get<string>("s")).toBe("-quiet");
    expect((await ok(["-s", "--"])).values.get<string>("s")).toBe("--");
  });

  test("the value after = may contain = and be empty", async () => {
    expect((await ok(["-s=a=b"])).values.get<string>("s")).toBe("a=b");
    expect((await ok(["-s="])).values.get<string>("s")).toBe("");
  });

  test("later values win, repeatable flags collect in order", async () => {
    const { values } = await ok(["-s", "a", "-s", "b", "-L", "x", "--L=y", "-L", "z"]);
    expect(values.get<string>("s")).toBe("b");
    expect(values.get<string[]>("L")).toEqual(["X", "Y", "Z"]);
  });

  test.each(["1", "t", "T", "true", "TRUE", "True"])("boolean -b=%s is true", async (text) => {
    expect((await ok([`-b=${text}`])).values.get<boolean>("b")).toBe(true);
  });

  test.each(["0", "f", "F", "false", "FALSE", "False"])("boolean -b=%s is false", async (text) => {
    expect((await ok(["-b", `-b=${text}`])).values.get<boolean>("b")).toBe(false);
  });

  test("a boolean never takes the next argument: `-quiet false` stops parsing", async () => {
    const result = await ok(["-quiet", "false", "-s", "X"]);
    expect(result.values.get<boolean>("quiet")).toBe(true);
    expect(result.values.get<string>("s")).toBe("tun0");
    expect(result.positional).toEqual(["false", "-s", "X"]);
  });
});

describe("where parsing stops", () => {
  test.each([
    [["a", "-b"], ["a", "-b"]],
    [["-b", "a", "-n", "1"], ["a", "-n", "1"]],
    [["-", "-b"], ["-", "-b"]],
    [["-b", "--", "-n", "1"], ["-n", "1"]],
    [["--", "--"], ["--"]],
    [["-b", "--"], []],
    [[""], [""]],
  ])("%j leaves %j", async (args, positional) => {
    expect((await ok(args)).positional).toEqual(positional);
  });
});

describe("errors, in Go's words", () => {
  test.each([
    [["---x"], "bad flag syntax: ---x"],
    [["-=x"], "bad flag syntax: -=x"],
    [["--=x"], "bad flag syntax: --=x"],
    [["-nope"], "flag provided but not defined: -nope"],
    [["--nope=1"], "flag provided but not defined: -nope"],
    [["-n"], "flag needs an argument: -n"],
    [["--s"], "flag needs an argument: -s"],
    [["-b=maybe"], 'invalid boolean value "maybe" for -b: parse error'],
    [["--b="], 'invalid boolean value "" for -b: parse error'],
    [["-n", "x"], 'invalid value "x" for flag -n: parse error'],
    [["--n", "99999999999999999999"], 'invalid value "99999999999999999999" for flag -n: value out of range'],
    [["-u", "-1"], 'invalid value "-1" for flag -u: parse error'],
    [["-u", "18446744073709551616"], 'invalid value "18446744073709551616" for flag -u: value out of range'],
    [["-d", "5"], 'invalid value "5" for flag -d: parse error'],
    [["-d", "99999999999h"], 'invalid value "99999999999h" for flag -d: parse error'],
    [["--L", "bad"], 'invalid value "bad" for flag -L: custom failure'],
  ])("%j", async (args, message) => {
    expect(await errorOf(args)).toBe(message);
  });

  test("the value is %q-quoted: printable Unicode raw, controls escaped", async () => {
    const set = new FlagSet("p").define({
      name: "L",
      kind: "value",
      usage: "",
      parse: () => {
        throw new Error("x");
      },
    });
    expect(await set.parse(["--L", "notahostó\n"])).toEqual({
      kind: "error",
      message: 'invalid value "notahostó\\n" for flag -L: x',
    });
  });

  test.each([["-h"], ["-help"], ["--help"], ["--h"], ["-h=1"]])("%s asks for the usage", async (arg) => {
    expect(await parse([arg])).toEqual({ kind: "help" });
  });

  test("-h is an ordinary flag when defined", async () => {
    const set = new FlagSet("p").define({ name: "h", kind: "bool", usage: "help me" });
    const result = await set.parse(["-h"]);
    expect(result.kind).toBe("ok");
  });

  test("flags are handled in order and the first error stops parsing", async () => {
    const seen: string[] = [];
    const set = new FlagSet("p")
      .define({
        name: "a",
        kind: "value",
        usage: "",
        parse: async (text) => {
          // The slower lookup comes first: order must still be kept.
          await Bun.sleep(text === "slow" ? 20 : 0);
          seen.push(text);
          if (text === "fail") throw new Error("first failure");
          return text;
        },
        repeatable: true,
      })
      .define({ name: "b", kind: "int", usage: "" });
    expect(await set.parse(["-a", "slow", "-a", "fast"])).toMatchObject({ kind: "ok" });
    expect(seen).toEqual(["slow", "fast"]);
    seen.length = 0;
    const failed = await set.parse(["-a", "fail", "-b", "nope", "-a", "never"]);
    expect(failed).toEqual({ kind: "error", message: 'invalid value "fail" for flag -a: first failure' });
    expect(seen).toEqual(["fail"]);
    const earlier = await set.parse(["-b", "nope", "-a", "never"]);
    expect(earlier).toEqual({ kind: "error", message: 'invalid value "nope" for flag -b: parse error' });
    expect(seen).toEqual(["fail"]);
  });

  test("isSet records flags the user gave, even when set to the default", async () => {
    const { values } = await ok(["-b=false", "-n", "-1"]);
    expect(values.isSet("b")).toBe(true);
    expect(values.isSet("n")).toBe(true);
    expect(values.isSet("quiet")).toBe(false);
  });
});

describe("usage text", () => {
  test("Go's PrintDefaults layout", () => {
    expect(sampleSet().usage()).toBe(
      [
        "Usage of prog:",
        "  -L value",
        "    \ta list",
        "  -b\ta boolean",
        "  -d duration",
        "    \ta duration (default 5s)",
        "  -n int",
        "    \ta number (default -1)",
        "  -quiet",
        "    \tbe quiet",
        "  -s string",
        '    \ta string (default "tun0")',
        "  -u uint",
        "    \tunsigned",
        "",
      ].join("\n"),
    );
  });

  test("an unnamed set says Usage:", () => {
    expect(new FlagSet("").usage()).toBe("Usage:\n");
  });

  test("a backquoted word is the type word; newlines are indented", () => {
    const set = new FlagSet("p")
      .define({ name: "addr", kind: "string", usage: "listen on `host:port`\nsecond line" })
      .define({ name: "x", kind: "value", usage: "custom", typeWord: "spec", parse: (t) => t })
      .define({ name: "y", kind: "value", usage: "shown", defaultText: "abc", parse: (t) => t })
      .define({ name: "z", kind: "value", usage: "zero", defaultText: "<nil>", zeroText: "<nil>", parse: (t) => t })
      .define({ name: "q", kind: "string", default: 'say "hi"', usage: "quoted" });
    expect(set.printDefaults()).toBe(
      [
        "  -addr host:port",
        "    \tlisten on host:port",
        "    \tsecond line",
        "  -q string",
        '    \tquoted (default "say \\"hi\\"")',
        "  -x spec",
        "    \tcustom",
        "  -y value",
        "    \tshown (default abc)",
        "  -z value",
        "    \tzero",
        "",
      ].join("\n"),
    );
  });

  test("unquoteUsage with a single backquote keeps the type word", () => {
    expect(unquoteUsage({ name: "a", kind: "int", usage: "one ` quote" })).toEqual({
      typeWord: "int",
      usage: "one ` quote",
    });
    expect(unquoteUsage({ name: "a", kind: "bool", usage: "a `flag`" })).toEqual({
      typeWord: "flag",
      usage: "a flag",
    });
  });

  test("flags sort by bytes: capitals first", () => {
    const set = new FlagSet("p");
    for (const name of ["b", "a", "Z", "A", "a-b", "a0"]) set.define({ name, kind: "string", usage: name });
    const order = set
      .printDefaults()
      .split("\n")
      .filter((line) => line.startsWith("  -"))
      .map((line) => line.slice(3).split(" ")[0]);
    expect(order).toEqual(["A", "Z", "a", "a-b", "a0", "b"]);
  });

  test("a redefined flag is a programming error", () => {
    expect(() =>
      new FlagSet("p").define({ name: "a", kind: "bool", usage: "" }).define({ name: "a", kind: "bool", usage: "" }),
    ).toThrow("flag redefined: a");
  });
});
