// -pcap: a middleware that copies every frame, both directions, into a
// classic libpcap file (docs/compatibility.md, Packet capture):
// big-endian, LINKTYPE_RAW, packets from the network-layer header on (ARP
// as its 28-byte body), snaplen = MTU, written unbuffered so a crash loses
// nothing already seen.
import { openSync, writeSync, closeSync, constants } from "node:fs";
import { O_CLOEXEC } from "../../ffi/sys.ts";
import { pcapFileHeader, writePcapRecordHeader, LINKTYPE_RAW } from "../wire/pcap.ts";
import type { FrameReceiver, FrameSink, Medium, RxMeta, TxMeta } from "../stack/device.ts";

const ETH_HEADER = 14;

/**
 * Opens the capture file write-only and, as upstream does, NOT truncated.
 * Unlike upstream, a new file is created 0600 (a capture holds every byte
 * the guest sends, so other local users must not read it), a symlink at
 * the path is refused (O_NOFOLLOW: a planted link cannot redirect the
 * write), and the fd does not leak into run mode's command (O_CLOEXEC).
 */
function openPcapFile(path: string): number {
  return openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | O_CLOEXEC, 0o600);
}

/** Why -pcap could not start: the file could not be opened, or its header not written ("sniff", upstream's word). */
export class PcapError extends Error {
  constructor(
    readonly step: "open" | "sniff",
    message: string,
  ) {
    super(message);
  }
}

/**
 * -pcap PATH: opens the file and puts a writer in front of `device`
 * (startup step 15). Throws a PcapError whose message is upstream's text.
 */
export function startPcap(path: string, device: FrameSink, medium: Medium, snaplen: number): PcapWriter {
  let fd: number;
  try {
    fd = openPcapFile(path);
  } catch (e) {
    throw new PcapError("open", goFsError(e, path));
  }
  try {
    return new PcapWriter(fd, device, medium, snaplen);
  } catch (e) {
    throw new PcapError("sniff", String((e as Error).message));
  }
}

/** Go's *PathError text: "open PATH: permission denied". */
function goFsError(e: unknown, path: string): string {
  const err = e as NodeJS.ErrnoException;
  const text: Record<string, string> = {
    ENOENT: "no such file or directory",
    EACCES: "permission denied",
    EISDIR: "is a directory",
    EROFS: "read-only file system",
    ENOTDIR: "not a directory",
    ELOOP: "too many levels of symbolic links",
  };
  return `open ${path}: ${(err.code && text[err.code]) ?? err.message}`;
}

export class PcapWriter implements FrameSink, FrameReceiver {
  private readonly record = new Uint8Array(16);
  private readonly linkHeader: number;
  private upper: FrameReceiver | null = null;

  /** Writes the file header at once (before any packet), as upstream does. */
  constructor(
    private readonly fd: number,
    private readonly lower: FrameSink,
    medium: Medium,
    private readonly snaplen: number,
  ) {
    this.linkHeader = medium === "ethernet" ? ETH_HEADER : 0;
    const header = pcapFileHeader(snaplen, LINKTYPE_RAW);
    writeSync(fd, header, 0, header.length);
  }

  /** The receiver frames go to after being captured. */
  wrap(upper: FrameReceiver): FrameReceiver {
    this.upper = upper;
    return this;
  }

  private capture(buf: Uint8Array, off: number, len: number): void {
    const start = off + this.linkHeader;
    const orig = len - this.linkHeader;
    if (orig <= 0) return;
    const cap = Math.min(orig, this.snaplen);
    const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    writePcapRecordHeader(this.record, 0, Math.floor(us / 1e6), us % 1e6, cap, orig);
    try {
      writeSync(this.fd, this.record, 0, 16);
      writeSync(this.fd, buf, start, cap);
    } catch {
      // A full disk must not stop the network; the capture just ends short.
    }
  }

  transmit(buf: Uint8Array, off: number, len: number, meta: TxMeta | null): void {
    this.capture(buf, off, len);
    this.lower.transmit(buf, off, len, meta);
  }

  receive(buf: Uint8Array, off: number, len: number, meta: RxMeta): void {
    this.capture(buf, off, len);
    this.upper!.receive(buf, off, len, meta);
  }

  batchEnd(): void {
    this.upper!.batchEnd();
  }

  close(): void {
    closeSync(this.fd);
  }
}
