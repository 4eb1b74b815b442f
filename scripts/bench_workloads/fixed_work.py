"""Benchmark workload: identical units of pure-Python work, counted in a shared file.

    python fixed_work.py COUNTER_FILE

Does the same small unit of arithmetic over and over, with the thread at stack depth 20
(<module> -> main -> descend x 17 -> unit), and after each unit stores the number of units done
as a little-endian 64-bit integer at offset 0 of COUNTER_FILE, which it maps into memory. Another
process reads the throughput from that file without touching this one. Runs until killed.
"""
import mmap
import os
import struct
import sys

DEPTH = 20


def unit(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def descend(levels, counter):
    if levels > 1:
        return descend(levels - 1, counter)
    done = 0
    while True:
        unit(200)
        done += 1
        struct.pack_into("<Q", counter, 0, done)


def main(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, mmap.PAGESIZE)
    counter = mmap.mmap(fd, mmap.PAGESIZE)
    descend(DEPTH - 3, counter)


if __name__ == "__main__":
    main(sys.argv[1])
