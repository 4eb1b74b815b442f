# What exec_into.py becomes. Arguments: seconds.
import sys
import time


def after_exec(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        total += 1
    return total


after_exec(float(sys.argv[1]))
