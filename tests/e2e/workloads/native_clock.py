# Reads the clock in a tight loop: much of the time is spent in the kernel's vDSO, for --native.
import sys
import time


def read_clock():
    total = 0.0
    for _ in range(1000):
        total += time.time()  # @clock
    return total


sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    read_clock()  # @callclock
