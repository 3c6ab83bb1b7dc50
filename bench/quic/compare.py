#!/usr/bin/env python3
"""Interleaved A/B runs of quic_bulk (bench/quic/README.md).

  compare.py --after BUILD/quic_bulk [--before OLD/quic_bulk] [--rounds 5] [--mib 128] [--echo-mib 24]

Runs every configuration once per round, in the same order each round (ABCD ABCD ...), so load
drifts on a shared box hit all of them alike, then prints per configuration the median of each
figure and the min..max of the total CPU per MiB.
"""
import argparse
import re
import statistics
import subprocess

LINE = re.compile(
    r"(?P<mbs>[\d.]+) MB/s\s+client\s+(?P<c>[\d.]+) CPU-ms/MiB \(usr\s+(?P<cu>[\d.]+) sys\s+(?P<cs>[\d.]+)\)\s+"
    r"server\s+(?P<s>[\d.]+) CPU-ms/MiB \(usr\s+(?P<su>[\d.]+) sys\s+(?P<ss>[\d.]+)\)\s+total\s+(?P<t>[\d.]+)"
    r"(?:\s+sendmsg/MiB (?P<snd>\d+) recvmmsg/MiB (?P<rcv>\d+))?")


def run(binary, args):
    out = subprocess.run([binary] + args, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = LINE.search(line)
        if m:
            return {k: float(v) for k, v in m.groupdict().items() if v is not None}
    raise RuntimeError("no result line in: " + out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before")
    ap.add_argument("--after", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--echo-mib", type=int, default=24)
    a = ap.parse_args()
    up = ["--mode", "up", "--mib", str(a.mib)]
    echo = ["--mode", "echo", "--mib", str(a.echo_mib)]
    configs = []
    if a.before:
        configs.append(("before            up   1452", a.before, up))
    configs += [
        ("after no-gso/gro  up   1452", a.after, up + ["--no-gso", "--no-gro"]),
        ("after gso, no-gro up   1452", a.after, up + ["--no-gro"]),
        ("after gso+gro     up   1452", a.after, up),
        ("after gso+gro     up   8192", a.after, up + ["--payload", "8192"]),
        ("after gso+gro     up  16384", a.after, up + ["--payload", "16384"]),
        ("after gso+gro     up  65507", a.after, up + ["--payload", "65507"]),
    ]
    if a.before:
        configs.append(("before            echo 1452", a.before, echo))
    configs += [
        ("after gso+gro     echo 1452", a.after, echo),
        ("after gso+gro     echo 16384", a.after, echo + ["--payload", "16384"]),
    ]
    results = {name: [] for name, _, _ in configs}
    for _ in range(a.rounds):
        for name, binary, args in configs:
            results[name].append(run(binary, args))
    print(f"{'configuration':28} {'MB/s':>7} {'client':>7} {'(sys)':>6} {'server':>7} {'(sys)':>6} "
          f"{'total':>6} {'min..max':>12} {'sendmsg':>8} {'recvmmsg':>8}   (CPU-ms/MiB, per MiB)")
    for name, _, _ in configs:
        rs = results[name]
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        lo, hi = min(r["t"] for r in rs), max(r["t"] for r in rs)
        snd = f"{med['snd']:8.0f}" if "snd" in med else f"{'-':>8}"
        rcv = f"{med['rcv']:8.0f}" if "rcv" in med else f"{'-':>8}"
        print(f"{name:28} {med['mbs']:7.1f} {med['c']:7.2f} {med['cs']:6.2f} {med['s']:7.2f} {med['ss']:6.2f} "
              f"{med['t']:6.2f} {lo:5.2f}..{hi:5.2f} {snd} {rcv}")


if __name__ == "__main__":
    main()
