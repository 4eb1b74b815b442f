# Forks and execs all the time: runs a short command with subprocess, and forks children that do
# some Python work and exit, while a thread keeps busy. Line markers are read by the tests.
# Arguments: seconds. Prints 'ready', and at the end 'cycles N slowest S'.
import os
import subprocess
import sys
import time
import warnings

try:
    import _thread as thread_module
except ImportError:  # Python 2
    import thread as thread_module


def child_leaf(n):
    total = 0
    for i in range(n):
        total += i * i  # @childloop
    return total


def child_work(seconds):
    end = time.time() + seconds
    while time.time() < end:
        child_leaf(1000)  # @callchildleaf


def busy(end):
    while time.time() < end:
        child_leaf(1000)  # @busyleaf


def run_command():
    return subprocess.call(["true"])  # @runtrue


def main(seconds):
    warnings.simplefilter("ignore")  # 3.12+ warns about forking a process with threads
    end = time.time() + seconds
    thread_module.start_new_thread(busy, (end,))  # @startbusy
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    cycles = 0
    slowest = 0.0
    while time.time() < end:
        started = time.time()
        status = run_command()  # @callcommand
        if status != 0:
            raise SystemExit("true exited with %d" % status)
        pid = os.fork()  # @fork
        if pid == 0:
            child_work(0.15)  # @callchild
            os._exit(0)
        _, status = os.waitpid(pid, 0)  # @waitchild
        if status != 0:
            raise SystemExit("the child exited with status %d" % status)
        slowest = max(slowest, time.time() - started)
        cycles += 1
    sys.stdout.write("cycles %d slowest %.3f\n" % (cycles, slowest))
    sys.stdout.flush()


main(float(sys.argv[1]))  # @callmain
