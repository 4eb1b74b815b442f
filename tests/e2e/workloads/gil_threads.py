# One thread busy in Python code, two sleeping and the main thread waiting in join(): the busy one
# holds the GIL, since nothing else asks for it.
import sys
import threading
import time


def spin(seconds):
    end = time.time() + seconds
    count = 0
    while time.time() < end:
        count += 1  # @spin
    return count


def sleep_long(seconds):
    time.sleep(seconds)  # @sleep


seconds = float(sys.argv[1])
workers = [
    threading.Thread(target=spin, args=(seconds,), name="busy"),
    threading.Thread(target=sleep_long, args=(seconds,), name="sleeper-1"),
    threading.Thread(target=sleep_long, args=(seconds,), name="sleeper-2"),
]
for worker in workers:
    worker.start()
sys.stdout.write("ready\n")  # print(..., flush=True) is Python 3 only
sys.stdout.flush()
for worker in workers:
    worker.join()
