#!/usr/bin/python3
"""e2e_server.py — a scripted, misbehaving HTTP source for tests/it_e2e.py and
tests/it_stream_faults.py.

nginx serves honest files; the download stage must also cope with servers
that fail once, never answer, never stop sending, or bounce the client to
somewhere it must not go.  Those behaviours need a script, so this is one,
kept tiny and stdlib-only so the test can also run it inside a network
namespace.  It counts requests per path so the test can prove a retry
happened (or did not).

Usage: e2e_server.py BIND_ADDR ROOT [REDIRECT_BASE]
Binds BIND_ADDR port 0 and prints the port on stdout once listening.
Paths:
  /file/NAME        200 with ROOT/NAME
  /flaky/NAME       500 on the first request for that path, then like /file/
  /delay/MS/NAME    like /file/NAME, answered MS milliseconds late: a distant
                    source (bench/latency), as many at once as clients ask
  /limit/N/MS/NAME  the same, but 503 at once to a request that finds N of
                    these already in flight (an origin that sheds load)
  /hang             reads the request, then never answers
  /endless          200 without Content-Length, then bytes until the client leaves
  /redirect/REST    302 to REDIRECT_BASE + REST
  /_counts          JSON {path: requests} of every other path seen, and for
                    /limit/: "limit 503" (refused) and "limit peak" (most
                    in flight at once)
Runs until killed.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        sys.stderr.write('e2e_server: ' + (fmt % args) + '\n')

    def reply(self, status, body=b'', ctype='application/octet-stream', extra=()):
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Content-Type', ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_file(self, name):
        path = os.path.join(self.server.root, os.path.basename(name))
        try:
            f = open(path, 'rb')
        except OSError:
            return self.reply(404, b'not found\n', 'text/plain')
        with f:
            # headers, then the body by sendfile(2): a benchmark's source
            # must not take the CPU the pipeline is measured on
            self.send_response(200)
            self.send_header('Content-Length', str(os.fstat(f.fileno()).st_size))
            self.send_header('Content-Type', 'application/octet-stream')
            self.end_headers()
            self.connection.sendfile(f)

    def do_GET(self):
        srv = self.server
        if self.path == '/_counts':
            with srv.lock:
                body = json.dumps(srv.counts).encode()
            return self.reply(200, body, 'application/json')
        with srv.lock:
            srv.counts[self.path] = n = srv.counts.get(self.path, 0) + 1
        if self.path.startswith('/file/'):
            return self.send_file(self.path[len('/file/'):])
        if self.path.startswith('/delay/'):
            ms, _, name = self.path[len('/delay/'):].partition('/')
            time.sleep(int(ms) / 1000)
            return self.send_file(name)
        if self.path.startswith('/limit/'):
            n, ms, name = self.path[len('/limit/'):].split('/', 2)
            with srv.lock:
                ok = srv.inflight < int(n)
                if ok:
                    srv.inflight += 1
                    srv.counts['limit peak'] = max(srv.counts.get('limit peak', 0), srv.inflight)
                else:
                    srv.counts['limit 503'] = srv.counts.get('limit 503', 0) + 1
            if not ok:
                return self.reply(503, b'busy\n', 'text/plain')
            try:
                time.sleep(int(ms) / 1000)
                return self.send_file(name)
            finally:
                with srv.lock:
                    srv.inflight -= 1
        if self.path.startswith('/flaky/'):
            if n == 1:
                return self.reply(500, b'try again\n', 'text/plain')
            return self.send_file(self.path[len('/flaky/'):])
        if self.path == '/hang':
            srv.forever.wait()	# set never: the client must give up on its own
            return
        if self.path == '/endless':
            self.send_response(200)
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Connection', 'close')
            self.end_headers()
            chunk = b'\0' * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                pass	# the client hung up: what the test wants
            self.close_connection = True
            return
        if self.path.startswith('/redirect/') and srv.redirect:
            return self.reply(302, b'', 'text/plain',
                              [('Location', srv.redirect + self.path[len('/redirect/'):])])
        self.reply(404, b'not found\n', 'text/plain')


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit('usage: e2e_server.py BIND_ADDR ROOT [REDIRECT_BASE]')
    ThreadingHTTPServer.request_queue_size = 128	# many clients connect at once
    srv = ThreadingHTTPServer((sys.argv[1], 0), Handler)
    srv.daemon_threads = True
    srv.root = sys.argv[2]
    srv.redirect = sys.argv[3] if len(sys.argv) == 4 else None
    srv.counts = {}
    srv.inflight = 0
    srv.lock = threading.Lock()
    srv.forever = threading.Event()
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
