# A thread-per-request HTTP server (socketserver.ThreadingMixIn): each request gets a thread of its
# own that computes in one of two handlers, one taking three times the other's work. It counts the
# CPU time each handler takes (time.thread_time) and serves the totals at /stats.
# Prints 'ready PORT'.
import json
import sys
import threading
import time

try:
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from socketserver import ThreadingMixIn
except ImportError:  # Python 2
    from BaseHTTPServer import BaseHTTPRequestHandler, HTTPServer
    from SocketServer import ThreadingMixIn

thread_time = getattr(time, "thread_time", None) or time.time
spent = {"handle_light": 0.0, "handle_heavy": 0.0}
lock = threading.Lock()


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


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/stats":
            with lock:
                body = json.dumps(spent).encode()
        else:
            handler = handle_heavy if self.path.startswith("/heavy") else handle_light
            started = thread_time()
            body = str(handler(20000)).encode()
            with lock:
                spent[handler.__name__] += thread_time() - started
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
sys.stdout.write("ready %d\n" % server.server_address[1])
sys.stdout.flush()
server.serve_forever()
