# Methods, nested functions, a lambda and a static method, for comparing pysample's pstats keys
# with cProfile's: run for SECONDS, or until killed.
import sys
import time


class Worker(object):
    def run(self, n):
        total = 0
        for i in range(n):
            total += i * i
        return total

    @staticmethod
    def helper(n):
        return sum(range(n))


def outer(n):
    def inner(k):
        return Worker().run(k)
    return inner(n) + Worker.helper(n) + (lambda k: k * 2)(n)


def main(seconds):
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    end = time.time() + seconds
    while time.time() < end:
        outer(2000)


main(float(sys.argv[1]))
