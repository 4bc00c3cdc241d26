#!/usr/bin/env python3
"""Summarises `perf script -F pid,ip,sym,dso` output (with call graphs): each named process's share of the samples and
what its leaf frames were (kernel, .NET runtime, managed code), and for the process named 'leader' the samples by the
assembly of the leaf frame; then, for 'leader' and 'raft-cli', the frames most often at the leaf and most often
anywhere on the stack (a frame counted once per sample). Usage: perf-summary.py perf.txt PID=name ... (a later name for
the same PID wins); RAFTKV_PERF_TOP=N frames in those two lists (default 25, 0 for none)."""
import collections
import os
import re
import sys

names = dict(arg.split("=", 1) for arg in sys.argv[2:])
frame = re.compile(r"\s*[0-9a-f]+ (.*) \((.*)\)\s*$")
assembly = re.compile(r"\[([A-Za-z0-9_.]+)\] [A-Za-z]")


def kind(symbol, dso):
    if "kernel" in dso:
        return "kernel"
    if "libcoreclr" in dso or "libclrjit" in dso or symbol.startswith("stub "):
        return ".NET runtime (GC, JIT, stubs)"
    if ".so" in dso:
        return "native libraries"
    return "managed code"


samples = collections.Counter()
kinds = collections.defaultdict(collections.Counter)
leader_assemblies = collections.Counter()
leaf_frames = collections.defaultdict(collections.Counter)
stack_frames = collections.defaultdict(collections.Counter)


def record(pid, frames):
    if pid is None or not frames:
        return
    name = names.get(pid, "other")
    symbol, dso = frames[0]
    samples[name] += 1
    kinds[name][kind(symbol, dso)] += 1
    if name == "leader":
        match = assembly.search(symbol)
        leader_assemblies[match.group(1) if match else kind(symbol, dso)] += 1
    if name in ("leader", "raft-cli"):
        leaf_frames[name][symbol] += 1
        for on_stack in {s for s, _ in frames}:
            stack_frames[name][on_stack] += 1


pid, frames = None, []
with open(sys.argv[1], encoding="utf-8", errors="replace") as lines:
    for line in lines:
        if not line.strip():
            continue
        if not line.startswith("\t"):
            record(pid, frames)
            pid, frames = line.split()[0], []
        elif (match := frame.match(line)) is not None:
            frames.append((match.group(1), match.group(2)))
record(pid, frames)

total = sum(samples.values()) or 1
print(f"{total:,} samples")
for name, count in samples.most_common():
    parts = ", ".join(f"{k} {100 * v / count:.0f}%" for k, v in kinds[name].most_common())
    print(f"  {name:8s} {100 * count / total:5.1f}% of samples: {parts}")
if leader_assemblies:
    count = sum(leader_assemblies.values())
    print("leader, by the assembly of the sampled (leaf) frame:")
    for name, value in leader_assemblies.most_common(16):
        print(f"  {100 * value / count:5.1f}%  {name}")
top = int(os.environ.get("RAFTKV_PERF_TOP", "25"))
for name in ("leader", "raft-cli") if top > 0 else ():
    count = samples[name] or 1
    for title, counter in (("at the leaf", leaf_frames[name]), ("anywhere on the stack", stack_frames[name])):
        print(f"{name}, the frames most often {title}:")
        for symbol, value in counter.most_common(top):
            print(f"  {100 * value / count:5.1f}%  {symbol[:160]}")
