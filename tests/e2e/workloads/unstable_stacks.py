# Stacks that change all the time: recursion growing and unwinding to pseudo-random depths (two
# functions calling each other, started alternately, so a reused frame holds another function),
# generators switching under zip() and recreated (their frames freed and reused), generator tasks
# resumed by send(), and from 3.5 coroutines awaiting coroutines, driven by send(). Line markers
# are read by the tests. Arguments: seconds. Prints 'ready', and at the end 'done'.
import sys
import time

try:
    import _thread as thread_module
except ImportError:  # Python 2
    import thread as thread_module
try:
    from itertools import izip as zip  # Python 2: a lazy zip
except ImportError:
    pass

finished = thread_module.allocate_lock()
threads_left = [0]


def spin(n):
    total = 0
    for i in range(n):
        total += i  # @spinloop
    return total


def ping(depth):
    if depth > 0:
        return pong(depth - 1)  # @callpong
    return spin(7)  # @pingspin


def pong(depth):
    if depth > 0:
        return ping(depth - 1)  # @callping
    return spin(5)  # @pongspin


def recursion(end):
    seed = 12345
    while time.time() < end:
        seed = (seed * 1103515245 + 12345) & 0x7fffffff
        depth = (seed >> 8) % 60
        if seed & 0x10000:
            ping(depth)  # @startping
        else:
            pong(depth)  # @startpong


def helper(n):
    return spin(n)  # @helperspin


def gen_a(n):
    while True:
        yield helper(n)  # @gena


def gen_b(n):
    while True:
        total = 0
        for i in range(n):
            total += i  # @genb
        yield total


def generators(end):
    while time.time() < end:
        first, second = gen_a(20), gen_b(30)
        rounds = 0
        for a, b in zip(first, second):  # @zip
            rounds += 1
            if rounds == 50:
                break
        # Closed here, not when freed: a generator freed while suspended may run to close itself.
        first.close()  # @closea
        second.close()  # @closeb


def task(n):
    while True:
        total = 0
        for i in range(n):
            total += i  # @taskloop
        yield total  # @taskyield


def tasks(end):
    while time.time() < end:
        running = []  # no list comprehension: a frame of its own up to 3.11
        for i in range(4):
            running.append(task(10 + i))
        for t in running:
            next(t)  # @prime
        for _ in range(50):
            for t in running:
                t.send(None)  # @send
        for t in running:
            t.close()  # @closetask


def thread_entry(body, end):
    try:
        body(end)  # @callbody
    finally:
        finished.acquire()
        threads_left[0] -= 1
        finished.release()


def main(seconds):
    end = time.time() + seconds
    bodies = [generators, tasks]
    if sys.version_info >= (3, 5):
        sys.path.insert(0, sys.path[0])
        from unstable_coroutines import coroutines
        bodies.append(coroutines)
    threads_left[0] = len(bodies)
    for body in bodies:
        thread_module.start_new_thread(thread_entry, (body, end))  # @start
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    recursion(end)  # @callrecursion
    while threads_left[0] > 0:
        time.sleep(0.01)  # @wait
    sys.stdout.write("done\n")
    sys.stdout.flush()


main(float(sys.argv[1]))  # @callmain
