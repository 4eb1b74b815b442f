# Short-lived threads started and ended all the time, each running a known call chain from its
# entry function (started with the low-level thread module: no threading frames below it).
# Arguments: seconds, threads alive at once. Prints 'ready', and at the end 'started N'.
import sys
import time

try:
    import _thread as thread_module
except ImportError:  # Python 2
    import thread as thread_module

guard = thread_module.allocate_lock()
running = [0]


def leaf(n):
    total = 0
    for i in range(n):
        total += i * i  # @leafloop
    return total


def middle(n):
    return leaf(n)  # @callleaf


def entry(n):
    try:
        middle(n)  # @callmiddle
    finally:
        guard.acquire()
        running[0] -= 1
        guard.release()


def main(seconds, alive):
    started = 0
    end = time.time() + seconds
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while time.time() < end:
        if running[0] >= alive:
            time.sleep(0.0002)  # @waitslot
            continue
        guard.acquire()
        running[0] += 1
        guard.release()
        thread_module.start_new_thread(entry, (1000,))  # @spawn
        started += 1
    while running[0] > 0:
        time.sleep(0.001)
    sys.stdout.write("started %d\n" % started)
    sys.stdout.flush()


main(float(sys.argv[1]), int(sys.argv[2]))  # @callmain
