"""Three functions sharing a thread's time in a proportion given on the command line, for diff:
shifting.py SECONDS A B C runs a(), b() and c() for A, B and C parts of each round."""
import sys
import time

SECONDS, PARTS = float(sys.argv[1]), [int(part) for part in sys.argv[2:5]]


def spin(n):
    total = 0
    for i in range(n):
        total += i
    return total


def hot_a(n):
    return spin(n)


def hot_b(n):
    return spin(n)


def steady_c(n):
    return spin(n)


def main():
    deadline = time.time() + SECONDS
    print("ready", flush=True)
    while time.time() < deadline:
        for function, part in zip((hot_a, hot_b, steady_c), PARTS):
            if part:
                function(part * 2000)


main()
