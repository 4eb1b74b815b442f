"""Benchmark workload: a small service, 20 worker threads and a producer.

    python service.py

The producer thread makes JSON "requests" and puts them on a queue; each worker takes them off
and handles them: decodes the JSON, sorts and sums numbers, does a little arithmetic, formats a
reply and encodes it again, and now and then waits as if on I/O. The main thread sleeps. Every
call is on a line of its own and there are no classes, lambdas or comprehensions, so
scripts/bench can check a profiler's stacks against the calls this file makes. Runs until killed.
"""
import json
import queue
import threading
import time

WORKERS = 20


def make_request(n):
    return {"id": n, "user": "user%d" % (n % 97), "items": list(range(n % 40)), "note": "x" * (n % 50)}


def parse(text):
    return json.loads(text)


def render(document):
    return json.dumps(document, sort_keys=True)


def summarize(items):
    ordered = sorted(items, reverse=True)
    total = 0
    for value in ordered:
        total += value * value % 13
    return total


def compute(n):
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1000003
    return acc


def format_reply(document, total):
    return "{}:{}:{:08d}".format(document["id"], document["user"], total)


def handle(text):
    document = parse(text)
    total = summarize(document["items"])
    total += compute(100 + document["id"] % 400)
    reply = format_reply(document, total)
    return render({"reply": reply, "size": len(text)})


def worker(requests, stop):
    handled = 0
    while not stop.is_set():
        try:
            text = requests.get(timeout=0.05)
        except queue.Empty:
            continue
        handle(text)
        handled += 1
        if handled % 8 == 0:
            time.sleep(0.001)


def producer(requests, stop):
    n = 0
    while not stop.is_set():
        text = json.dumps(make_request(n))
        requests.put(text)
        n += 1
        if requests.qsize() > 400:
            time.sleep(0.002)


def main():
    requests = queue.Queue()
    stop = threading.Event()
    threads = []
    for _ in range(WORKERS):
        threads.append(threading.Thread(target=worker, args=(requests, stop), daemon=True))
    threads.append(threading.Thread(target=producer, args=(requests, stop), daemon=True))
    for thread in threads:
        thread.start()
    while True:
        time.sleep(0.5)


if __name__ == "__main__":
    main()
