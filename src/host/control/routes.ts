// The host's "local routes" (docs/compatibility.md, Host routes):
// destinations of every route in the main and local tables, both families,
// read now and every 30 s in the host namespace. A destination they cover is "the host" for
// -enable-host; anything else is "the internet" for -enable-routing.
import { dumpLocalRoutes } from "../../../ffi/netlink.ts";
import type { IP } from "../../wire/addr.ts";
import { PrefixSet } from "./prefix.ts";

export const REFRESH_MS = 30_000;

export class LocalRoutes {
  private readonly set = new PrefixSet([]);
  private timer: ReturnType<typeof setInterval> | null = null;

  /** `report` prints an error line (through the logger, so it never blocks). */
  constructor(private readonly report: (line: string) => void) {}

  /** Reads the tables; errors keep the previous set (and are reported once). */
  refresh(): void {
    try {
      this.set.replace(dumpLocalRoutes());
    } catch (e) {
      if (this.set.size === 0) this.report(`[!] Reading local routes failed: ${(e as Error).message}`);
    }
  }

  start(): void {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  covers(ip: IP): boolean {
    return this.set.contains(ip);
  }

  get size(): number {
    return this.set.size;
  }
}
