"""Benchmark workload: a busy thread-per-request HTTP server.

    python thread_server.py

socketserver.ThreadingMixIn with http.server.HTTPServer: every connection is handled on a thread
of its own, started for it and ended after it. Listens on 127.0.0.1 on a free port and prints
"ready PORT". GET /light computes in handle_light(N), GET /heavy in handle_heavy(N), three times
the work; each handler's CPU time (time.thread_time() around the call) is added up, and GET /stats
serves the totals as JSON, so a profiler's split of the samples between the two handlers can be
checked against the split of the CPU. Every call is on a line of its own, with the function
named literally, so scripts/bench can check a profiler's stacks against this file. Runs until
killed.
"""
import http.server
import json
import socketserver
import threading
import time

N = 20000
LOCK = threading.Lock()
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
    with LOCK:
        CPU[kind] += seconds
        REQUESTS[kind] += 1


def stats():
    with LOCK:
        document = {"cpu": dict(CPU), "requests": dict(REQUESTS)}
    return json.dumps(document)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/light":
            began = time.thread_time()
            result = handle_light(N)
            account("light", time.thread_time() - began)
            body = str(result)
        elif self.path == "/heavy":
            began = time.thread_time()
            result = handle_heavy(N)
            account("heavy", time.thread_time() - began)
            body = str(result)
        elif self.path == "/stats":
            body = stats()
        else:
            body = "not found"
        self.reply(body)

    def reply(self, body):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print("ready %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
