// The UDP/TCP DNS stub client against real sockets on loopback.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { answersFor, DnsQueryError, queryDns } from "../../../src/host/control/dns-client.ts";
import { DnsRcode, DnsType, encodeDnsMessage, parseDnsMessage } from "../../../src/wire/dns.ts";
import { TestDnsServer } from "../../support/dns-server.ts";

let dns: TestDnsServer;

beforeAll(async () => {
  dns = await TestDnsServer.start({
    records: [
      { name: "echo.test", type: "A", address: "127.0.0.5" },
      { name: "echo.test", type: "AAAA", address: "fd00::5" },
      { name: "alias.test", type: "CNAME", target: "echo.test." },
      { name: "big.test", type: "A", address: "127.0.0.6" },
      { name: "_svc._tcp.test", type: "SRV", port: 8080, target: "echo.test.", priority: 1, weight: 2 },
    ],
    truncateOverUdp: ["big.test"],
  });
});

afterAll(async () => {
  await dns.stop();
});

const server = () => ({ host: dns.host, port: dns.port });

describe("queryDns", () => {
  test("A, AAAA and SRV over UDP", async () => {
    const a = await queryDns(server(), "echo.test", DnsType.A);
    expect(answersFor(a, "echo.test", DnsType.A).map((r) => r.data)).toEqual([{ kind: "a", address: "127.0.0.5" }]);
    const aaaa = await queryDns(server(), "ECHO.test.", DnsType.AAAA);
    expect(answersFor(aaaa, "echo.test", DnsType.AAAA).map((r) => r.data)).toEqual([{ kind: "aaaa", address: "fd00::5" }]);
    const srv = await queryDns(server(), "_svc._tcp.test", DnsType.SRV);
    expect(answersFor(srv, "_svc._tcp.test", DnsType.SRV).map((r) => r.data)).toEqual([
      { kind: "srv", priority: 1, weight: 2, port: 8080, target: "echo.test" },
    ]);
  });

  test("CNAMEs in the answer are followed", async () => {
    const reply = await queryDns(server(), "alias.test", DnsType.A);
    expect(answersFor(reply, "alias.test", DnsType.A).map((r) => r.data)).toEqual([{ kind: "a", address: "127.0.0.5" }]);
    expect(answersFor(reply, "other.test", DnsType.A)).toEqual([]);
  });

  test("NXDOMAIN is a reply, not an error", async () => {
    const reply = await queryDns(server(), "missing.test", DnsType.A);
    expect(reply.header.rcode).toBe(DnsRcode.NXDOMAIN);
  });

  test("a truncated UDP reply is asked again over TCP", async () => {
    const before = dns.queries.length;
    const reply = await queryDns(server(), "big.test", DnsType.A);
    expect(answersFor(reply, "big.test", DnsType.A).map((r) => r.data)).toEqual([{ kind: "a", address: "127.0.0.6" }]);
    expect(dns.queries.slice(before).map((q) => q.transport)).toEqual(["udp", "tcp"]);
  });

  test("nothing listening: refused, at once", async () => {
    const started = performance.now();
    const failure = await queryDns({ host: "127.0.0.1", port: 1 }, "x.test", DnsType.A, {
      timeoutMs: 5000,
      attempts: 2,
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DnsQueryError);
    expect((failure as DnsQueryError).reason).toBe("refused");
    expect(performance.now() - started).toBeLessThan(2000);
  });

  test("a silent server: every attempt times out", async () => {
    const silent = await TestDnsServer.start({ records: [] });
    silent.setSilent(true);
    try {
      const failure = await queryDns({ host: silent.host, port: silent.port }, "x.test", DnsType.A, {
        timeoutMs: 100,
        attempts: 3,
      }).catch((error: unknown) => error);
      expect((failure as DnsQueryError).reason).toBe("timeout");
      expect(silent.queries.length).toBe(3);
    } finally {
      await silent.stop();
    }
  });

  test("a host name is not accepted as the server", async () => {
    const failure = await queryDns({ host: "localhost", port: 53 }, "x.test", DnsType.A).catch((e: unknown) => e);
    expect((failure as DnsQueryError).reason).toBe("network");
  });

  test("replies with the wrong ID or question are ignored", async () => {
    // A hand-made server: it first sends junk, a wrong ID and a wrong
    // question, then the right reply.
    const fake = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      binaryType: "uint8array",
      socket: {
        data(socket, data, port, address) {
          const query = parseDnsMessage(data);
          if (!query.ok) return;
          const id = query.message.header.id;
          const question = query.message.questions[0]!;
          const reply = (replyId: number, name: string, address4: string) =>
            encodeDnsMessage({
              header: { id: replyId, response: true },
              questions: [{ ...question, name }],
              answers: [{ name, type: DnsType.A, class: 1, ttl: 1, data: { kind: "a", address: address4 } }],
            });
          socket.send(Uint8Array.from([1, 2, 3]), port, address);
          socket.send(reply((id + 1) & 0xffff, question.name, "192.0.2.1"), port, address);
          socket.send(reply(id, "other.test", "192.0.2.2"), port, address);
          socket.send(encodeDnsMessage({ header: { id }, questions: [question] }), port, address); // not a response
          socket.send(reply(id, question.name, "192.0.2.3"), port, address);
        },
      },
    });
    try {
      const reply = await queryDns({ host: "127.0.0.1", port: fake.port }, "right.test", DnsType.A, { timeoutMs: 1000 });
      expect(answersFor(reply, "right.test", DnsType.A).map((r) => r.data)).toEqual([{ kind: "a", address: "192.0.2.3" }]);
    } finally {
      fake.close();
    }
  });
});
