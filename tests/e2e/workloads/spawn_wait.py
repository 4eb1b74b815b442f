# A thread in an uninterruptible wait. The main thread starts a program with posix_spawn(), whose
# child shares the parent's memory until it execs (as vfork() does) and first opens a FIFO that
# nobody writes yet: until somebody does, the main thread waits in the kernel, where no signal or
# ptrace stop reaches it (holding the GIL, so the other thread waits for it). Python 3.8+.
# Arguments: FIFO path. Prints 'ready'; exits 0 once the program ran.
import os
import sys
import threading


def spin(counts):
    while True:
        counts[0] += 1  # @spin


def main(fifo):
    counts = [0]
    threading.Thread(target=spin, args=(counts,), daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    actions = [(os.POSIX_SPAWN_OPEN, 3, fifo, os.O_RDONLY, 0)]
    pid = os.posix_spawn("/bin/true", ["true"], dict(os.environ), file_actions=actions)  # @spawn
    _, status = os.waitpid(pid, 0)
    sys.exit(0 if status == 0 else 1)


main(sys.argv[1])  # @callmain
