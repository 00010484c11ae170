// A tiny authoritative DNS server for tests.
//
// It listens on UDP and TCP (same port, RFC 1035 §4.2 framing on TCP) on
// 127.0.0.1 or ::1, and answers from a record table you give it: A, AAAA,
// CNAME (followed, as a real server does) and SRV. A known name without a
// record of the asked type gets an empty NOERROR answer; an unknown name
// gets NXDOMAIN. Per name, UDP replies can be made truncated (TC set, no
// answers) so a client must retry over TCP; the whole server can be made
// silent to test timeouts. Every query is logged.
//
//   const dns = await TestDnsServer.start({
//     records: [
//       { name: "tcp.echo.server", type: "SRV", port: 7, target: "echo.test." },
//       { name: "echo.test", type: "A", address: "127.0.0.1" },
//     ],
//   });
//   // ... use `${dns.host}:${dns.port}`, e.g. a label `tcp.echo.server@srv-${dns.port}`
//   await dns.stop();
//
// Uses the project's codec (src/wire/dns.ts) for both directions.
import type { Socket as TcpSocket, TCPSocketListener, udp as BunUdp } from "bun";
import {
  DnsClass,
  DnsRcode,
  DnsType,
  encodeDnsMessage,
  parseDnsMessage,
  type DnsRecord,
} from "../../src/wire/dns.ts";

export type TestDnsRecord =
  | { name: string; type: "A"; address: string; ttl?: number }
  | { name: string; type: "AAAA"; address: string; ttl?: number }
  | { name: string; type: "CNAME"; target: string; ttl?: number }
  | { name: string; type: "SRV"; port: number; target: string; priority?: number; weight?: number; ttl?: number };

export interface TestDnsServerOptions {
  /** Address to listen on. Default "127.0.0.1". */
  host?: "127.0.0.1" | "::1";
  records?: TestDnsRecord[];
  /** Names whose UDP replies are truncated (TC set, no records). */
  truncateOverUdp?: string[];
}

export interface LoggedQuery {
  name: string;
  type: number;
  transport: "udp" | "tcp";
}

interface TcpConnectionState {
  pending: Uint8Array;
}

const TYPE_NUMBERS: Readonly<Record<TestDnsRecord["type"], number>> = {
  A: DnsType.A,
  AAAA: DnsType.AAAA,
  CNAME: DnsType.CNAME,
  SRV: DnsType.SRV,
};

function canonical(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

export class TestDnsServer {
  /** Every query received, in order. */
  readonly queries: LoggedQuery[] = [];
  private records: TestDnsRecord[];
  private readonly truncated = new Set<string>();
  private silent = false;
  private stopped = false;

  private constructor(
    readonly host: "127.0.0.1" | "::1",
    readonly port: number,
    private readonly udp: BunUdp.Socket<"uint8array">,
    private readonly tcp: TCPSocketListener<TcpConnectionState>,
    options: TestDnsServerOptions,
  ) {
    this.records = [...(options.records ?? [])];
    for (const name of options.truncateOverUdp ?? []) this.truncated.add(canonical(name));
  }

  /** Starts the server on an ephemeral port shared by UDP and TCP. */
  static async start(options: TestDnsServerOptions = {}): Promise<TestDnsServer> {
    const host = options.host ?? "127.0.0.1";
    // The UDP port is picked first; TCP must get the same number, which
    // another process may hold: then try again with a new UDP port.
    for (let attempt = 0; attempt < 20; attempt++) {
      let server: TestDnsServer | null = null;
      const udp = await Bun.udpSocket({
        hostname: host,
        port: 0,
        binaryType: "uint8array",
        socket: {
          data(socket, data, port, address) {
            const reply = server?.answer(data, "udp");
            if (reply) socket.send(reply, port, address);
          },
        },
      });
      let tcp: TCPSocketListener<TcpConnectionState>;
      try {
        tcp = Bun.listen<TcpConnectionState>({
          hostname: host,
          port: udp.port,
          socket: {
            open(socket) {
              socket.data = { pending: new Uint8Array(0) };
            },
            data(socket, chunk) {
              server?.onTcpData(socket, chunk);
            },
          },
        });
      } catch {
        udp.close();
        continue;
      }
      server = new TestDnsServer(host, udp.port, udp, tcp, options);
      return server;
    }
    throw new Error("TestDnsServer: could not get the same UDP and TCP port");
  }

  /** "HOST:PORT" as a `@srv-` label expects it ("[::1]:PORT" for IPv6). */
  get address(): string {
    return this.host.includes(":") ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  addRecord(record: TestDnsRecord): void {
    this.records.push(record);
  }

  setRecords(records: TestDnsRecord[]): void {
    this.records = [...records];
  }

  /** Truncate (or stop truncating) UDP replies for `name`. */
  setTruncated(name: string, truncated: boolean): void {
    if (truncated) this.truncated.add(canonical(name));
    else this.truncated.delete(canonical(name));
  }

  /** A silent server receives and logs queries but never answers. */
  setSilent(silent: boolean): void {
    this.silent = silent;
  }

  /** Closes both sockets; stopping twice is harmless. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.udp.close();
    this.tcp.stop(true);
  }

  private onTcpData(socket: TcpSocket<TcpConnectionState>, chunk: Uint8Array): void {
    const joined = new Uint8Array(socket.data.pending.length + chunk.length);
    joined.set(socket.data.pending);
    joined.set(chunk, socket.data.pending.length);
    let buffer = joined;
    while (buffer.length >= 2) {
      const length = (buffer[0]! << 8) | buffer[1]!;
      if (buffer.length < 2 + length) break;
      const reply = this.answer(buffer.subarray(2, 2 + length), "tcp");
      buffer = buffer.subarray(2 + length);
      if (reply) {
        const framed = new Uint8Array(2 + reply.length);
        framed[0] = reply.length >> 8;
        framed[1] = reply.length & 0xff;
        framed.set(reply, 2);
        socket.write(framed);
      }
    }
    socket.data.pending = buffer.slice();
  }

  /** The reply bytes for one query, or null to stay silent. */
  private answer(bytes: Uint8Array, transport: "udp" | "tcp"): Uint8Array | null {
    const parsed = parseDnsMessage(bytes);
    if (!parsed.ok || parsed.message.header.response) return null;
    const query = parsed.message;
    const question = query.questions[0];
    if (question !== undefined) this.queries.push({ name: question.name, type: question.type, transport });
    if (this.silent) return null;
    const header = {
      id: query.header.id,
      response: true,
      authoritative: true,
      recursionDesired: query.header.recursionDesired,
    };
    if (question === undefined || query.questions.length !== 1 || question.class !== DnsClass.IN) {
      return encodeDnsMessage({ header: { ...header, rcode: DnsRcode.FORMERR }, questions: query.questions });
    }
    if (transport === "udp" && this.truncated.has(canonical(question.name))) {
      return encodeDnsMessage({ header: { ...header, truncated: true }, questions: [question] });
    }
    const { rcode, answers } = this.lookup(question.name, question.type);
    return encodeDnsMessage({ header: { ...header, rcode }, questions: [question], answers });
  }

  private lookup(name: string, type: number): { rcode: number; answers: DnsRecord[] } {
    const answers: DnsRecord[] = [];
    let current = canonical(name);
    let known = false;
    for (let hops = 0; hops < 8; hops++) {
      const owned = this.records.filter((r) => canonical(r.name) === current);
      if (owned.length === 0) break;
      known = true;
      const exact = owned.filter((r) => TYPE_NUMBERS[r.type] === type);
      if (exact.length > 0) {
        answers.push(...exact.map((r) => toWire(current, r)));
        break;
      }
      const alias = owned.find((r) => r.type === "CNAME");
      if (alias === undefined || alias.type !== "CNAME") break;
      answers.push(toWire(current, alias));
      current = canonical(alias.target);
    }
    if (!known) return { rcode: DnsRcode.NXDOMAIN, answers: [] };
    return { rcode: DnsRcode.NOERROR, answers };
  }
}

function toWire(owner: string, record: TestDnsRecord): DnsRecord {
  const base = { name: owner, class: DnsClass.IN, ttl: record.ttl ?? 60 };
  switch (record.type) {
    case "A":
      return { ...base, type: DnsType.A, data: { kind: "a", address: record.address } };
    case "AAAA":
      return { ...base, type: DnsType.AAAA, data: { kind: "aaaa", address: record.address } };
    case "CNAME":
      return { ...base, type: DnsType.CNAME, data: { kind: "cname", target: record.target } };
    case "SRV":
      return {
        ...base,
        type: DnsType.SRV,
        data: {
          kind: "srv",
          priority: record.priority ?? 0,
          weight: record.weight ?? 0,
          port: record.port,
          target: record.target,
        },
      };
  }
}

