# Recursion far deeper than a sampler keeps whole: `recurse` calls itself DEPTH times, then the
# innermost call works in `bottom`, repeatedly, without returning.
# Arguments: depth, seconds.
import sys
import time


def bottom(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        total += 1  # @bottom
    return total


def recurse(depth, seconds):
    if depth == 0:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        return bottom(seconds)  # @callbottom
    return recurse(depth - 1, seconds)  # @recurse


sys.setrecursionlimit(int(sys.argv[1]) + 1000)
recurse(int(sys.argv[1]), float(sys.argv[2]))  # @callrecurse
