# Two functions sharing the CPU roughly 30/70, called from main(); line markers are read by the tests.
import sys
import time


def work_30():
    total = 0
    for i in range(3000): total += i * i  # @loop30
    return total


def work_70():
    total = 0
    for i in range(7000): total += i * i  # @loop70
    return total


def main(seconds):
    end = time.time() + seconds
    sys.stdout.write("ready\n")  # print(..., flush=True) is Python 3 only
    sys.stdout.flush()
    while time.time() < end:
        work_30()  # @call30
        work_70()  # @call70


main(float(sys.argv[1]))  # @callmain
