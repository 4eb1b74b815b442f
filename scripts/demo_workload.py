# A small program to profile: a recursive fibonacci, some string work and a sort.
import sys
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def build_words(count):
    return ["word%05d" % (i * 7919 % count) for i in range(count)]


def sort_words(words):
    return sorted(words, key=lambda w: w[::-1])


def main(seconds=3.0):
    end = time.time() + seconds
    while time.time() < end:
        fib(23)
        sort_words(build_words(20000))


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
