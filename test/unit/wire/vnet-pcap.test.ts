import { describe, expect, test } from "bun:test";
import { WireError } from "../../../src/wire/errors.ts";
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  PCAP_FILE_HEADER_LEN,
  PCAP_RECORD_HEADER_LEN,
  pcapFileHeader,
  writePcapRecordHeader,
} from "../../../src/wire/pcap.ts";
import { Ipv4View } from "../../../src/wire/ipv4.ts";
import { TcpView } from "../../../src/wire/tcp.ts";
import {
  VNET_HDR_LEN,
  VNET_HDR_LEN_LEGACY,
  VirtioNetHdr,
  VnetFlags,
  VnetGso,
  completePartialChecksum,
} from "../../../src/wire/vnet.ts";
import { LO_TCP4_SYN_FULL_CSUM, LO_TCP4_SYN_PARTIAL } from "./fixtures.ts";
import { toHex } from "./helpers.ts";

describe("virtio_net_hdr", () => {
  test("fields are little-endian at the offsets of linux/virtio_net.h", () => {
    const b = new Uint8Array(16).fill(0xee);
    const h = new VirtioNetHdr();
    expect(h.attach(b, 2, 14)).toBe(WireError.Ok);
    h.clear();
    expect(toHex(b)).toBe("eeee" + "00".repeat(12) + "eeee");
    h.flags = VnetFlags.NEEDS_CSUM;
    h.gsoType = VnetGso.TCPV4 | VnetGso.ECN;
    h.hdrLen = 54;
    h.gsoSize = 1448;
    h.csumStart = 34;
    h.csumOffset = 16;
    h.numBuffers = 1;
    expect(toHex(b, 2, 12)).toBe("01813600a805220010000100");
    expect([h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset, h.numBuffers]).toEqual([
      1, 0x81, 54, 1448, 34, 16, 1,
    ]);
    h.csumStart = 0xfffe;
    expect(h.csumStart).toBe(0xfffe);
  });

  test("legacy 10-byte header has no num_buffers", () => {
    const b = new Uint8Array(12).fill(0xee);
    const h = new VirtioNetHdr(VNET_HDR_LEN_LEGACY);
    expect(h.size).toBe(10);
    expect(h.attach(b, 0, 10)).toBe(WireError.Ok);
    h.clear();
    h.numBuffers = 5;
    expect(h.numBuffers).toBe(0);
    expect(toHex(b)).toBe("00".repeat(10) + "eeee");
  });

  test("attach bounds; default length is the rest of the buffer", () => {
    const h = new VirtioNetHdr();
    expect(h.size).toBe(VNET_HDR_LEN);
    const b = new Uint8Array(20);
    for (let len = 0; len <= 20; len++) expect(h.attach(b, 0, len)).toBe(len < 12 ? WireError.Truncated : WireError.Ok);
    expect(h.attach(b, 8)).toBe(WireError.Ok);
    expect(h.attach(b, 9)).toBe(WireError.Truncated);
    expect(h.attach(b, 21)).toBe(WireError.BadBounds);
  });

  test("validate() against the frame that follows", () => {
    const h = new VirtioNetHdr().wrap(new Uint8Array(12), 0);
    expect(h.validate(60)).toBe(WireError.Ok);
    h.flags = VnetFlags.NEEDS_CSUM;
    h.csumStart = 34;
    h.csumOffset = 16;
    expect(h.validate(54)).toBe(WireError.Ok);
    expect(h.validate(51)).toBe(WireError.BadLength);
    h.csumStart = 0xffff;
    expect(h.validate(1500)).toBe(WireError.BadLength);
    h.flags = VnetFlags.DATA_VALID;
    h.gsoType = VnetGso.TCPV6;
    expect(h.validate(1500)).toBe(WireError.Malformed); // gso_size 0
    h.gsoSize = 1440;
    expect(h.validate(1500)).toBe(WireError.Ok);
    h.gsoType = VnetGso.UDP_L4 | VnetGso.ECN;
    expect(h.validate(1500)).toBe(WireError.Ok);
    h.gsoType = 2;
    expect(h.validate(1500)).toBe(WireError.Unsupported);
    h.gsoType = 0x7f;
    expect(h.validate(1500)).toBe(WireError.Unsupported);
  });

  test("completing a real CHECKSUM_PARTIAL segment gives the checksum tcpdump computed", () => {
    const f = LO_TCP4_SYN_PARTIAL.slice();
    expect(completePartialChecksum(f, 0, f.length, 34, 16)).toBe(WireError.Ok);
    expect((f[50] << 8) | f[51]).toBe(LO_TCP4_SYN_FULL_CSUM);
    const ip = new Ipv4View();
    expect(ip.attach(f, 14, f.length - 14)).toBe(WireError.Ok);
    const tcp = new TcpView();
    expect(tcp.attach(f, ip.payloadOff, ip.payloadLen)).toBe(WireError.Ok);
    expect(tcp.verifyChecksumV4(ip.src, ip.dst)).toBe(true);
    // Hostile offsets are refused, not written.
    const g = LO_TCP4_SYN_PARTIAL.slice();
    expect(completePartialChecksum(g, 0, g.length, 70, 3)).toBe(WireError.BadLength);
    expect(completePartialChecksum(g, 0, g.length, 0xffff, 0xffff)).toBe(WireError.BadLength);
    expect(completePartialChecksum(g, 0, g.length + 1, 34, 16)).toBe(WireError.BadBounds);
    expect(toHex(g)).toBe(toHex(LO_TCP4_SYN_PARTIAL));
  });
});

describe("pcap", () => {
  test("file header: big-endian magic, version 2.4, snaplen, linktype", () => {
    const h = pcapFileHeader(262144);
    expect(h.length).toBe(PCAP_FILE_HEADER_LEN);
    expect(toHex(h)).toBe("a1b2c3d4" + "0002" + "0004" + "00000000" + "00000000" + "00040000" + "00000065");
    expect(toHex(pcapFileHeader(65535, LINKTYPE_ETHERNET)).slice(32)).toBe("0000ffff00000001");
    expect(LINKTYPE_RAW).toBe(101);
  });

  test("record header", () => {
    const out = new Uint8Array(20).fill(0xee);
    expect(writePcapRecordHeader(out, 2, 1700000000, 999999, 60, 1514)).toBe(PCAP_RECORD_HEADER_LEN);
    expect(toHex(out)).toBe("eeee" + "6553f100" + "000f423f" + "0000003c" + "000005ea" + "eeee");
  });
});
