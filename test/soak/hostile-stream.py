#!/usr/bin/env python3
"""A steady stream of hostile frames for the soak (test/soak/soak.ts).

    hostile-stream.py IFNAME RATE

Run inside the guest. Writes Ethernet frames to IFNAME (a tap) through an
AF_PACKET socket at about RATE frames per second, until killed, in rounds:
each round is every case of test/support/hostile.py (imported, with a new
seed and a small scale), plus the soak's own cases below, shuffled:

  syn-flood        SYNs from forged sources (other 10.0.2.0/24 and fd00::/64
                   addresses, outside addresses) to the host's servers, a -R
                   forward and a closed port; nobody ever ACKs
  frag-holes       IPv4 and IPv6 datagrams with a middle fragment missing
  bad-tcp-options  SYNs and data segments from the guest's own address to
                   live ports with malformed options
  udp-forged-ports DNS-like queries from random source ports (and forged
                   sources) to the host's 32 responders; the replies reach
                   no socket in the guest
  multicast-ping   echo requests from multicast and broadcast sources,
                   which must never be answered

Every STATS_SECS it prints one JSON line {"hostile": frames sent since the
previous line, "refused": frames the kernel refused}.
"""
import importlib.util
import json
import os
import random
import socket
import struct
import sys
import time

_spec = importlib.util.spec_from_file_location("hostile", os.path.join(os.path.dirname(__file__), "..", "support", "hostile.py"))
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)

GUEST4, GW4, GUEST6, GW6 = hostile.GUEST4, hostile.GW4, hostile.GUEST6, hostile.GW6
HOST4 = bytes([192, 0, 2, 1])
HOST6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
# Ports of the soak's plan (test/soak/traffic.py).
TCP_TARGETS4 = [(HOST4, 8000), (HOST4, 8001), (GW4, 8080), (HOST4, 9)]
TCP_TARGETS6 = [(HOST6, 8000), (HOST6, 8001), (HOST6, 9)]
DNS_PORTS = list(range(5300, 5332))
STATS_SECS = 10
# hostile.py's cases at this scale: about 1,400 frames a round (its tcp-flags
# case is not scaled), and about 450 of the soak's own.
BASE_SCALE = 0.02


class SoakGen(hostile.Gen):
    """hostile.Gen with the guest's real MAC as the source of every frame.

    The stack learns the guest's MAC from what the guest sends (ARP, NDP,
    and the source of IP frames), as a kernel's neighbour layer does. A
    frame that claims one of the guest's own addresses from another MAC
    would send the stack's replies for the soak's real traffic into the
    void: the guest can only hurt itself that way, and it would hide what
    the soak measures. So the frames come from the real MAC, and ARP and
    NDP claims for the guest's addresses are moved to other addresses of
    its subnets.
    """

    def __init__(self, seed, mode, scale, mac):
        super().__init__(seed, mode, scale)
        self.src_mac = mac

    def icmp6(self, typ, code, body, src=GUEST6, dst=GW6, hlim=255):
        if 133 <= typ <= 137:
            if src == GUEST6:
                src = self.forged_guest6()
            if typ in (135, 136, 137) and body[4:20] == GUEST6:
                body = body[:4] + self.forged_guest6() + body[20:]
        return super().icmp6(typ, code, body, src=src, dst=dst, hlim=hlim)

    def arp(self):
        super().arp()
        frames = self.cases["arp"]
        for i, f in enumerate(frames):
            # Sender protocol address of an Ethernet/IPv4 ARP body (hlen 6, plen 4).
            if len(f) >= 42 and f[18] == 6 and f[19] == 4 and f[28:32] == GUEST4:
                frames[i] = f[:28] + bytes([10, 0, 2, self.r.randint(101, 254)]) + f[32:]

    def forged_guest6(self):
        return GUEST6[:14] + bytes([0x02, self.r.randint(0, 255)])

    def forged4(self):
        return self.r.choice([
            bytes([10, 0, 2, self.r.choice([x for x in range(1, 255) if x not in (2, 3, 100)])]),
            bytes([198, 51, 100, self.r.randint(1, 254)]),
            self.rb(4),
        ])

    def forged6(self):
        return GUEST6[:14] + self.rb(2) if self.r.random() < 0.7 else bytes.fromhex("20010db8") + self.rb(12)

    def syn_flood(self):
        out = []
        # About 4 a second at the default rate: their places live 63 s (six
        # SYN-ACK tries), so some 250 stay SYN-RECEIVED, under the half of
        # the cap where the stack starts pruning them faster.
        for _ in range(40):
            src = self.forged4()
            dst, port = self.r.choice(TCP_TARGETS4)
            seg = self.tcp(self.r.randint(1024, 65535), port, 0x002, opts=b"\x02\x04\x05\xb4", src=src, dst=dst)
            out.append(self.eth(0x0800, self.ip4(6, seg, src=src, dst=dst), dst=hostile.STACK_MAC))
            src6 = self.forged6()
            dst6, port6 = self.r.choice(TCP_TARGETS6)
            seg = self.tcp(self.r.randint(1024, 65535), port6, 0x002, opts=b"\x02\x04\x05\xa0", fam=6, src=src6, dst=dst6)
            out.append(self.eth(0x86DD, self.ip6(6, seg, src=src6, dst=dst6), dst=hostile.STACK_MAC))
        self.add("syn-flood", out)

    def frag_holes(self):
        out = []
        for _ in range(30):
            dst = self.r.choice([GW4, HOST4])
            data = self.udp(self.r.randint(1024, 65535), self.r.choice(DNS_PORTS), self.rb(2400), fix=False)
            ident = self.r.getrandbits(16)
            # Pieces 0 and 2 of three; piece 1 never comes.
            out.append(self.eth(0x0800, self.ip4(17, data[0:800], dst=dst, ident=ident, frag=(1 << 13) | 0)))
            out.append(self.eth(0x0800, self.ip4(17, data[1600:], dst=dst, ident=ident, frag=1600 >> 3)))
            fid = self.r.getrandbits(32)
            for off, piece, more in ((0, data[0:800], 1), (1600, data[1600:], 0)):
                out.append(self.eth(0x86DD, self.ip6(44, struct.pack("!BBHI", 17, 0, off | more, fid) + piece, dst=self.r.choice([GW6, HOST6]))))
        self.add("frag-holes", out)

    def bad_tcp_options(self):
        bad = [
            b"\x02\x00\x00\x00", b"\x02\x03\x05\xb4", b"\x03\x03\xff\x00", b"\x05\xff\x00\x00",
            b"\x08\x0a" + b"\0" * 8 + b"\x00\x00", b"\xfe\x00\x00\x00", b"\x04\x02\x05\x0a", b"\x02\x04\x00\x00",
            b"\x01" * 40, b"\x1e\x28" + b"\xff" * 38,
        ]
        out = []
        for _ in range(100):
            dst, port = self.r.choice(TCP_TARGETS4)
            flags = self.r.choice([0x002, 0x010, 0x018, 0x012, 0x011])
            seg = self.tcp(self.r.randint(1024, 65535), port, flags, self.rb(self.r.choice([0, 0, 20])), opts=self.r.choice(bad), dst=dst)
            out.append(self.eth(0x0800, self.ip4(6, seg, dst=dst), dst=hostile.STACK_MAC))
        self.add("bad-tcp-options", out)

    def udp_forged_ports(self):
        out = []
        for _ in range(10):
            src = GUEST4 if self.r.random() < 0.7 else self.forged4()
            payload = struct.pack("!HHHHHH", self.r.getrandbits(16), 0x0100, 1, 0, 0, 0) + b"\x04soak\x04test\x00\x00\x01\x00\x01"
            seg = struct.pack("!HHHH", self.r.randint(1, 65535), self.r.choice(DNS_PORTS), 8 + len(payload), 0) + payload
            c = self.l4csum4(17, seg, src, HOST4)
            seg = seg[:6] + struct.pack("!H", c or 0xFFFF) + seg[8:]
            out.append(self.eth(0x0800, self.ip4(17, seg, src=src, dst=HOST4), dst=hostile.STACK_MAC))
        self.add("udp-forged-ports", out)

    def multicast_ping(self):
        out = []
        for _ in range(20):
            src = self.r.choice([bytes([224, 0, 0, self.r.randint(1, 254)]), bytes([239, self.r.randint(0, 255), 1, 1]), bytes([255] * 4)])
            body = struct.pack("!BBHHH", 8, 0, 0, self.r.getrandbits(16), 1) + self.rb(32)
            body = body[:2] + struct.pack("!H", hostile.csum(body)) + body[4:]
            out.append(self.eth(0x0800, self.ip4(1, body, src=src, dst=self.r.choice([GW4, HOST4])), dst=hostile.STACK_MAC))
            src6 = self.r.choice([bytes.fromhex("ff020000000000000000000000000001"), bytes.fromhex("ff050000000000000000000000000002")])
            out.append(self.eth(0x86DD, self.icmp6(128, 0, struct.pack("!HH", 1, 1) + self.rb(32), src=src6, dst=self.r.choice([GW6, HOST6]), hlim=64), dst=hostile.STACK_MAC))
        self.add("multicast-ping", out)

    def round(self):
        self.build()
        self.syn_flood()
        self.frag_holes()
        self.bad_tcp_options()
        self.udp_forged_ports()
        self.multicast_ping()
        frames = [f for fs in self.cases.values() for f in fs]
        self.r.shuffle(frames)
        return frames


def main():
    ifname, rate = sys.argv[1], float(sys.argv[2])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((ifname, 0))
    mac = s.getsockname()[4]  # the device's hardware address
    seed = int.from_bytes(os.urandom(4), "big")
    sent = refused = 0
    last = time.monotonic()
    batch = 10
    while True:
        seed += 1
        for i, f in enumerate(SoakGen(seed, "tap", BASE_SCALE, mac).round()):
            try:
                s.send(f)
                sent += 1
            except OSError:
                refused += 1  # too short or too long for the device, or its queue is full
            if i % batch == batch - 1:
                time.sleep(batch / rate)
            now = time.monotonic()
            if now - last >= STATS_SECS:
                print(json.dumps({"hostile": sent, "refused": refused, "seed": seed}), flush=True)
                sent = refused = 0
                last = now


if __name__ == "__main__":
    main()
