# A program with a periodic SIGALRM timer whose handler counts the signals, working in a loop that
# computes for a moment and sleeps for a moment. Every 100 ms it prints 'progress TIME LOOPS
# SIGNALS', so that a watcher sees, during a recording, whether the program is held up.
# Arguments: seconds, timer period in milliseconds.
import signal
import sys
import time

signals = [0]


def on_alarm(signum, frame):
    signals[0] += 1


def work():
    total = 0
    for i in range(2000):
        total += i
    return total


def main(seconds, period):
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, period, period)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    end = time.time() + seconds
    loops = 0
    next_report = 0
    while True:
        now = time.time()
        if now >= end:
            break
        if now >= next_report:
            sys.stdout.write("progress %.4f %d %d\n" % (now, loops, signals[0]))
            sys.stdout.flush()
            next_report = now + 0.1
        work()
        time.sleep(0.0005)
        loops += 1
    signal.setitimer(signal.ITIMER_REAL, 0, 0)


main(float(sys.argv[1]), float(sys.argv[2]) / 1000)
