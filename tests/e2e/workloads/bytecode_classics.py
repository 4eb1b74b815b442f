"""The classic lessons on Python speed, each as a pair of loops doing the same work two ways: a
while loop with a counter against a for loop over range, math.sqrt looked up every iteration against
a local alias, indexing against iterating. Runs them in turn until the deadline (argv[1] seconds);
with argv[2] "traced", under a trace function (from 3.12 the interpreter then rewrites the bytecode
with INSTRUMENTED_ instructions, keeping the originals beside it)."""
import math
import sys
import time

DEADLINE = time.time() + float(sys.argv[1])
DATA = [float(i) for i in range(2000)]


def counter(n):
    k = 0
    total = 0
    while k < n:
        total += k  # @counter_body
        k += 1
    return total


def iterator(n):
    total = 0
    for i in range(n):
        total += i  # @iterator_body
    return total


def dynamic(values):
    total = 0.0
    for v in values:
        total += math.sqrt(v)  # @dynamic_body
    return total


def cached(values):
    sqrt = math.sqrt
    total = 0.0
    for v in values:
        total += sqrt(v)  # @cached_body
    return total


def c_style(x):
    total = 0
    for i in range(len(x)):
        v = x[i]  # @c_style_body
        total += v
    return total


def pythonic(x):
    total = 0
    for v in x:
        total += v  # @pythonic_body
    return total


def tracer(frame, event, arg):
    return tracer


if len(sys.argv) > 2 and sys.argv[2] == "traced":
    sys.settrace(tracer)
print("ready")
sys.stdout.flush()
while time.time() < DEADLINE:
    counter(2000)
    iterator(2000)
    dynamic(DATA)
    cached(DATA)
    c_style(DATA)
    pythonic(DATA)
