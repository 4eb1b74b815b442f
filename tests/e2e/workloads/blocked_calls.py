# Threads blocked in system calls until the test lets them go: a read from stdin, a select on a
# pipe that the lock waiter writes to, a lock acquire that the reader releases, and a sleep whose
# length is checked. Each reports what its call returned (or raised) as one JSON line at the end.
# The main thread, blocked in join(), handles SIGUSR1: with a descriptor to write to, each signal
# handled writes a byte to it as soon as it arrives (signal.set_wakeup_fd), so that a test can time
# its delivery. Arguments: sleep seconds [descriptor]. Prints 'ready' once every thread is about to
# block.
import fcntl
import json
import os
import select
import signal
import sys
import threading
import time

results = {}
gate = threading.Lock()
wake_read, wake_write = os.pipe()


def record(name, body, args):
    try:
        results[name] = body(*args)  # @callbody
    except BaseException as error:  # an EINTR that reached Python, or anything else
        results[name] = "raised %r" % (error,)


def read_stdin():
    data = os.read(0, 64)  # @blockread
    gate.release()
    return data.decode("ascii")


def wait_lock():
    gate.acquire()  # @blocklock
    os.write(wake_write, b"x")
    return "acquired"


def wait_select():
    ready = select.select([wake_read], [], [])  # @blockselect
    return [len(ready[0]), os.read(wake_read, 1).decode("ascii")]


def sleep_for(seconds):
    started = time.time()
    time.sleep(seconds)  # @blocksleep
    return time.time() - started


def on_signal(signum, frame):
    results["signals"] = results.get("signals", 0) + 1


def main(seconds, wakeup):
    if wakeup is not None:
        fcntl.fcntl(wakeup, fcntl.F_SETFL, fcntl.fcntl(wakeup, fcntl.F_GETFL) | os.O_NONBLOCK)
        signal.signal(signal.SIGUSR1, on_signal)
        signal.set_wakeup_fd(wakeup)
    gate.acquire()
    bodies = [("read", read_stdin, ()), ("lock", wait_lock, ()), ("select", wait_select, ()),
              ("sleep", sleep_for, (seconds,))]
    threads = [threading.Thread(target=record, args=item, name=item[0]) for item in bodies]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for thread in threads:
        thread.join()  # @join
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()


main(float(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)  # @callmain
