# What runs in a container: a main thread that waits, a named thread that computes, and a child
# process that computes a third of the time. Run in its own PID namespace, every id it knows
# differs from the host's.
# Arguments: seconds.
import os
import sys
import threading
import time


def spin(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        total += 1  # @spin
    return total


def child_spin(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        burst = time.time() + 0.01
        while time.time() < burst:
            total += 1  # @childspin
        time.sleep(0.02)
    return total


def main_wait(seconds):
    time.sleep(seconds)  # @mainwait


seconds = float(sys.argv[1])
worker = threading.Thread(target=spin, args=(seconds,), name="container-worker")
worker.daemon = True
worker.start()
child = os.fork()
if child == 0:
    child_spin(seconds)
    os._exit(0)
sys.stdout.write("ready\n")
sys.stdout.flush()
main_wait(seconds)  # @callmainwait
os.waitpid(child, 0)
