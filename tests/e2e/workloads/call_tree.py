"""A call tree with recursion, a lambda and two named threads, for the pprof and callgrind tests."""
import sys
import threading
import time

DEADLINE = time.time() + float(sys.argv[1])


def spin(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def recurse(depth):
    if depth == 0:
        return spin(20000)
    return recurse(depth - 1)


def through(depth):
    # Recursion through another function: recurse_via -> through -> recurse_via.
    return recurse_via(depth - 1)


def recurse_via(depth):
    if depth == 0:
        return spin(10000)
    return through(depth)


square = lambda n: spin(n)  # noqa: E731


def worker_a():
    while time.time() < DEADLINE:
        spin(30000)
        recurse(3)


def worker_b():
    while time.time() < DEADLINE:
        square(20000)
        recurse_via(2)


threads = [threading.Thread(target=worker_a, name="worker-a"), threading.Thread(target=worker_b, name="worker-b")]
for thread in threads:
    thread.start()
print("ready", flush=True)
for thread in threads:
    thread.join()
