// The fd numbers a supervisor hands us on the command line (-fd,
// -ready-fd, -exit-fd), read before the flags are parsed for real: the
// runtime-env re-exec must keep them open, and Bun marks every fd from 4
// up close-on-exec as it starts.
import { parseGoInt } from "./gostrconv.ts";

/** The flags whose value is the number of an fd the parent passed us. */
const FD_FLAGS: ReadonlySet<string> = new Set(["fd", "ready-fd", "exit-fd"]);

/**
 * The fd numbers that -fd, -ready-fd and -exit-fd give in args, read the
 * way Go's flag package reads them (-name or --name, the value after "="
 * or as the next argument, numbers as strconv.ParseInt(s, 0, 64)) up to
 * "--". The flags are not parsed yet: an argument that only looks like
 * one of these (the value of another flag, a word of the command) makes
 * one more open fd survive the execve, close-on-exec again after it.
 */
export function passedFds(args: readonly string[]): number[] {
  const fds: number[] = [];
  for (let i = 0; i < args.length && args[i] !== "--"; i++) {
    const arg = args[i]!;
    if (arg[0] !== "-") continue;
    const name = arg.slice(arg[1] === "-" ? 2 : 1);
    const eq = name.indexOf("=");
    const flag = eq < 0 ? name : name.slice(0, eq);
    if (!FD_FLAGS.has(flag)) continue;
    const text = eq < 0 ? args[++i] : name.slice(eq + 1);
    if (text === undefined) break;
    try {
      const fd = Number(parseGoInt(text, 0, 64));
      if (fd >= 0 && fd <= 0x7fffffff) fds.push(fd);
    } catch {
      // Not a number: the flag parser reports it after the execve.
    }
  }
  return fds;
}
