# Threads held at known places for core files: one sleeping, one waiting on an event, one spinning
# in pure Python, the main thread sleeping. Changes into the directory given as the first argument,
# where the kernel writes a core (with a relative kernel.core_pattern).
import os
import sys
import threading
import time


def nap():
    time.sleep(600)  # @nap


def wait_for(event):
    event.wait()  # @wait


def spin():
    count = 0
    while True:
        count += 1  # @spin


def main_wait():
    # Said from here: a dump after "ready" finds the main thread in this function.
    sys.stdout.write("ready\n")  # print(..., flush=True) is Python 3 only
    sys.stdout.flush()
    time.sleep(600)  # @main


os.chdir(sys.argv[1])
event = threading.Event()
workers = [
    threading.Thread(target=nap, name="sleeper-one"),
    threading.Thread(target=wait_for, args=(event,), name="waiter-two"),
    threading.Thread(target=spin, name="spinner-three"),
]
for worker in workers:
    worker.daemon = True
    worker.start()
while not all(worker.ident in threading._active for worker in workers):
    time.sleep(0.01)
time.sleep(0.2)
main_wait()
