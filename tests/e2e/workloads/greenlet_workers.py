# Three greenlets switched round-robin from the main one, each computing for a time in proportion
# 1 : 2 : 3 before switching back: the thread's stack changes from one greenlet's to another's
# all the time. Prints the share of time each took ('shares work_a=X work_b=Y work_c=Z') at the end.
# Arguments: seconds.
import sys
import time

from greenlet import getcurrent, greenlet

spent = {"work_a": 0.0, "work_b": 0.0, "work_c": 0.0}


def spin(units):
    total = 0
    for i in range(units * 2000):
        total += i
    return total


def work_a():
    while True:
        started = time.time()
        spin(1)
        spent["work_a"] += time.time() - started
        getcurrent().parent.switch()


def work_b():
    while True:
        started = time.time()
        spin(2)
        spent["work_b"] += time.time() - started
        getcurrent().parent.switch()


def work_c():
    while True:
        started = time.time()
        spin(3)
        spent["work_c"] += time.time() - started
        getcurrent().parent.switch()


workers = [greenlet(work_a), greenlet(work_b), greenlet(work_c)]
sys.stdout.write("ready\n")
sys.stdout.flush()
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for worker in workers:
        worker.switch()
total = sum(spent.values())
sys.stdout.write("shares %s\n" % " ".join("%s=%.4f" % (k, v / total) for k, v in sorted(spent.items())))
sys.stdout.flush()
