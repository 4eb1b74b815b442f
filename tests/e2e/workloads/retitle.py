# A parent that forks two workers, each of which renames itself every 50 ms the way setproctitle
# does for gunicorn and celery workers: by writing a new title over its argument area, which is
# what /proc/PID/cmdline shows. Arguments: seconds.
import ctypes
import os
import sys
import time


def argument_area():
    with open("/proc/self/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # arg_start and arg_end are the 48th and 49th fields; the first after ')' is the 3rd.
    return int(fields[45]), int(fields[46])


def retitle(title):
    start, end = argument_area()
    data = title.encode()[:end - start - 1]
    ctypes.memmove(start, data + b"\0" * (end - start - len(data)), end - start)


def worker_loop(seconds, name):
    end = time.time() + seconds
    round = 0
    while time.time() < end:
        retitle("worker %s: request %d" % (name, round))
        round += 1
        stop = time.time() + 0.05
        total = 0
        while time.time() < stop:
            total += 1


seconds = float(sys.argv[1])
children = []
for name in ("a", "b"):
    pid = os.fork()
    if pid == 0:
        worker_loop(seconds, name)
        os._exit(0)
    children.append(pid)
sys.stdout.write("ready\n")
sys.stdout.flush()
for pid in children:
    os.waitpid(pid, 0)
