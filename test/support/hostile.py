#!/usr/bin/env python3
"""Deterministic hostile-frame generator for slirpnetstack robustness tests.

Run inside the guest network namespace:

    hostile.py IFNAME MODE SEED [SCALE]
    hostile.py IFNAME synrst DST_IPV4 DPORT SPORT GAP_S

MODE is "tap" (Ethernet frames) or "tun" (raw IP packets: the IP-level
cases only). Frames are written to IFNAME through an AF_PACKET raw socket,
so they arrive at the stack's end of the device as if the guest kernel had
sent them. SCALE multiplies the number of frames per case (default 1).

Everything is generated from random.Random(SEED), so a failure can be
replayed exactly. Prints one JSON object on stdout: frames per case, how
many the kernel refused (too short, too long) and how many were sent.

"synrst" is a guest that gives up while the stack is still dialing: a SYN
to DST_IPV4:DPORT from SPORT, then GAP_S seconds later the RST for it (a
kernel never sends one for a connect it abandons, so it is written raw).
"""
import json
import random
import socket
import struct
import sys
import time

STACK_MAC = bytes.fromhex("7071aa4b29aa")
BCAST = b"\xff" * 6
GUEST4 = bytes([10, 0, 2, 100])
GW4 = bytes([10, 0, 2, 2])
GUEST6 = bytes.fromhex("fd000000000000000000000000000100")
GW6 = bytes.fromhex("fd000000000000000000000000000002")
ALLNODES6 = bytes.fromhex("ff020000000000000000000000000001")
SOLICITED_GW6 = bytes.fromhex("ff0200000000000000000001ff000002")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


class Gen:
    def __init__(self, seed, mode, scale):
        self.r = random.Random(seed)
        self.mode = mode
        self.scale = scale
        self.src_mac = bytes([0x02]) + bytes(self.r.getrandbits(8) for _ in range(5))
        self.cases = {}

    # ---- helpers -------------------------------------------------------
    def rb(self, n):
        return bytes(self.r.getrandbits(8) for _ in range(n))

    def n(self, base):
        return max(1, int(base * self.scale))

    def eth(self, ethertype, payload, dst=None):
        return (dst or self.r.choice([STACK_MAC, BCAST])) + self.src_mac + struct.pack("!H", ethertype) + payload

    def ip4(self, proto, payload, src=GUEST4, dst=GW4, ident=None, frag=0, total=None, ihl=5, opts=b"", ttl=64, good_csum=True):
        hdr = struct.pack(
            "!BBHHHBBH4s4s",
            (4 << 4) | (ihl & 0xF),
            0,
            (20 + len(opts) + len(payload)) if total is None else total & 0xFFFF,
            self.r.getrandbits(16) if ident is None else ident,
            frag,
            ttl,
            proto,
            0,
            src,
            dst,
        ) + opts
        c = csum(hdr) if good_csum else self.r.getrandbits(16)
        hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
        return hdr + payload

    def ip6(self, nh, payload, src=GUEST6, dst=GW6, plen=None, hlim=64):
        return struct.pack("!IHBB16s16s", 6 << 28, len(payload) if plen is None else plen & 0xFFFF, nh, hlim, src, dst) + payload

    def l4csum4(self, proto, seg, src=GUEST4, dst=GW4):
        return csum(src + dst + struct.pack("!BBH", 0, proto, len(seg)) + seg)

    def l4csum6(self, nh, seg, src=GUEST6, dst=GW6):
        return csum(src + dst + struct.pack("!IxxxB", len(seg), nh) + seg)

    def tcp(self, sport, dport, flags, payload=b"", doff=None, opts=b"", fam=4, src=None, dst=None, fix=True, seq=None):
        off = (20 + len(opts)) // 4 if doff is None else doff
        seg = struct.pack(
            "!HHIIBBHHH",
            sport,
            dport,
            self.r.getrandbits(32) if seq is None else seq,
            self.r.getrandbits(32),
            (off & 0xF) << 4 | ((flags >> 8) & 1),
            flags & 0xFF,
            self.r.getrandbits(16),
            0,
            self.r.getrandbits(16),
        ) + opts + payload
        if fix:
            c = self.l4csum4(6, seg, src or GUEST4, dst or GW4) if fam == 4 else self.l4csum6(6, seg, src or GUEST6, dst or GW6)
            seg = seg[:16] + struct.pack("!H", c) + seg[18:]
        return seg

    def udp(self, sport, dport, payload, length=None, fam=4, fix=True):
        seg = struct.pack("!HHHH", sport, dport, (8 + len(payload)) if length is None else length & 0xFFFF, 0) + payload
        if fix:
            c = self.l4csum4(17, seg) if fam == 4 else self.l4csum6(17, seg)
            seg = seg[:6] + struct.pack("!H", c or 0xFFFF) + seg[8:]
        return seg

    def icmp6(self, typ, code, body, src=GUEST6, dst=GW6, hlim=255):
        msg = struct.pack("!BBH", typ, code, 0) + body
        c = self.l4csum6(58, msg, src, dst)
        msg = msg[:2] + struct.pack("!H", c) + msg[4:]
        return self.ip6(58, msg, src=src, dst=dst, hlim=hlim)

    def add(self, case, frames):
        self.cases.setdefault(case, []).extend(frames)

    # ---- cases ---------------------------------------------------------
    def random_bytes(self):
        out = []
        for _ in range(self.n(1500)):
            out.append(self.rb(self.r.choice([self.r.randint(0, 64), self.r.randint(0, 1600)])))
        self.add("random-bytes", out)

    def garbage_after_valid_eth(self):
        out = []
        for _ in range(self.n(1500)):
            et = self.r.choice([0x0800, 0x86DD, 0x0806, 0x8100, 0x88CC, 0x0000, 0xFFFF])
            out.append(self.eth(et, self.rb(self.r.choice([0, 1, 7, 19, 20, 27, 28, 39, 40, self.r.randint(0, 1500)]))))
        # Valid packets cut short at every length.
        base4 = self.ip4(6, self.tcp(1000, 80, 0x002))
        base6 = self.ip6(6, self.tcp(1000, 80, 0x002, fam=6), plen=None)
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, self.src_mac, GUEST4, b"\0" * 6, GW4)
        for base, et in ((base4, 0x0800), (base6, 0x86DD), (arp, 0x0806)):
            for cut in range(0, len(base)):
                out.append(self.eth(et, base[:cut]))
        self.add("garbage-l3", out)

    def lying_ipv4(self):
        out = []
        for _ in range(self.n(120)):
            pay = self.tcp(self.r.randint(1, 65535), self.r.randint(1, 65535), 0x002, self.rb(self.r.randint(0, 40)))
            out.append(self.ip4(6, pay, total=self.r.choice([len(pay) + 21, len(pay) + 2000, 65535])))  # longer than the frame
            out.append(self.ip4(6, pay, total=self.r.choice([0, 1, 19, 20, 21])))  # shorter than the headers
            out.append(self.ip4(6, pay + self.rb(self.r.randint(1, 100)), total=20 + len(pay)))  # padding after
            for ihl in (0, 1, 4):
                out.append(self.ip4(6, pay, ihl=ihl))
            out.append(self.ip4(6, pay, ihl=15))  # options longer than the packet
            out.append(self.ip4(6, pay, ihl=6, opts=bytes([self.r.choice([0x44, 0x07, 0x83, 0x89, 0x94]), self.r.choice([0, 1, 2, 255]), 0, 0])))
            out.append(self.ip4(self.r.randint(0, 255), self.rb(self.r.randint(0, 60)), good_csum=self.r.random() < 0.5))
            out.append(self.ip4(17, self.udp(5000, self.r.randint(0, 65535), self.rb(20), length=self.r.choice([0, 1, 7, 8, 100, 65535]))))
            out.append(self.ip4(6, self.tcp(5000, self.r.randint(0, 65535), self.r.getrandbits(9), self.rb(self.r.randint(0, 10)), doff=self.r.choice([0, 1, 4, 6, 15]))))
            out.append(self.ip4(1, struct.pack("!BB", 8, 0) + self.rb(self.r.randint(0, 5))))  # truncated ICMP
            # ICMP errors quoting garbage or truncated headers.
            out.append(self.ip4(1, struct.pack("!BBHI", self.r.choice([3, 4, 5, 11, 12]), self.r.randint(0, 15), 0, 0) + self.rb(self.r.randint(0, 60))))
            out.append(self.ip4(1, struct.pack("!BBHI", 3, 4, 0, 0) + self.ip4(6, self.tcp(80, 1000, 0x012))[: self.r.randint(0, 40)]))
            out.append(self.ip4(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1), dst=bytes([255, 255, 255, 255])))
            out.append(self.ip4(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1), src=bytes([0, 0, 0, 0])))
            out.append(self.ip4(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1), src=bytes([224, 0, 0, 1])))
        self.add("lying-ipv4", [self.eth(0x0800, p) for p in out])

    def lying_ipv6(self):
        out = []
        for _ in range(self.n(120)):
            seg = self.tcp(self.r.randint(1, 65535), self.r.randint(1, 65535), 0x002, self.rb(self.r.randint(0, 40)), fam=6)
            out.append(self.ip6(6, seg, plen=len(seg) + self.r.choice([1, 100, 65535 - len(seg)])))
            out.append(self.ip6(6, seg, plen=self.r.choice([0, 1, 19])))
            out.append(self.ip6(6, seg + self.rb(30), plen=len(seg)))
            out.append(self.ip6(17, self.udp(5000, self.r.randint(0, 65535), self.rb(20), length=self.r.choice([0, 1, 7, 100, 65535]), fam=6)))
            out.append(self.ip6(6, self.tcp(5000, self.r.randint(0, 65535), self.r.getrandbits(9), doff=self.r.choice([0, 3, 15]), fam=6)))
            out.append(self.ip6(58, struct.pack("!BB", 128, 0)))
            out.append(self.icmp6(self.r.choice([1, 2, 3, 4]), 0, struct.pack("!I", 0) + self.rb(self.r.randint(0, 60))))
            out.append(self.icmp6(128, 0, struct.pack("!HH", 1, 1), dst=ALLNODES6, hlim=64))
            # A Jumbo payload length of 0 without the hop-by-hop jumbo option.
            out.append(self.ip6(0, struct.pack("!BBBBI", 6, 0, 0xC2, 4, 70000) + seg, plen=0))
        self.add("lying-ipv6", [self.eth(0x86DD, p) for p in out])

    def ext_chains(self):
        out = []
        for _ in range(self.n(60)):
            tail = self.tcp(1000, self.r.randint(1, 65535), 0x002, fam=6)
            # A long chain of destination-options headers, ending in TCP.
            k = self.r.choice([2, 10, 100, 400])
            chain = b"".join(struct.pack("!BB6s", 60, 0, b"\x01\x04\0\0\0\0") for _ in range(k - 1)) + struct.pack("!BB6s", 6, 0, b"\x01\x04\0\0\0\0")
            out.append(self.ip6(60, chain + tail))
            # Hop-by-hop again and again (only allowed first), and a loop back to it.
            chain = b"".join(struct.pack("!BB6s", 0, 0, b"\x01\x04\0\0\0\0") for _ in range(self.r.choice([2, 50, 500])))
            out.append(self.ip6(0, chain))
            # An extension header whose length runs past the packet.
            out.append(self.ip6(self.r.choice([0, 43, 60, 44]), struct.pack("!BB", 6, self.r.choice([1, 16, 255])) + self.rb(self.r.randint(0, 30))))
            # A truncated extension header (fewer than 8 bytes).
            out.append(self.ip6(self.r.choice([0, 43, 60, 44, 51]), self.rb(self.r.randint(0, 7))))
            # Routing header type 0 with many addresses / segments left > addresses.
            out.append(self.ip6(43, struct.pack("!BBBB4x", 6, 2, 0, 200) + GW6 + tail))
            # Fragment header chains: fragment inside fragment.
            frag = struct.pack("!BBHI", 44, 0, 0x0001, self.r.getrandbits(32))
            out.append(self.ip6(44, frag * self.r.choice([2, 20]) + tail))
            # Options with lying lengths inside hop-by-hop.
            out.append(self.ip6(0, struct.pack("!BB", 6, 0) + bytes([self.r.choice([1, 5, 0xC2, 0xFF]), self.r.choice([0, 4, 200])]) + self.rb(4) + tail))
            # No next header (59), with trailing garbage.
            out.append(self.ip6(59, self.rb(self.r.randint(0, 100))))
            # Unknown next header numbers with random payloads.
            out.append(self.ip6(self.r.randint(0, 255), self.rb(self.r.randint(0, 80))))
        self.add("ipv6-ext-chains", [self.eth(0x86DD, p) for p in out])

    def ndp(self):
        out = []
        for _ in range(self.n(80)):
            target = self.r.choice([GW6, GUEST6, self.rb(16)])
            for opt in (
                struct.pack("!BB", 1, 0) + self.rb(6),  # source link-layer option, length 0 (loop trap)
                struct.pack("!BB", 2, 0) + self.rb(6),
                struct.pack("!BB", self.r.randint(0, 255), 0),
                struct.pack("!BB", 1, 255) + self.rb(6),  # runs past the end
                struct.pack("!BB", 1, 1) + self.src_mac + struct.pack("!BB", 3, 0),
                self.rb(self.r.randint(0, 20)),
            ):
                out.append(self.icmp6(135, 0, struct.pack("!I", 0) + target + opt, dst=self.r.choice([GW6, SOLICITED_GW6])))
                out.append(self.icmp6(136, 0, struct.pack("!I", 0xE0000000) + target + opt, dst=self.r.choice([GW6, ALLNODES6])))
                out.append(self.icmp6(134, 0, struct.pack("!BBHII", 64, 0, 1800, 0, 0) + opt, src=bytes.fromhex("fe80000000000000000000000000abcd"), dst=ALLNODES6))
                out.append(self.icmp6(133, 0, struct.pack("!I", 0) + opt, dst=bytes.fromhex("ff020000000000000000000000000002")))
                out.append(self.icmp6(137, 0, struct.pack("!I", 0) + target + GW6 + opt, dst=GW6))
            # NDP with a hop limit other than 255 and a truncated body.
            out.append(self.icmp6(135, 0, struct.pack("!I", 0) + GW6, hlim=64))
            out.append(self.icmp6(135, 0, self.rb(self.r.randint(0, 19))))
            # MLD / MLDv2 garbage.
            out.append(self.icmp6(self.r.choice([130, 131, 132, 143]), 0, self.rb(self.r.randint(0, 40)), dst=ALLNODES6, hlim=1))
        self.add("ndp", [self.eth(0x86DD, p) for p in out])

    def arp(self):
        out = []
        for _ in range(self.n(200)):
            op = self.r.choice([0, 1, 2, 3, 4, 8, 0xFFFF])
            hlen = self.r.choice([6, 6, 0, 1, 255])
            plen = self.r.choice([4, 4, 0, 16, 255])
            body = struct.pack("!HHBBH", self.r.choice([1, 6, 0xFFFF]), self.r.choice([0x0800, 0x86DD]), hlen, plen, op)
            body += self.rb(self.r.choice([0, 10, 20, 2 * (hlen + plen), 600]))
            out.append(self.eth(0x0806, body))
            # Well-formed but odd: probes from 0.0.0.0, claims for the gateway's own IP, broadcast targets.
            spa = self.r.choice([bytes(4), GW4, GUEST4, bytes([255] * 4), self.rb(4)])
            tpa = self.r.choice([GW4, bytes([255] * 4), self.rb(4), bytes(4)])
            sha = self.r.choice([self.src_mac, BCAST, bytes(6), self.rb(6)])
            out.append(self.eth(0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, self.r.choice([1, 2]), sha, spa, self.rb(6), tpa)))
        self.add("arp", out)

    def overlapping_fragments(self):
        out = []
        for i in range(self.n(150)):
            ident = 0x1000 + i
            proto = self.r.choice([1, 17, 6])
            size = self.r.randint(16, 3000)
            data = self.rb(size)
            pieces = []
            for _ in range(self.r.randint(2, 8)):
                a = self.r.randint(0, size // 8) * 8
                b = min(size, a + self.r.randint(1, 1400))
                more = 1 if b < size or self.r.random() < 0.3 else 0
                pieces.append(self.ip4(proto, data[a:b], ident=ident, frag=(more << 13) | (a >> 3)))
            # A conflicting duplicate of the first piece and a zero-length fragment.
            pieces.append(self.ip4(proto, self.rb(self.r.randint(8, 64)), ident=ident, frag=(1 << 13)))
            pieces.append(self.ip4(proto, b"", ident=ident, frag=(self.r.choice([0, 1]) << 13) | self.r.randint(0, 400)))
            # Last fragment before a bigger middle one, "DF" together with "MF".
            pieces.append(self.ip4(proto, self.rb(16), ident=ident, frag=(3 << 13) | 2))
            self.r.shuffle(pieces)
            out.extend(pieces)
            # A fragment whose end passes 65535.
            out.append(self.ip4(17, self.rb(self.r.choice([8, 100, 1400])), ident=ident, frag=(self.r.choice([0, 1]) << 13) | self.r.choice([8191, 8190, 8180])))
            # IPv6 fragments, overlapping.
            fid = self.r.getrandbits(32)
            for _ in range(3):
                off = self.r.randint(0, 100)
                more = self.r.choice([0, 1])
                out.append(self.ip6(44, struct.pack("!BBHI", 17, 0, (off << 3) | more, fid) + self.rb(self.r.choice([8, 16, 64, 1000]))))
            # An IPv6 fragment reaching past 65535 and an atomic fragment.
            out.append(self.ip6(44, struct.pack("!BBHI", 17, 0, (8191 << 3) | 1, fid) + self.rb(1000)))
            out.append(self.ip6(44, struct.pack("!BBHI", 58, 0, 0, fid) + struct.pack("!BBHHH", 128, 0, 0, 1, 1)))
        self.add("overlapping-fragments", [self.eth(0x0800 if (p[0] >> 4) == 4 else 0x86DD, p) for p in out])

    def endless_fragments(self):
        out = []
        for i in range(self.n(3000)):
            src = bytes([10, 0, 2, self.r.randint(1, 254)])
            if self.r.random() < 0.7:
                # First fragments of datagrams that never complete, each a different ID.
                out.append(self.eth(0x0800, self.ip4(17, self.rb(1400), src=src, ident=i & 0xFFFF, frag=(1 << 13) | self.r.choice([0, 0, 175, 350]))))
            else:
                out.append(self.eth(0x86DD, self.ip6(44, struct.pack("!BBHI", 17, 0, (self.r.choice([0, 175]) << 3) | 1, 0x10000 + i) + self.rb(1400))))
        self.add("endless-fragments", out)

    def tcp_flags(self):
        out = []
        bad_opts = [
            b"\x02\x04\x05\xb4",
            b"\x02\x00\x00\x00",  # MSS with length 0
            b"\x02\x01\x00\x00",
            b"\x03\x03\xff\x00",  # window scale 255
            b"\x04\x02\x05\x0a",  # SACK-permitted then SACK with a short block
            b"\x05\xff\x00\x00",  # SACK running past the header
            b"\x08\x0a" + b"\0" * 8 + b"\x00\x00",
            b"\xfe\x00\x00\x00",  # unknown kind, length 0 (loop trap)
            b"\x01\x01\x01\x00",
        ]
        for flags in range(512):
            for fam in (4, 6):
                dport = self.r.randint(0, 65535)
                sport = self.r.randint(0, 65535)
                opts = self.r.choice([b""] + bad_opts)
                dst4 = self.r.choice([GW4, bytes([1, 1, 1, 1]), bytes([10, 0, 2, self.r.randint(0, 255)]), bytes([127, 0, 0, 1])])
                pay = self.rb(self.r.choice([0, 0, 10, 1000]))
                if fam == 4:
                    seg = self.tcp(sport, dport, flags, pay, opts=opts, dst=dst4)
                    out.append(self.eth(0x0800, self.ip4(6, seg, dst=dst4)))
                else:
                    seg = self.tcp(sport, dport, flags, pay, opts=opts, fam=6)
                    out.append(self.eth(0x86DD, self.ip6(6, seg)))
        # SYNs from many source ports to one port (handshake limit), and to port 0.
        for i in range(self.n(300)):
            out.append(self.eth(0x0800, self.ip4(6, self.tcp(10000 + i, self.r.choice([0, 22, 80]), 0x002, opts=b"\x02\x04\x05\xb4"))))
        self.add("tcp-flags", out)

    def udp_misc(self):
        out = []
        for _ in range(self.n(300)):
            dport = self.r.choice([0, 53, 67, 123, 547, self.r.randint(1, 65535)])
            if self.r.random() < 0.5:
                out.append(self.eth(0x0800, self.ip4(17, self.udp(self.r.randint(0, 65535), dport, self.rb(self.r.randint(0, 200))), dst=self.r.choice([GW4, bytes([10, 0, 2, 3]), bytes([255] * 4), self.rb(4)]))))
            else:
                out.append(self.eth(0x86DD, self.ip6(17, self.udp(self.r.randint(0, 65535), dport, self.rb(self.r.randint(0, 200)), fam=6))))
        self.add("udp", out)

    def build(self):
        self.random_bytes()
        self.garbage_after_valid_eth()
        self.lying_ipv4()
        self.lying_ipv6()
        self.ext_chains()
        self.ndp()
        self.arp()
        self.overlapping_fragments()
        self.endless_fragments()
        self.tcp_flags()
        self.udp_misc()
        if self.mode == "tun":
            # Raw IP: drop the Ethernet header, keep only IP frames (and some garbage).
            for case in list(self.cases):
                frames = []
                for f in self.cases[case]:
                    if case == "random-bytes":
                        frames.append(f)
                    elif len(f) >= 14 and f[12:14] in (b"\x08\x00", b"\x86\xdd"):
                        frames.append(f[14:])
                if frames:
                    self.cases[case] = frames
                else:
                    del self.cases[case]
        return self.cases


def syn_then_rst(ifname, dst, dport, sport, gap):
    g = Gen(0, "tap", 1)
    dst4 = socket.inet_aton(dst)
    seq = 1000
    syn = g.eth(0x0800, g.ip4(6, g.tcp(sport, dport, 0x02, seq=seq, dst=dst4), dst=dst4), dst=STACK_MAC)
    rst = g.eth(0x0800, g.ip4(6, g.tcp(sport, dport, 0x04, seq=seq + 1, dst=dst4), dst=dst4), dst=STACK_MAC)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((ifname, 0))
    s.send(syn)
    time.sleep(gap)
    s.send(rst)
    print(json.dumps({"sent": 2}))


def main():
    if len(sys.argv) > 2 and sys.argv[2] == "synrst":
        syn_then_rst(sys.argv[1], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
        return
    ifname, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    scale = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    cases = Gen(seed, mode, scale).build()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((ifname, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    summary = {"seed": seed, "mode": mode, "cases": {}}
    total_sent = 0
    for name, frames in cases.items():
        sent = refused = 0
        for f in frames:
            for attempt in range(50):
                try:
                    s.send(f)
                    sent += 1
                    break
                except OSError as e:
                    if e.errno == 105 and attempt < 49:  # ENOBUFS: the device queue is full, let the stack drain it
                        time.sleep(0.002)
                        continue
                    refused += 1
                    break
            total_sent += 1
            if total_sent % 256 == 0:
                time.sleep(0.001)  # pace a little, so frames are not dropped at the tap queue
        summary["cases"][name] = {"frames": len(frames), "sent": sent, "refused": refused}
    summary["total"] = sum(c["frames"] for c in summary["cases"].values())
    summary["sent"] = sum(c["sent"] for c in summary["cases"].values())
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
