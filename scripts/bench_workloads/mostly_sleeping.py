"""Benchmark workload: one busy thread and 90 threads that mostly sleep.

    python mostly_sleeping.py SECONDS

A thread named "busy" computes all the time; 90 threads named "napper-0" to "napper-89" each loop
on time.sleep(0.01) followed by a short loop of arithmetic (200 additions), so each uses a little
CPU in many short bursts. Prints "ready" once all are started, and exits after SECONDS. A profiler
in CPU-time mode should give the nappers together the share of the samples that they have of the
threads' CPU time (scripts/bench reads that from /proc/PID/task/TID/schedstat).
"""
import sys
import threading
import time

NAPPERS = 90


def compute():
    total = 0
    while True:
        for i in range(1000):
            total += i * i % 7
        total %= 1000003


def nap():
    while True:
        time.sleep(0.01)
        total = 0
        for i in range(200):
            total += i


def main(seconds):
    threads = [threading.Thread(target=compute, name="busy", daemon=True)]
    for n in range(NAPPERS):
        threads.append(threading.Thread(target=nap, name="napper-%d" % n, daemon=True))
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    time.sleep(seconds)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60)
