# Hot code inside a generator body while a for loop iterates it; line markers are read by the tests.
import sys
import time


def gen(n):
    while True:
        total = 0
        for i in range(n): total += i * i  # @genloop
        yield total


def consume(end):
    for value in gen(3000):  # @callgen
        if time.time() >= end:
            return value


def main(seconds):
    sys.stdout.write("ready\n")  # print(..., flush=True) is Python 3 only
    sys.stdout.flush()
    consume(time.time() + seconds)  # @callconsume


main(float(sys.argv[1]))  # @callmain
