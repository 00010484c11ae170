// The host side: what happens to guest flows in the real world. It answers
// the engine's questions about new flows (StackEvents), and owns every
// host-side piece: routing policy, forwards, metrics.
import type { Config } from "../cli/options.ts";
import type { Resolver } from "./resolve.ts";
import type { Logger } from "./log.ts";
import type { StackRuntime } from "./runtime.ts";
import type { Stack, StackEvents } from "../stack/stack.ts";
import type { Stats } from "../stack/stats.ts";
import type { TcpConnection } from "../stack/tcp/connection.ts";
import type { UdpFlow } from "../stack/udp.ts";

export class Host implements StackEvents {
  private stack: Stack | null = null;

  constructor(
    readonly cfg: Config,
    readonly log: Logger,
    readonly stats: Stats,
    readonly runtime: StackRuntime,
    readonly resolver: Resolver,
  ) {}

  attach(stack: Stack): void {
    this.stack = stack;
  }

  async startRoutes(): Promise<void> {}

  async startMetrics(_pid: number, _fail: (err: string) => never): Promise<void> {}

  stopMetrics(_pid: number): void {}

  async startLocalForwards(_fail: (line: string) => never): Promise<void> {}

  async startRemoteForwards(_fail: (line: string) => never): Promise<void> {}

  started(): void {}

  tcpConnectRequest(conn: TcpConnection): void {
    this.stack!.tcp.refuse(conn, this.runtime.now());
  }

  udpNewFlow(_flow: UdpFlow): boolean {
    return false;
  }
}
