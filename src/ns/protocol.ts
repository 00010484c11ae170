// The helper's reports to the parent, one SOCK_SEQPACKET message each, as
// JSON. The device report carries the tap/tun fd (SCM_RIGHTS). Run mode's
// answer from the parent is a single byte.
import { SysError } from "../../ffi/libc.ts";
import type { DeviceStep } from "./errors.ts";

export type HelperMessage =
  /** The helper runs inside the namespaces (nsenter/unshare worked). */
  | { t: "started" }
  /** About to open the device (upstream's "[.] Opening tun interface" moment). */
  | { t: "opening" }
  /** Comes with the device fd. */
  | { t: "device"; kind: "tun" | "tap"; mtu: number; vnetHdr: boolean; offloads: number }
  /** A step failed; the helper exits after sending it. */
  | { t: "error"; step: DeviceStep; call: string; errno: number; detail?: string; command?: string };

/** Run mode: the parent's "start the command now" byte. */
export const GO_BYTE = 0x67; // "g"

export function encodeMessage(m: HelperMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m));
}

const STEPS: ReadonlySet<string> = new Set(["netns", "mtu", "open", "setup", "exec", "helper"]);

/** Parses a report; null for anything that is not one (a confused or foreign peer). */
export function decodeMessage(data: Uint8Array): HelperMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const m = v as Record<string, unknown>;
  switch (m.t) {
    case "started":
    case "opening":
      return { t: m.t };
    case "device":
      if ((m.kind !== "tun" && m.kind !== "tap") || typeof m.mtu !== "number" || typeof m.vnetHdr !== "boolean" || typeof m.offloads !== "number") {
        return null;
      }
      return { t: "device", kind: m.kind, mtu: m.mtu, vnetHdr: m.vnetHdr, offloads: m.offloads };
    case "error": {
      if (typeof m.step !== "string" || !STEPS.has(m.step) || typeof m.call !== "string" || typeof m.errno !== "number") return null;
      const out: HelperMessage = { t: "error", step: m.step as DeviceStep, call: m.call, errno: m.errno };
      if (typeof m.detail === "string") out.detail = m.detail;
      if (typeof m.command === "string") out.command = m.command;
      return out;
    }
    default:
      return null;
  }
}

/** The detail a SysError was built with ("open /dev/net/tun: EACCES" -> "/dev/net/tun"). */
export function sysErrorDetail(e: SysError): string | undefined {
  const prefix = `${e.call} `;
  const suffix = `: ${e.code}`;
  if (e.message.startsWith(prefix) && e.message.endsWith(suffix)) {
    return e.message.slice(prefix.length, e.message.length - suffix.length);
  }
  return undefined;
}

/** An error report for a failed step. Non-SysErrors become EIO with their message. */
export function errorReport(step: DeviceStep, e: unknown, command?: string): HelperMessage {
  if (e instanceof SysError) {
    const detail = sysErrorDetail(e);
    const m: HelperMessage = { t: "error", step, call: e.call, errno: e.errno };
    if (detail !== undefined) m.detail = detail;
    if (command !== undefined) m.command = command;
    return m;
  }
  return { t: "error", step, call: "helper", errno: 5 /*EIO*/, detail: String((e as Error)?.message ?? e) };
}
