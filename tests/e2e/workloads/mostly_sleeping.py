# One thread that computes all the time and 90 that wake every 10 ms to compute for a moment: the
# 90 are runnable (waiting for a core, or for the GIL's handover) far more often than they run.
# Arguments: seconds.
import sys
import threading
import time


def busy_worker(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        total += 1
    return total


def napper(seconds):
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.01)
        total = 0
        for i in range(200):
            total += i


seconds = float(sys.argv[1])
threads = [threading.Thread(target=busy_worker, args=(seconds,), name="busy")]
threads += [threading.Thread(target=napper, args=(seconds,), name="napper-%d" % i) for i in range(90)]
for thread in threads:
    thread.daemon = True
    thread.start()
sys.stdout.write("ready\n")
sys.stdout.flush()
time.sleep(seconds)
