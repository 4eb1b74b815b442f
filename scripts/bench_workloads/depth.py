"""Benchmark workload: pure-Python CPU work at a fixed, known stack depth.

    python depth.py DEPTH

The thread spends nearly all its time in leaf(), whose frame is at total depth DEPTH:
<module> -> main -> descend (DEPTH - 3 frames) -> leaf. Every call is on a line of its own, so a
profiler's stacks can be checked edge by edge against this file (scripts/bench does so).
Runs until killed.
"""
import sys


def leaf(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def descend(levels, calls, n):
    if levels > 1:
        return descend(levels - 1, calls, n)
    total = 0
    for _ in range(calls):
        total += leaf(n)
    return total


def main(depth):
    levels = depth - 3
    while True:
        descend(levels, 2000, 400)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
