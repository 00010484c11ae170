// Shared setup of the port-forwarding integration tests
// (test/integration/forward/): one host namespace carrying extra
// "non-loopback" addresses on lo (192.0.2.1, 2001:db8::1), one guest
// namespace, and a socket agent in each (test/support/net-agent.ts). A test
// file creates the environment once; stacks are started per test (only one
// can hold the guest's tap at a time) and stopped after it:
//
//   let env: ForwardEnv;
//   beforeAll(async () => { env = await createForwardEnv(); });
//   afterEach(stopStacks);
//   afterAll(() => destroyForwardEnv(env));
import { GuestNs, HostNs } from "./netns.ts";
import { NetAgent } from "./net-agent.ts";
import { StackProcess } from "./stack.ts";

/** Host-side addresses that are neither loopback nor in the static deny list. */
export const HOST_V4 = "192.0.2.1";
export const HOST_V6 = "2001:db8::1";

export interface ForwardEnv {
  host: HostNs;
  guest: GuestNs;
  /** Agent in the host namespace (host clients and host servers). */
  h: NetAgent;
  /** Agent in the guest namespace. */
  g: NetAgent;
}

export async function createForwardEnv(): Promise<ForwardEnv> {
  const host = await HostNs.create([HOST_V4, HOST_V6]);
  const guest = await GuestNs.create();
  const [h, g] = await Promise.all([NetAgent.start(host, "host"), NetAgent.start(guest, "guest")]);
  return { host, guest, h, g };
}

export async function destroyForwardEnv(env: ForwardEnv | undefined): Promise<void> {
  if (env === undefined) return;
  await env.h.destroy();
  await env.g.destroy();
  await env.guest.destroy();
  await env.host.destroy();
}

const running: StackProcess[] = [];

/** Kills the stacks started by startStack/runStackToExit: call it in the file's afterEach. */
export async function stopStacks(): Promise<void> {
  for (const s of running.splice(0)) await s.destroy();
}

/** Starts the stack on the env's guest, inside its host namespace. */
export async function startStack(env: ForwardEnv, args: string[]): Promise<StackProcess> {
  const s = await StackProcess.start(["-netns", env.guest.netnsPath, ...args], { host: env.host });
  running.push(s);
  return s;
}

/** Runs the stack expecting it to exit (a startup failure); returns code and output. */
export async function runStackToExit(env: ForwardEnv, args: string[], withNetns = true): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const s = StackProcess.spawn(withNetns ? ["-netns", env.guest.netnsPath, ...args] : args, { host: env.host });
  running.push(s);
  const code = await s.exitCode(15_000);
  return { code, stdout: s.stdout.lines.filter((l) => l !== ""), stderr: s.stderr.lines.filter((l) => l !== "") };
}

/** The port at the end of a listen line ("The suite takes the port after the last `:`"). */
export function portOf(line: string): number {
  return Number(line.slice(line.lastIndexOf(":") + 1));
}

/** Waits for the next `count` "local-fwd Local ... listen" lines; returns their ports. */
export async function listenPorts(stack: StackProcess, count: number): Promise<{ ports: number[]; lines: string[] }> {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(await stack.stdout.waitFor(/^\[\+\] local-fwd Local (PP )?listen /));
  return { ports: lines.map(portOf), lines };
}

/**
 * The non-empty stdout lines once there are at least `count` of them.
 * stdout and stderr are separate pipes: "Slirpnetstack started" on stderr
 * can be read before the startup lines on stdout, so wait for them.
 */
export async function stdoutLines(stack: StackProcess, count: number, timeoutMs = 5000): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const lines = stack.stdout.lines.filter((l) => l !== "");
    if (lines.length >= count || Date.now() > end) return lines;
    await Bun.sleep(5);
  }
}

/** Escapes text for use inside a RegExp. */
export function re(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Go-style "IP:port" ("[v6]:port"). */
export function hp(ip: string, port: number | string): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Distinct payload bytes for one exchange. */
export function payload(tag: string, size = 0): Uint8Array {
  const head = Buffer.from(`${tag}|`, "latin1");
  const out = new Uint8Array(Math.max(size, head.length));
  out.set(head);
  let x = 0x9e3779b9 ^ tag.length;
  for (let i = head.length; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
