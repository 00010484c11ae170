// DNS messages (RFC 1035 §4), with the record types the project needs:
// A, AAAA (RFC 3596), CNAME and SRV (RFC 2782). Other types keep their raw
// RDATA.
//
// Reading is bounds-checked and total: parseDnsMessage never throws, it
// returns { ok: false, error } for anything malformed, however hostile.
// Name compression (RFC 1035 §4.1.4) is followed on read with a cap on
// pointer jumps, so pointer loops end. Writing emits names uncompressed;
// that is always valid, and our messages are small.
//
// Names are presentation text without the trailing dot ("" is the root).
// A label byte that would be ambiguous in that text ('.', '\\', or anything
// outside printable ASCII) is written as \DDD, and parsed back on emit.
//
// No I/O, no state: the UDP/TCP client is src/host/control/dns-client.ts.
import { ipFromV4, ipv4FromText, ipv4Text, ipv6FromText, ipv6Text } from "./addr.ts";
import { readU32 } from "./bytes.ts";
import { WireError } from "./errors.ts";

export const DnsType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  ANY: 255,
} as const;

export const DnsClass = { IN: 1 } as const;

export const DnsOpcode = { QUERY: 0 } as const;

export const DnsRcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

export interface DnsHeader {
  id: number;
  /** QR: true in a response. */
  response: boolean;
  opcode: number;
  authoritative: boolean;
  truncated: boolean;
  recursionDesired: boolean;
  recursionAvailable: boolean;
  /** The three Z bits (AD and CD live there in DNSSEC-aware servers). */
  z: number;
  rcode: number;
}

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export type DnsRecordData =
  | { kind: "a"; address: string }
  | { kind: "aaaa"; address: string }
  | { kind: "cname"; target: string }
  | { kind: "srv"; priority: number; weight: number; port: number; target: string }
  | { kind: "raw"; bytes: Uint8Array };

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: DnsRecordData;
}

export interface DnsMessage {
  header: DnsHeader;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

/** A failure carries the shared WireError code (for counters) and a readable reason. */
export type DnsParseResult =
  | { ok: true; message: DnsMessage }
  | { ok: false; code: WireError; error: string };

export const DNS_HEADER_LENGTH = 12;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire, a label 63. */
export const MAX_NAME_WIRE_LENGTH = 255;
export const MAX_LABEL_LENGTH = 63;
/** More pointer jumps than any honest name needs (at most 127 labels). */
const MAX_POINTER_JUMPS = 128;

class MalformedDns extends Error {
  constructor(
    readonly code: WireError,
    reason: string,
  ) {
    super(reason);
  }
}

function fail(reason: string, code: WireError = WireError.Malformed): never {
  throw new MalformedDns(code, reason);
}

function truncated(reason: string): never {
  return fail(reason, WireError.Truncated);
}

/** Decodes a DNS message. Never throws. */
export function parseDnsMessage(bytes: Uint8Array): DnsParseResult {
  try {
    return { ok: true, message: new Reader(bytes).message() };
  } catch (error) {
    if (error instanceof MalformedDns) return { ok: false, code: error.code, error: error.message };
    return { ok: false, code: WireError.Malformed, error: `malformed message: ${String(error)}` };
  }
}

/** Decodes only the header (for matching replies cheaply). Null if too short. */
export function parseDnsHeader(bytes: Uint8Array): DnsHeader | null {
  if (bytes.length < DNS_HEADER_LENGTH) return null;
  return decodeHeader(bytes);
}

function decodeHeader(bytes: Uint8Array): DnsHeader {
  const flags = (bytes[2]! << 8) | bytes[3]!;
  return {
    id: (bytes[0]! << 8) | bytes[1]!,
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    authoritative: (flags & 0x0400) !== 0,
    truncated: (flags & 0x0200) !== 0,
    recursionDesired: (flags & 0x0100) !== 0,
    recursionAvailable: (flags & 0x0080) !== 0,
    z: (flags >> 4) & 0x7,
    rcode: flags & 0xf,
  };
}

class Reader {
  private offset = DNS_HEADER_LENGTH;

  constructor(private readonly bytes: Uint8Array) {}

  message(): DnsMessage {
    if (this.bytes.length < DNS_HEADER_LENGTH) truncated("message shorter than the header");
    const header = decodeHeader(this.bytes);
    const questionCount = this.u16At(4);
    const answerCount = this.u16At(6);
    const authorityCount = this.u16At(8);
    const additionalCount = this.u16At(10);
    const questions: DnsQuestion[] = [];
    for (let i = 0; i < questionCount; i++) questions.push(this.question());
    const answers = this.records(answerCount);
    const authorities = this.records(authorityCount);
    const additionals = this.records(additionalCount);
    return { header, questions, answers, authorities, additionals };
  }

  private question(): DnsQuestion {
    const name = this.name();
    const type = this.u16();
    const klass = this.u16();
    return { name, type, class: klass };
  }

  private records(count: number): DnsRecord[] {
    const out: DnsRecord[] = [];
    for (let i = 0; i < count; i++) out.push(this.record());
    return out;
  }

  private record(): DnsRecord {
    const name = this.name();
    const type = this.u16();
    const klass = this.u16();
    const ttl = this.u32();
    const length = this.u16();
    const start = this.offset;
    const end = start + length;
    if (end > this.bytes.length) truncated("record data runs past the end");
    const data = this.recordData(type, start, end);
    this.offset = end;
    return { name, type, class: klass, ttl, data };
  }

  private recordData(type: number, start: number, end: number): DnsRecordData {
    const length = end - start;
    switch (type) {
      case DnsType.A:
        if (length !== 4) fail("A record data is not 4 bytes");
        return { kind: "a", address: ipv4Text(readU32(this.bytes, start)) };
      case DnsType.AAAA:
        if (length !== 16) fail("AAAA record data is not 16 bytes");
        return { kind: "aaaa", address: ipv6Text(this.bytes, start) };
      case DnsType.CNAME: {
        const target = this.nameWithin(start, end);
        return { kind: "cname", target };
      }
      case DnsType.SRV: {
        if (length < 7) fail("SRV record data too short");
        const priority = this.u16At(start);
        const weight = this.u16At(start + 2);
        const port = this.u16At(start + 4);
        const target = this.nameWithin(start + 6, end);
        return { kind: "srv", priority, weight, port, target };
      }
      default:
        return { kind: "raw", bytes: this.bytes.slice(start, end) };
    }
  }

  /** A name that must end (its uncompressed part) inside [start, end). */
  private nameWithin(start: number, end: number): string {
    const saved = this.offset;
    this.offset = start;
    const name = this.name();
    if (this.offset !== end) fail("name does not fill the record data");
    this.offset = saved;
    return name;
  }

  /** Reads a possibly compressed name at the cursor; the cursor ends after its in-place part. */
  private name(): string {
    const labels: string[] = [];
    let position = this.offset;
    let resumeAt = -1; // where the cursor goes once the first pointer was taken
    let jumps = 0;
    let wireLength = 1; // the root label's length byte
    for (;;) {
      if (position >= this.bytes.length) truncated("name runs past the end");
      const length = this.bytes[position]!;
      if ((length & 0xc0) === 0xc0) {
        if (position + 1 >= this.bytes.length) truncated("compression pointer runs past the end");
        if (++jumps > MAX_POINTER_JUMPS) fail("too many compression pointers");
        if (resumeAt < 0) resumeAt = position + 2;
        position = ((length & 0x3f) << 8) | this.bytes[position + 1]!;
        continue;
      }
      if ((length & 0xc0) !== 0) fail("unsupported label type", WireError.Unsupported);
      if (length === 0) {
        position += 1;
        break;
      }
      if (position + 1 + length > this.bytes.length) truncated("label runs past the end");
      wireLength += 1 + length;
      if (wireLength > MAX_NAME_WIRE_LENGTH) fail("name longer than 255 bytes");
      labels.push(labelToText(this.bytes.subarray(position + 1, position + 1 + length)));
      position += 1 + length;
    }
    this.offset = resumeAt >= 0 ? resumeAt : position;
    return labels.join(".");
  }

  private u16(): number {
    const value = this.u16At(this.offset);
    this.offset += 2;
    return value;
  }

  private u32(): number {
    if (this.offset + 4 > this.bytes.length) truncated("truncated 32-bit field");
    const b = this.bytes;
    const o = this.offset;
    this.offset += 4;
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }

  private u16At(at: number): number {
    if (at + 2 > this.bytes.length) truncated("truncated 16-bit field");
    return (this.bytes[at]! << 8) | this.bytes[at + 1]!;
  }
}

function labelToText(label: Uint8Array): string {
  let text = "";
  for (const byte of label) {
    if (byte === 0x2e || byte === 0x5c) text += "\\" + String.fromCharCode(byte);
    else if (byte > 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += "\\" + byte.toString().padStart(3, "0");
  }
  return text;
}

// ---------------------------------------------------------------------------
// Writing

export interface DnsMessageInit {
  header?: Partial<DnsHeader>;
  questions?: DnsQuestion[];
  answers?: DnsRecord[];
  authorities?: DnsRecord[];
  additionals?: DnsRecord[];
}

/** Encodes a message (names uncompressed). Throws RangeError for data that cannot be encoded. */
export function encodeDnsMessage(init: DnsMessageInit): Uint8Array {
  const header: DnsHeader = {
    id: 0,
    response: false,
    opcode: DnsOpcode.QUERY,
    authoritative: false,
    truncated: false,
    recursionDesired: false,
    recursionAvailable: false,
    z: 0,
    rcode: DnsRcode.NOERROR,
    ...init.header,
  };
  const questions = init.questions ?? [];
  const answers = init.answers ?? [];
  const authorities = init.authorities ?? [];
  const additionals = init.additionals ?? [];
  const out = new Writer();
  out.u16(header.id);
  out.u16(
    (header.response ? 0x8000 : 0) |
      ((header.opcode & 0xf) << 11) |
      (header.authoritative ? 0x0400 : 0) |
      (header.truncated ? 0x0200 : 0) |
      (header.recursionDesired ? 0x0100 : 0) |
      (header.recursionAvailable ? 0x0080 : 0) |
      ((header.z & 0x7) << 4) |
      (header.rcode & 0xf),
  );
  out.u16(questions.length);
  out.u16(answers.length);
  out.u16(authorities.length);
  out.u16(additionals.length);
  for (const question of questions) {
    out.name(question.name);
    out.u16(question.type);
    out.u16(question.class);
  }
  for (const record of [...answers, ...authorities, ...additionals]) out.record(record);
  return out.finish();
}

/** A standard query with one question (RD set, as a stub resolver sends it). */
export function encodeDnsQuery(id: number, name: string, type: number, recursionDesired = true): Uint8Array {
  return encodeDnsMessage({
    header: { id, recursionDesired },
    questions: [{ name, type, class: DnsClass.IN }],
  });
}

class Writer {
  private bytes: number[] = [];

  u8(value: number): void {
    this.bytes.push(value & 0xff);
  }

  u16(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`not a 16-bit value: ${value}`);
    this.bytes.push(value >> 8, value & 0xff);
  }

  u32(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`not a 32-bit value: ${value}`);
    this.bytes.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  }

  raw(data: Uint8Array): void {
    for (const byte of data) this.bytes.push(byte);
  }

  name(text: string): void {
    this.raw(encodeDnsName(text));
  }

  record(record: DnsRecord): void {
    this.name(record.name);
    this.u16(record.type);
    this.u16(record.class);
    this.u32(record.ttl);
    const data = encodeRecordData(record.data);
    this.u16(data.length);
    this.raw(data);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

function encodeRecordData(data: DnsRecordData): Uint8Array {
  switch (data.kind) {
    case "a": {
      const a = ipv4FromText(data.address);
      if (a === null) throw new RangeError(`not an IPv4 address: ${data.address}`);
      return ipFromV4(a).bytes;
    }
    case "aaaa": {
      const bytes = ipv6FromText(data.address);
      if (bytes === null) throw new RangeError(`not an IPv6 address: ${data.address}`);
      return bytes;
    }
    case "cname":
      return encodeDnsName(data.target);
    case "srv": {
      const writer = new Writer();
      writer.u16(data.priority);
      writer.u16(data.weight);
      writer.u16(data.port);
      writer.name(data.target);
      return writer.finish();
    }
    case "raw":
      return data.bytes;
  }
}

/** Wire form of a presentation name ("" or "." is the root; a trailing dot is optional). */
export function encodeDnsName(text: string): Uint8Array {
  const out: number[] = [];
  let label: number[] = [];
  const flush = () => {
    if (label.length === 0) throw new RangeError(`empty label in name: ${JSON.stringify(text)}`);
    if (label.length > MAX_LABEL_LENGTH) throw new RangeError(`label longer than 63 bytes in ${JSON.stringify(text)}`);
    out.push(label.length, ...label);
    label = [];
  };
  const body = text === "." ? "" : text;
  const bytes = new TextEncoder().encode(body);
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte === 0x5c) {
      const next = bytes[i + 1];
      const digits = String.fromCharCode(...bytes.subarray(i + 1, i + 4));
      if (/^[0-9]{3}$/.test(digits) && Number(digits) <= 255) {
        label.push(Number(digits));
        i += 3;
      } else if (next !== undefined) {
        label.push(next);
        i += 1;
      } else {
        throw new RangeError(`dangling escape in name: ${JSON.stringify(text)}`);
      }
    } else if (byte === 0x2e) {
      if (i === bytes.length - 1) break; // the trailing dot of an absolute name
      flush();
    } else {
      label.push(byte);
    }
  }
  if (label.length > 0) flush();
  out.push(0);
  if (out.length > MAX_NAME_WIRE_LENGTH) throw new RangeError(`name longer than 255 bytes: ${JSON.stringify(text)}`);
  return Uint8Array.from(out);
}
