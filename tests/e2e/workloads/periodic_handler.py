# A signal handler run periodically by a SIGALRM timer that spends a known share of the time (18% on
# an idle machine) busy, while the main loop computes. A sampler whose ticks lock onto the timer's
# period sees the handler always or never. The program measures the wall-clock time spent in the
# handler itself, and prints 'progress TIME HANDLER_SECONDS' every 100 ms.
# Arguments: seconds, the timer's period in milliseconds.
import signal
import sys
import time

PERIOD = float(sys.argv[2]) / 1000
BUSY = 0.18 * PERIOD
spent = [0.0]


def busy_handler(signum, frame):
    start = time.time()
    while time.time() - start < BUSY:
        pass
    spent[0] += time.time() - start


def main_loop(seconds):
    end = time.time() + seconds
    next_report = 0
    total = 0
    while time.time() < end:
        for i in range(100):
            total += i
        now = time.time()
        if now >= next_report:
            sys.stdout.write("progress %.4f %.6f\n" % (now, spent[0]))
            sys.stdout.flush()
            next_report = now + 0.1
    return total


signal.signal(signal.SIGALRM, busy_handler)
signal.setitimer(signal.ITIMER_REAL, PERIOD, PERIOD)
sys.stdout.write("ready\n")
sys.stdout.flush()
main_loop(float(sys.argv[1]))
signal.setitimer(signal.ITIMER_REAL, 0, 0)
