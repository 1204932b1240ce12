"""Summarise a py-spy collapsed-stack file (``py-spy record --format raw``): where the samples go.

Prints the functions with the largest inclusive share of samples (a function counted once per
sample however deep it recurs), optionally only below frames matching ``--under``.

    .venv/bin/python benchmarks/stacks.py profile.txt [--top 40] [--under _execute] [--idle]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

IDLE = re.compile(r"\b(wait|select|poll|epoll|_worker|sleep|acquire|get)\b \(")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", default=None, help="only samples whose stack has a frame containing this text")
    parser.add_argument("--idle", action="store_true", help="keep samples whose innermost frame is waiting (lock, select, sleep)")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in open(args.path, encoding="utf-8", errors="replace"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if args.under and not any(args.under in f for f in frames):
            continue
        if not args.idle and IDLE.search(frames[-1]):
            continue
        n = int(count)
        total += n
        for frame in set(re.sub(r":\d+\)$", ")", f) for f in frames):
            inclusive[frame] += n
    print(f"{total} samples")
    for frame, n in inclusive.most_common(args.top):
        print(f"{100 * n / total:6.1f}%  {frame[:160]}")


if __name__ == "__main__":
    main()
