# Crashes in C: ctypes reads address 0 under a known Python call chain, while another thread waits.
# Changes into the directory given as the first argument, where the kernel writes its core.
import ctypes
import os
import sys
import threading
import time


def wait_for(event):
    event.wait()  # @wait


def crash_here(depth):
    if depth == 0:
        ctypes.string_at(0)  # @crash
    crash_here(depth - 1)  # @recurse


os.chdir(sys.argv[1])
event = threading.Event()
waiter = threading.Thread(target=wait_for, args=(event,), name="bystander")
waiter.daemon = True
waiter.start()
time.sleep(0.2)
sys.stdout.write("ready\n")
sys.stdout.flush()
crash_here(3)  # @main
