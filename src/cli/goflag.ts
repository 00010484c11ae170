// A faithful re-implementation of Go's `flag` package in ContinueOnError
// mode (docs/compatibility.md, Parsing rules and Usage text).
//
// Scripts written for the Go program depend on its exact behaviour: `-x`
// and `--x` are the same, `-x=v` or `-x v`, booleans never take a separate
// argument (`-quiet false` makes "false" positional and stops parsing), a
// non-boolean flag takes the next argument even if it starts with `-`, and
// parsing stops at the first non-flag, at a lone `-`, or after `--`. Error
// messages and the usage text are Go's, byte for byte.
//
// Flag values may need DNS (`-allow` host names, `-m` and `-source-ipv4/6`
// are resolved while parsing, as upstream does), so `parse` is async. Flags
// are still handled strictly in order and parsing stops at the first error,
// as Go does: a later bad flag is never reported.
import { formatGoDuration, parseGoDuration } from "./duration.ts";
import { GoNumError, parseGoBool, parseGoInt, parseGoUint } from "./gostrconv.ts";
import { goQuote } from "../host/control/goquote.ts";

export type FlagKind = "bool" | "int" | "uint" | "string" | "duration" | "value";

/** Value types per kind: bool boolean, int/uint number, string string, duration milliseconds. */
export interface FlagDefinition {
  name: string;
  kind: FlagKind;
  usage: string;
  /** Initial value (kind-typed; for "value" anything the caller likes). */
  default?: unknown;
  /**
   * "value" kind: turns the text into a value (or throws an Error whose
   * message becomes ERR in `invalid value "V" for flag -NAME: ERR`).
   */
  parse?: (text: string) => unknown | Promise<unknown>;
  /** Every occurrence adds to a list (-L, -R, -allow, -deny). */
  repeatable?: boolean;
  /** Type word shown in the usage when the usage text has no `backquoted` word. */
  typeWord?: string;
  /** "value" kind: Go's DefValue, the default as its String() prints it. */
  defaultText?: string;
  /** "value" kind: what String() prints for the zero value (Go's isZeroValue). */
  zeroText?: string;
}

export type FlagParseResult =
  | { kind: "ok"; values: ParsedFlags; positional: string[] }
  | { kind: "help" }
  | { kind: "error"; message: string };

/** The values after parsing, plus which flags the user set (Go's "actual"). */
export class ParsedFlags {
  constructor(
    private readonly values: ReadonlyMap<string, unknown>,
    private readonly setByUser: ReadonlySet<string>,
  ) {}

  get<T>(name: string): T {
    if (!this.values.has(name)) throw new Error(`flag -${name} is not defined`);
    return this.values.get(name) as T;
  }

  /** Whether the flag appeared on the command line (even as -x=false). */
  isSet(name: string): boolean {
    return this.setByUser.has(name);
  }
}

export class FlagSet {
  private readonly formal = new Map<string, FlagDefinition>();

  /** `name` is what the usage header shows: "Usage of NAME:". */
  constructor(readonly name: string) {}

  define(definition: FlagDefinition): this {
    if (this.formal.has(definition.name)) {
      throw new Error(`flag redefined: ${definition.name}`);
    }
    if (definition.kind === "value" && definition.parse === undefined) {
      throw new Error(`flag -${definition.name}: a "value" flag needs parse()`);
    }
    this.formal.set(definition.name, definition);
    return this;
  }

  lookup(name: string): FlagDefinition | undefined {
    return this.formal.get(name);
  }

  async parse(args: readonly string[]): Promise<FlagParseResult> {
    const values = new Map<string, unknown>();
    for (const flag of this.formal.values()) {
      values.set(flag.name, flag.repeatable ? [] : initialValue(flag));
    }
    const setByUser = new Set<string>();

    let rest = args.slice();
    for (;;) {
      if (rest.length === 0) break;
      const arg = rest[0]!;
      if (arg.length < 2 || arg[0] !== "-") break; // a positional or a lone "-"
      let dashes = 1;
      if (arg[1] === "-") {
        dashes = 2;
        if (arg.length === 2) {
          rest = rest.slice(1); // "--" ends the flags and is consumed
          break;
        }
      }
      let name = arg.slice(dashes);
      if (name.length === 0 || name[0] === "-" || name[0] === "=") {
        return { kind: "error", message: `bad flag syntax: ${arg}` };
      }
      rest = rest.slice(1);

      let hasValue = false;
      let text = "";
      const equals = name.indexOf("=", 1);
      if (equals > 0) {
        text = name.slice(equals + 1);
        hasValue = true;
        name = name.slice(0, equals);
      }

      const flag = this.formal.get(name);
      if (flag === undefined) {
        if (name === "help" || name === "h") return { kind: "help" };
        return { kind: "error", message: `flag provided but not defined: -${name}` };
      }

      if (flag.kind === "bool") {
        if (hasValue) {
          let parsed: boolean;
          try {
            parsed = parseGoBool(text);
          } catch {
            return {
              kind: "error",
              message: `invalid boolean value ${goQuote(text)} for -${name}: parse error`,
            };
          }
          values.set(name, parsed);
        } else {
          values.set(name, true);
        }
      } else {
        if (!hasValue && rest.length > 0) {
          text = rest[0]!;
          rest = rest.slice(1);
          hasValue = true;
        }
        if (!hasValue) return { kind: "error", message: `flag needs an argument: -${name}` };
        let parsed: unknown;
        try {
          parsed = await parseValue(flag, text);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          return {
            kind: "error",
            message: `invalid value ${goQuote(text)} for flag -${name}: ${reason}`,
          };
        }
        if (flag.repeatable) (values.get(name) as unknown[]).push(parsed);
        else values.set(name, parsed);
      }
      setByUser.add(name);
    }
    return { kind: "ok", values: new ParsedFlags(values, setByUser), positional: rest };
  }

  /** Go's default usage: "Usage of NAME:" then PrintDefaults (docs/compatibility.md, Usage text). */
  usage(): string {
    const header = this.name === "" ? "Usage:\n" : `Usage of ${this.name}:\n`;
    return header + this.printDefaults();
  }

  /** Go flag.PrintDefaults: flags in byte order, two lines each. */
  printDefaults(): string {
    const names = [...this.formal.keys()].sort(compareBytes);
    let out = "";
    for (const name of names) {
      const flag = this.formal.get(name)!;
      const { typeWord, usage } = unquoteUsage(flag);
      let line = `  -${name}`;
      if (typeWord.length > 0) line += " " + typeWord;
      // Go puts the usage of a one-letter boolean flag on the same line.
      if (utf8Length(line) <= 4) line += "\t";
      else line += "\n    \t";
      line += usage.replaceAll("\n", "\n    \t");
      const defaultText = defaultValueText(flag);
      if (defaultText !== zeroValueText(flag)) {
        line += flag.kind === "string" ? ` (default ${goQuote(defaultText)})` : ` (default ${defaultText})`;
      }
      out += line + "\n";
    }
    return out;
  }
}

/**
 * Go flag.UnquoteUsage: a `backquoted` word in the usage is the type word
 * (and loses its quotes); otherwise the kind's type word.
 */
export function unquoteUsage(flag: FlagDefinition): { typeWord: string; usage: string } {
  const usage = flag.usage;
  const open = usage.indexOf("`");
  if (open >= 0) {
    const close = usage.indexOf("`", open + 1);
    if (close >= 0) {
      const typeWord = usage.slice(open + 1, close);
      return { typeWord, usage: usage.slice(0, open) + typeWord + usage.slice(close + 1) };
    }
  }
  return { typeWord: flag.typeWord ?? defaultTypeWord(flag.kind), usage };
}

function defaultTypeWord(kind: FlagKind): string {
  switch (kind) {
    case "bool":
      return "";
    case "int":
      return "int";
    case "uint":
      return "uint";
    case "string":
      return "string";
    case "duration":
      return "duration";
    case "value":
      return "value";
  }
}

function initialValue(flag: FlagDefinition): unknown {
  if (flag.default !== undefined) return flag.default;
  switch (flag.kind) {
    case "bool":
      return false;
    case "int":
    case "uint":
    case "duration":
      return 0;
    case "string":
      return "";
    case "value":
      return null;
  }
}

async function parseValue(flag: FlagDefinition, text: string): Promise<unknown> {
  switch (flag.kind) {
    case "int":
      return Number(goNumber(() => parseGoInt(text, 0, 64)));
    case "uint":
      return Number(goNumber(() => parseGoUint(text, 0, 64)));
    case "duration":
      try {
        return parseGoDuration(text);
      } catch {
        throw new Error("parse error");
      }
    case "string":
      return text;
    case "value":
      return await flag.parse!(text);
    case "bool":
      throw new Error("unreachable: booleans are handled by the caller");
  }
}

/** Go's numError: syntax errors read "parse error", range errors "value out of range". */
function goNumber(parse: () => bigint): bigint {
  try {
    return parse();
  } catch (error) {
    if (error instanceof GoNumError && error.kind === "value out of range") {
      throw new Error("value out of range");
    }
    throw new Error("parse error");
  }
}

/** Go's DefValue: the default as the flag's String() prints it. */
function defaultValueText(flag: FlagDefinition): string {
  switch (flag.kind) {
    case "bool":
      return flag.default === true ? "true" : "false";
    case "int":
    case "uint":
      return String(flag.default ?? 0);
    case "string":
      return String(flag.default ?? "");
    case "duration":
      return formatGoDuration(Number(flag.default ?? 0));
    case "value":
      return flag.defaultText ?? "";
  }
}

/** Go's isZeroValue: the String() of a zero value of the flag's type. */
function zeroValueText(flag: FlagDefinition): string {
  switch (flag.kind) {
    case "bool":
      return "false";
    case "int":
    case "uint":
      return "0";
    case "string":
      return "";
    case "duration":
      return "0s";
    case "value":
      return flag.zeroText ?? "";
  }
}

function compareBytes(a: string, b: string): number {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) if (ea[i] !== eb[i]) return ea[i]! - eb[i]!;
  return ea.length - eb.length;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
