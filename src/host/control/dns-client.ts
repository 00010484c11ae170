// A small DNS stub client: one question to one given server.
//
// Used for the `QUERY@srv-SERVER` labels of forward specs, where the SRV
// query (and the A/AAAA lookups of its target) go to a server named on
// the command line instead of the system's resolvers. The query goes over
// UDP from a connected socket, so an ICMP port-unreachable surfaces at once
// as ECONNREFUSED instead of a timeout; lost datagrams are retried with a
// per-attempt timeout; a reply with TC set is asked again over TCP with the
// 2-byte length prefix of RFC 1035 §4.2.2 (upstream's Go resolver dials UDP
// even for that retry; doing it right costs nothing).
//
// A reply is accepted only if it is a response, carries the ID of one of
// our attempts, and repeats our question (RFC 5452 §9.1).
import type { Socket as TcpSocket } from "bun";
import { isIP } from "node:net";
import {
  DnsClass,
  DnsType,
  encodeDnsQuery,
  parseDnsMessage,
  type DnsMessage,
  type DnsRecord,
} from "../../wire/dns.ts";

export interface DnsServerAddress {
  /** An IP literal (IPv4 or IPv6, no brackets). */
  host: string;
  port: number;
}

export interface DnsQueryOptions {
  /** How long to wait for each UDP attempt, and for the whole TCP exchange. Default 2000 ms. */
  timeoutMs?: number;
  /** UDP attempts before giving up. Default 2. */
  attempts?: number;
}

export type DnsQueryFailure = "timeout" | "refused" | "network" | "malformed";

export class DnsQueryError extends Error {
  constructor(
    readonly reason: DnsQueryFailure,
    message: string,
  ) {
    super(message);
    this.name = "DnsQueryError";
  }
}

const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_ATTEMPTS = 2;

/**
 * Asks `server` one question and returns its reply, whatever the RCODE.
 * Throws DnsQueryError when no acceptable reply arrives.
 */
export async function queryDns(
  server: DnsServerAddress,
  name: string,
  type: number,
  options: DnsQueryOptions = {},
): Promise<DnsMessage> {
  if (isIP(server.host) === 0) throw new DnsQueryError("network", `DNS server is not an IP address: ${server.host}`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const attempts = Math.max(1, options.attempts ?? DEFAULT_ATTEMPTS);
  const reply = await queryOverUdp(server, name, type, timeoutMs, attempts);
  if (!reply.header.truncated) return reply;
  return await queryOverTcp(server, name, type, timeoutMs);
}

function randomId(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0]!;
}

function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function stripTrailingDot(name: string): string {
  return name.endsWith(".") && !name.endsWith("\\.") ? name.slice(0, -1) : name;
}

/** Whether `bytes` is an acceptable reply to one of `ids` asking (name, type). */
function acceptReply(bytes: Uint8Array, ids: ReadonlySet<number>, name: string, type: number): DnsMessage | null {
  const parsed = parseDnsMessage(bytes);
  if (!parsed.ok) return null;
  const message = parsed.message;
  if (!message.header.response || !ids.has(message.header.id)) return null;
  const question = message.questions[0];
  if (message.questions.length !== 1 || question === undefined) return null;
  if (question.type !== type || question.class !== DnsClass.IN) return null;
  if (!sameName(question.name, stripTrailingDot(name))) return null;
  return message;
}

function errorFrom(args: unknown[]): Error {
  // Bun calls the UDP error handler with the error as the only argument
  // (and the socket as `this`), unlike its typings; accept either shape.
  const found = args.find((a) => a instanceof Error);
  return found instanceof Error ? found : new Error(String(args[0]));
}

async function queryOverUdp(
  server: DnsServerAddress,
  name: string,
  type: number,
  timeoutMs: number,
  attempts: number,
): Promise<DnsMessage> {
  const ids = new Set<number>();
  let settle: ((outcome: DnsMessage | Error) => void) | null = null;
  const socket = await Bun.udpSocket({
    hostname: isIP(server.host) === 6 ? "::" : "0.0.0.0",
    port: 0,
    binaryType: "uint8array",
    connect: { hostname: server.host, port: server.port },
    socket: {
      data(_socket, data) {
        const message = acceptReply(data, ids, name, type);
        if (message !== null) settle?.(message);
      },
      error(...args: unknown[]) {
        settle?.(errorFrom(args));
      },
    },
  }).catch((error: unknown) => {
    throw new DnsQueryError("network", `dial udp ${server.host}:${server.port}: ${String(error)}`);
  });

  try {
    let lastFailure = new DnsQueryError("timeout", "i/o timeout");
    for (let attempt = 0; attempt < attempts; attempt++) {
      let id = randomId();
      while (ids.has(id)) id = randomId();
      ids.add(id);
      const outcome = await new Promise<DnsMessage | Error | "timeout">((resolve) => {
        const timer = setTimeout(() => resolve("timeout"), timeoutMs);
        settle = (value) => {
          clearTimeout(timer);
          resolve(value);
        };
        socket.send(encodeDnsQuery(id, stripTrailingDot(name), type));
      });
      settle = null;
      if (outcome === "timeout") {
        lastFailure = new DnsQueryError("timeout", "i/o timeout");
      } else if (outcome instanceof Error) {
        const refused = (outcome as { code?: string }).code === "ECONNREFUSED";
        lastFailure = new DnsQueryError(refused ? "refused" : "network", outcome.message);
      } else {
        return outcome;
      }
    }
    throw lastFailure;
  } finally {
    socket.close();
  }
}

async function queryOverTcp(
  server: DnsServerAddress,
  name: string,
  type: number,
  timeoutMs: number,
): Promise<DnsMessage> {
  const id = randomId();
  const query = encodeDnsQuery(id, stripTrailingDot(name), type);
  const framed = new Uint8Array(2 + query.length);
  framed[0] = query.length >> 8;
  framed[1] = query.length & 0xff;
  framed.set(query, 2);

  return await new Promise<DnsMessage>((resolve, reject) => {
    let received = new Uint8Array(0);
    let done = false;
    let socket: TcpSocket<undefined> | null = null;
    const finish = (outcome: DnsMessage | DnsQueryError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket?.end();
      if (outcome instanceof DnsQueryError) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(() => finish(new DnsQueryError("timeout", "i/o timeout")), timeoutMs);
    Bun.connect({
      hostname: server.host,
      port: server.port,
      socket: {
        open(opened) {
          socket = opened;
          opened.write(framed);
        },
        data(_socket, chunk) {
          const joined = new Uint8Array(received.length + chunk.length);
          joined.set(received);
          joined.set(chunk, received.length);
          received = joined;
          if (received.length < 2) return;
          const length = (received[0]! << 8) | received[1]!;
          if (received.length < 2 + length) return;
          const message = acceptReply(received.subarray(2, 2 + length), new Set([id]), name, type);
          finish(message ?? new DnsQueryError("malformed", "unexpected DNS reply over TCP"));
        },
        close() {
          finish(new DnsQueryError("network", "connection closed before the DNS reply"));
        },
        error(_socket, error) {
          finish(new DnsQueryError("network", error.message));
        },
        connectError(_socket, error) {
          const refused = (error as { code?: string }).code === "ECONNREFUSED";
          finish(new DnsQueryError(refused ? "refused" : "network", error.message));
        },
      },
    }).then(
      (connected) => {
        socket = connected;
        if (done) connected.end();
      },
      (error: unknown) => finish(new DnsQueryError("network", String(error))),
    );
  });
}

/**
 * The records of `type` that answer `name`, following CNAMEs inside the
 * answer section (RFC 1034 §3.6.2). Case-insensitive, trailing dot ignored.
 */
export function answersFor(message: DnsMessage, name: string, type: number): DnsRecord[] {
  let owners = new Set([stripTrailingDot(name).toLowerCase()]);
  // Follow CNAME chains; the bound keeps a looping chain finite.
  for (let step = 0; step < 16; step++) {
    const before = owners.size;
    for (const record of message.answers) {
      if (record.data.kind === "cname" && type !== DnsType.CNAME && owners.has(record.name.toLowerCase())) {
        owners.add(record.data.target.toLowerCase());
      }
    }
    if (owners.size === before) break;
    owners = new Set(owners);
  }
  return message.answers.filter((record) => record.type === type && owners.has(record.name.toLowerCase()));
}
