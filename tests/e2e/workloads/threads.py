# Three CPU-bound threads with distinct functions, while the main thread waits in join().
import sys
import threading
import time


def spin(seconds):
    end = time.time() + seconds
    count = 0
    while time.time() < end:
        count += 1  # @spin
    return count


def busy_alpha(seconds):
    spin(seconds)  # @alpha


def busy_beta(seconds):
    spin(seconds)  # @beta


def busy_gamma(seconds):
    spin(seconds)  # @gamma


seconds = float(sys.argv[1])
workers = [
    threading.Thread(target=busy_alpha, args=(seconds,), name="alpha"),
    threading.Thread(target=busy_beta, args=(seconds,), name="beta"),
    threading.Thread(target=busy_gamma, args=(seconds,), name="gamma"),
]
for worker in workers:
    worker.start()
sys.stdout.write("ready\n")  # print(..., flush=True) is Python 3 only
sys.stdout.flush()
for worker in workers:
    worker.join()
