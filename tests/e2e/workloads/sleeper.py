# Sits in time.sleep() inside two known frames, for `dump`.
import sys
import time


def inner(seconds):
    print("ready", flush=True)
    time.sleep(seconds)  # @sleep


def outer(seconds):
    inner(seconds)  # @callinner


outer(float(sys.argv[1]))  # @callouter
