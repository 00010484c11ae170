// Starting the namespace helper under util-linux's nsenter (device mode,
// acquire.ts) or unshare (run mode, run-mode.ts), and the failures the two
// share before the helper has reported: the tool missing or not starting,
// the helper not answering, hanging up, or sending nonsense.
import { SysError, ENOENT, ETIMEDOUT } from "../../ffi/libc.ts";
import { DeviceError, classifyToolFailure, toolMissingHint, toolMissingText, type EnvFacts } from "./errors.ts";
import { lastLine, reap, spawnHelper, type SpawnOptions, type SpawnedHelper } from "./spawn.ts";

/** How long the helper may take to report when the caller sets no timeout. */
export const HELPER_TIMEOUT_MS = 30_000;

type Tool = "nsenter" | "unshare";
/** The -netns path ("" in run mode) and interface name the errors name. */
type Where = { netns: string; ifname: string };


/** The tool's path in `env`'s PATH; a DeviceError (tool-missing) if it is not there. */
export function findTool(tool: Tool, env: Record<string, string | undefined>, where: Where): string {
  const path = Bun.which(tool, { PATH: env.PATH ?? "" });
  if (path === null) {
    throw new DeviceError({ ...where, step: "helper", sys: new SysError("exec", ENOENT, tool), cause: "tool-missing", hint: toolMissingHint(tool), text: toolMissingText(tool) });
  }
  return path;
}

/** spawnHelper() for an argv that starts with the path findTool() gave; failing to start is a DeviceError. */
export function spawnUnderTool(tool: Tool, argv: string[], o: SpawnOptions, where: Where): SpawnedHelper {
  const path = argv[0]!;
  try {
    return spawnHelper(argv, o);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new DeviceError({
      ...where,
      step: "helper",
      sys: new SysError("exec", err.errno ? Math.abs(err.errno) : ENOENT, path),
      cause: err.code === "ENOENT" ? "tool-missing" : "helper-failed",
      hint: err.code === "ENOENT" ? toolMissingHint(tool) : `cannot start ${path}: ${err.message}`,
      ...(err.code === "ENOENT" ? { text: toolMissingText(tool) } : {}),
    });
  }
}

export function helperTimeoutError(where: Where, timeoutMs: number): DeviceError {
  return new DeviceError({
    ...where,
    step: "helper",
    sys: new SysError("recvmsg", ETIMEDOUT, "namespace helper"),
    cause: "helper-timeout",
    hint: `the namespace helper did not answer within ${Math.round(timeoutMs / 1000)} s`,
  });
}

export function helperProtocolError(where: Where): DeviceError {
  return new DeviceError({ ...where, step: "helper", sys: null, cause: "helper-failed", hint: "the namespace helper sent an unexpected message" });
}

/**
 * Why the helper hung up without sending the device, once it has exited:
 * before it started, the tool failed (its stderr says how); after, the
 * helper died without a report.
 */
export async function hungUpError(
  h: SpawnedHelper,
  tool: Tool,
  started: boolean,
  facts: EnvFacts,
  where: Where,
  pid: number | null,
): Promise<DeviceError> {
  const status = await reap(h.proc, 5000);
  const text = await h.stderr;
  if (!started) return classifyToolFailure(tool, text, facts, { ...where, pid });
  return new DeviceError({
    ...where,
    step: "helper",
    sys: null,
    cause: "helper-failed",
    hint: `the namespace helper exited (status ${status}) without a report${text.trim() ? `: ${lastLine(text)}` : ""}`,
  });
}
