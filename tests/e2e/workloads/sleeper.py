# Sits in time.sleep() inside two known frames, for `dump`.
import sys
import time


def inner(seconds):
    sys.stdout.write("ready\n")  # print(..., flush=True) is Python 3 only
    sys.stdout.flush()
    time.sleep(seconds)  # @sleep


def outer(seconds):
    inner(seconds)  # @callinner


outer(float(sys.argv[1]))  # @callouter
