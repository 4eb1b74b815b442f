# Holds MiB megabytes of bytes objects (argument 1) while two threads wait, for core files of that size.
import sys
import threading
import time

blocks = [b"x" * (1 << 20) for _ in range(int(sys.argv[1]))]


def idle():
    time.sleep(3600)


for name in ("idle-one", "idle-two"):
    thread = threading.Thread(target=idle, name=name)
    thread.daemon = True
    thread.start()
sys.stdout.write("ready\n")
sys.stdout.flush()
time.sleep(3600)
