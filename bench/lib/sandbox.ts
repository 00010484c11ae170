// Runs a script again as PID 1 of a private PID, mount and network
// namespace (unshare --kill-child), so that nothing it starts can reach
// beyond the namespaces it makes, and everything dies with it. A signal
// to us is passed on to the script, which prints what it has and cleans
// up; if that hangs, killing unshare ends the whole PID namespace.
import { readFileSync } from "node:fs";

/** Starts `script` (with `args`) in the sandbox with `env`; resolves to its exit code. */
export async function runInSandbox(script: string, args: readonly string[], env: Record<string, string | undefined>, killAfterMs: number): Promise<number> {
  const child = Bun.spawn({
    cmd: ["unshare", "--net", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc", "--", process.execPath, script, ...args],
    env,
    stdio: ["inherit", "inherit", "inherit"],
  });
  let killer: ReturnType<typeof setTimeout> | null = null;
  const onSignal = (): void => {
    // unshare itself blocks SIGINT/SIGTERM: the script (its child) gets it.
    try {
      for (const pid of readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/)) {
        if (pid) process.kill(Number(pid), "SIGTERM");
      }
    } catch {
      // already gone
    }
    killer ??= setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  const code = await child.exited;
  if (killer) clearTimeout(killer);
  return code;
}
