# Busy threads and a main thread that also handles a SIGALRM every few milliseconds, reporting
# their counters on stdout every 50 ms so that a test can see each of them move on.
# Arguments: seconds, threads. Prints 'ready', then 'progress ALARMS MAIN COUNT...' lines.
import signal
import sys
import threading
import time

alarms = [0]


def on_alarm(signum, frame):
    alarms[0] += 1


def spin(counts, index):
    while True:
        counts[index] += 1  # @spin


def main(seconds, threads):
    counts = [0] * threads
    for index in range(threads):
        worker = threading.Thread(target=spin, args=(counts, index))
        worker.daemon = True
        worker.start()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    end = time.time() + seconds
    own = 0
    next_report = 0
    while True:
        own += 1  # @mainloop
        now = time.time()
        if now >= next_report:
            if now >= end:
                signal.setitimer(signal.ITIMER_REAL, 0, 0)
                break
            next_report = now + 0.05
            sys.stdout.write("progress %d %d %s\n" % (alarms[0], own, " ".join(str(c) for c in counts)))
            sys.stdout.flush()


main(float(sys.argv[1]), int(sys.argv[2]))  # @callmain
