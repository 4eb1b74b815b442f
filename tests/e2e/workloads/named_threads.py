# -*- coding: utf-8 -*-
# Three busy threads named through threading.Thread(name=...), while the main thread waits. Once
# the file given as the second argument exists, the first thread is renamed.
import os
import sys
import threading
import time

NAMES = [
    "worker-alpha",
    u"ingest pipeline \u2603",  # a snowman: not ASCII
    "a-thread-name-of-forty-characters-exactl",
]
RENAMED = "worker-renamed"


def spin(seconds):
    end = time.time() + seconds
    count = 0
    while time.time() < end:
        count += 1  # @spin
    return count


seconds = float(sys.argv[1])
rename_flag = sys.argv[2] if len(sys.argv) > 2 else None
workers = []
for name in NAMES:
    if sys.version_info[0] < 3:
        name = name.encode("utf-8")  # 2.7's Thread keeps str(name), bytes
    workers.append(threading.Thread(target=spin, args=(seconds,), name=name))
# Each way an instance can keep its attributes (3.11+): the first thread's stay in values that share
# its class's keys; the second's dict is made combined by a key that is not a str; the third's dict
# exists but still shares the class's keys.
vars(workers[1])[0] = "a key that is not a str"
vars(workers[2])["extra"] = 1
for worker in workers:
    worker.daemon = True
    worker.start()
# A thread enters threading._active shortly after start() returns.
while not all(worker.ident in threading._active for worker in workers):
    time.sleep(0.01)
sys.stdout.write("ready\n")  # print(..., flush=True) is Python 3 only
sys.stdout.flush()
end = time.time() + seconds
while time.time() < end:
    if rename_flag and os.path.exists(rename_flag):
        workers[0].name = RENAMED
        rename_flag = None
    time.sleep(0.02)  # @wait
