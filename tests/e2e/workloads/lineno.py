# Sits in time.sleep() deep in a long function, inside a multi-line call, a loop and a generator; the
# stack is first walked with sys._getframe() from the very same call sites, and each frame's f_lineno is
# printed (JSON, before "ready") so the tests compare pysample's lines with the interpreter's own.
import json
import sys
import time

STACKS = []


def snapshot(seconds):
    """Stands in for time.sleep on the first pass: records every calling frame's name and f_lineno."""
    frame = sys._getframe(1)
    stack = []
    while frame is not None:
        stack.append([frame.f_code.co_name, frame.f_lineno])
        frame = frame.f_back
    STACKS.append(stack[::-1])


def helper(a, b, c):
    return a


def leaf(sleeper, seconds):
    x = 0
    result = None
    for i in range(2):
        # A long loop body: line deltas over 255, and a backward jump spanning it.
        for step in range(3):
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            if x > 9000:  # a forward jump
                x -= 1
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            if x > 19000:  # a forward jump
                x -= 1
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            if x > 29000:  # a forward jump
                x -= 1
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            if x > 39000:  # a forward jump
                x -= 1
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            if x > 49000:  # a forward jump
                x -= 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            if x > 59000:  # a forward jump
                x -= 1
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            if x > 69000:  # a forward jump
                x -= 1
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            if x > 79000:  # a forward jump
                x -= 1
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            if x > 89000:  # a forward jump
                x -= 1
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            if x > 99000:  # a forward jump
                x -= 1
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            if x > 109000:  # a forward jump
                x -= 1
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            if x > 119000:  # a forward jump
                x -= 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            if x > 129000:  # a forward jump
                x -= 1
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            if x > 139000:  # a forward jump
                x -= 1
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            if x > 149000:  # a forward jump
                x -= 1
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            if x > 159000:  # a forward jump
                x -= 1
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            if x > 169000:  # a forward jump
                x -= 1
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            if x > 179000:  # a forward jump
                x -= 1
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            if x > 189000:  # a forward jump
                x -= 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            if x > 199000:  # a forward jump
                x -= 1
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            if x > 209000:  # a forward jump
                x -= 1
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            if x > 219000:  # a forward jump
                x -= 1
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            if x > 229000:  # a forward jump
                x -= 1
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            if x > 239000:  # a forward jump
                x -= 1
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            if x > 249000:  # a forward jump
                x -= 1
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            if x > 259000:  # a forward jump
                x -= 1
            x += 2
            x += 3
            x += 4
            x += 5
            x += 6
            x += 7
            x += 1
            x += 2
            x += 3
            if x > 269000:  # a forward jump
                x -= 1
        while x < 0:
            x += 1
        if i == 1:
            result = helper(
                x,
                sleeper(
                    seconds),
                [j for j in range(2)])
    return result


def stepper(sleeper, seconds):
    yield 1
    yield leaf(sleeper,
               seconds)


def middle(sleeper, seconds):
    for attempt in range(3):
        if attempt == 2:
            return list(stepper(sleeper, seconds))
    return None


def main(seconds):
    for sleeper in (snapshot, time.sleep):
        if sleeper is time.sleep:
            sys.stdout.write(json.dumps(STACKS[0]) + "\n")
            sys.stdout.write("ready\n")
            sys.stdout.flush()
        middle(sleeper, seconds)  # the same call site on both passes


main(float(sys.argv[1]))
