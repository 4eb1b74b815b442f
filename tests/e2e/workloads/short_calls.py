# A loop that spends about half its time in calls of a few microseconds each (short_call) and half
# in its own code between them, and a generator resumed as often. Arguments: seconds, then the
# loop length inside each call. Line markers are read by the tests.
import sys
import time


def short_call(n):
    total = 0
    for i in range(n):
        total += i  # @shortloop
    return total


def values(n):
    while True:
        total = 0
        for i in range(n):
            total += i  # @genloop
        yield total


def caller(end, n):
    produced = values(n)
    while time.time() < end:
        for _ in range(100):
            total = 0
            for i in range(n):
                total += i  # @ownloop
            short_call(n)  # @callshort
            next(produced)  # @callgen


sys.stdout.write("ready\n")
sys.stdout.flush()
caller(time.time() + float(sys.argv[1]), int(sys.argv[2]))  # @callcaller
