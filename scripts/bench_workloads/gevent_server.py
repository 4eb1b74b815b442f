"""Benchmark workload: a busy gevent WSGI server, one greenlet per request.

    python gevent_server.py

The standard library is monkey-patched and gevent.pywsgi.WSGIServer serves application() on
127.0.0.1 on a free port, printing "ready PORT"; each request runs in a greenlet of its own, all
on the one thread. GET /light computes in handle_light(N), GET /heavy in handle_heavy(N), three
times the work; each handler's CPU time (time.thread_time() around the call) is added up, and
GET /stats serves the totals as JSON, so a profiler's split of the samples between the two
handlers can be checked against the split of the CPU. Every call is on a line of its own, with
the function named literally, so scripts/bench can check a profiler's stacks against this file.
Needs gevent. Runs until killed.
"""
from gevent import monkey

monkey.patch_all()

import json
import time

from gevent.pywsgi import WSGIServer

N = 20000
CPU = {"light": 0.0, "heavy": 0.0}
REQUESTS = {"light": 0, "heavy": 0}


def handle_light(n):
    total = 0
    for i in range(n):
        total += i
    return total


def handle_heavy(n):
    total = 0
    for i in range(3 * n):
        total += i
    return total


def account(kind, seconds):
    # One thread, and no switch to another greenlet in here: no lock needed.
    CPU[kind] += seconds
    REQUESTS[kind] += 1


def stats():
    document = {"cpu": dict(CPU), "requests": dict(REQUESTS)}
    return json.dumps(document)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/light":
        began = time.thread_time()
        result = handle_light(N)
        account("light", time.thread_time() - began)
        body = str(result)
    elif path == "/heavy":
        began = time.thread_time()
        result = handle_heavy(N)
        account("heavy", time.thread_time() - began)
        body = str(result)
    elif path == "/stats":
        body = stats()
    else:
        body = "not found"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def main():
    server = WSGIServer(("127.0.0.1", 0), application, log=None)
    server.start()
    print("ready %d" % server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
