"""plnats — real nats-server processes and a small NATS client for pipelined's tests.

Why: the JetStream intake is tested against Debian's nats-server (2.9), never
a mock: one node or a 3-node cluster on 127.0.0.1, each a real process in its
own session that a test can SIGKILL and start again on the same ports and
store directory (so JetStream data survives, as it would on a real host).
Readiness is awaited on the monitoring port (/healthz, /jsz), never slept for.
Debian 12 packages no Python NATS client and the tests use only the standard
library, so Client speaks the text protocol over a plain socket: enough to
create streams and consumers, publish as a producer would, pull and ack as a
consumer would, and watch advisories.  It is also the "few lines of Python"
the man page points to for a producer without a filesystem: see
Client.publish, request and js_publish.

Import it from a test in tests/ with:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pltest as pl
    import plnats

API (everything raises pl.Failure naming what failed; an error from NATS
itself raises plnats.NatsError, a pl.Failure whose .error holds the server's
{"code", "err_code", "description"} when it sent one):

  plnats.SERVER                    path of nats-server (PATH, then /usr/sbin), or None
  plnats.require_server()          print "SKIP: nats-server is not installed" and
                                   exit 77 unless SERVER

  s = plnats.NatsServer(root, name="n1", port=None, http_port=None, cluster=None, extra="")
                                   config, log and store in ROOT/NAME/; free ports unless
                                   given; cluster=(cluster_port, [route ports]) joins
                                   cluster "c1"; extra is pasted into its configuration
                                   (users and permissions: plnats.users(...))
  plnats.users(name=perms, ...)    an authorization block: each user's password is its
                                   name, perms its permissions as a dict or None; the
                                   user "admin" may do anything, and is who a connection
                                   without a user is (Client needs none); a daemon's URL
                                   nats://NAME:NAME@127.0.0.1:PORT is user NAME
  s.start(timeout=10)              run it; wait until /healthz says ok → s
  s.kill() / s.stop(timeout=10)    SIGKILL its session / SIGTERM and wait (both idempotent)
  s.restart(timeout=10)            stop if running, start on the same ports and store → s
  s.url ("nats://127.0.0.1:PORT"), s.port, s.http_port, s.name, s.log, s.store,
  s.pid (None when not running), s.running
  s.monitor(path)                  JSON from the monitoring port ("jsz?streams=true"), also
                                   the body of an error status; None when nothing answers
  s.healthy()                      /healthz says ok (in a cluster: JetStream has its meta leader)

  c = plnats.NatsCluster(root, n=3)   servers n1..nN routed to each other
  c.servers, c.urls
  c.start(timeout=30)              all started; waits for c.ready() → c
  c.ready()                        every running server healthy and agreeing on one JetStream
                                   meta leader, which sees all the others current
  c.leader_of(stream)              the NatsServer leading STREAM; None while none is known
  c.kill(s) / c.restart(s, timeout=30)   s one of c.servers; restart waits for c.ready()
  c.stop()                         SIGKILL them all (for finally: blocks)

  cl = plnats.Client(url, timeout=5)   connect and handshake; also a context manager
  cl.publish(subject, data=b"", headers=None, reply=None)   PUB, or HPUB with headers (a dict)
  cl.request(subject, data=b"", headers=None, timeout=5) → (headers, data) of the first reply;
                                   NatsError on timeout or when nothing listens (status 503)
  cl.js_publish(subject, data, headers=None, timeout=5) → PubAck {"stream", "seq", …}
  cl.js_api(name, payload=None, timeout=5) → the JSON answer of "$JS.API.NAME"
                                   ("STREAM.CREATE.S", "STREAM.INFO.S", "STREAM.MSG.GET.S",
                                   "CONSUMER.DURABLE.CREATE.S.C", …); NatsError on {"error"}
  cl.fetch(stream, durable, batch=10, timeout=2) → [Msg], up to BATCH from a pull consumer;
                                   fewer when the pull expires after TIMEOUT (408) or finds
                                   nothing (404)
  cl.ack(msg)                      "+ACK" to msg.reply
  q = cl.subscribe(subject)        a queue.Queue of Msg (q.subject, q.sid), then None if the
                                   connection closes; cl.unsubscribe(q)
  cl.flush(timeout=5)              PING/PONG: the server has read everything sent before
  cl.close()
  plnats.Msg                       namedtuple (subject, headers, data, reply): headers a dict,
                                   a status line "NATS/1.0 404 No Messages" as "Status": "404"
                                   and "Description": "No Messages"; data bytes

Daemons on the stream (the scaffold of tests/it_stream*.py):

  plnats.stream_group(servers, node, **settings)   the text of a pipeline.conf `stream`
                                   group: servers a URL or a list, settings more of its
                                   fields (ack_wait=60.0, max_deliver=4, …)
  with plnats.Site("name", servers, n=2, workers=(2,2,2), queues=(16,16,16),
                   http=False, **settings) as site:
                                   n daemons' trees (site.envs, nodes "n0".."nN-1"), as
                                   on n machines, each with its own spool and runtime, all
                                   reading sources from site.images (site.envs[0]'s) and
                                   writing outputs to one folder, site.out (one bucket);
                                   http=True also allows http:// sources on 127.0.0.1.
                                   On leaving: every daemon stopped (SIGKILL), logs of all
                                   of them shown when the block failed, trees removed
  site.start(k, *args, wait=True, **kw)   start node k's daemon (pl.Daemon) and, with
                                   wait, wait until it consumes the stream → the Daemon;
                                   site.daemons[k] is node k's latest, site.procs every
                                   one started
  site.config(k, text_from, text_to)  replace text in node k's configuration
  plnats.stream_status(d, env)     SIGUSR1 to daemon d, then the "stream" object of env's
                                   status.json once rewritten
  site.nginx(extra="")             pl.Nginx serving site.images, extra pasted into its
                                   server block, with an access log (site.requests(part)
                                   counts its GETs whose line holds part) → its port
  site.scripted()                  tests/e2e_server.py serving site.images (/delay/MS/NAME
                                   answers after MS ms) → its port; site.counts() its
                                   requests per path
"""
import atexit
import collections
import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pltest as pl

SERVER = shutil.which("nats-server") or next(
    (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.access(p, os.X_OK)), None)


def require_server():
    if not SERVER:
        print("SKIP: nats-server is not installed", flush=True)
        sys.exit(77)


class NatsError(pl.Failure):
    def __init__(self, msg, error=None):
        super().__init__(msg)
        self.error = error


_alive = set()   # servers started and not yet killed: none outlives the test


@atexit.register
def _kill_alive():
    for s in list(_alive):
        s.kill()


def _free_ports(n):
    """n distinct free ports: free_port() twice in a row may repeat one."""
    ports = []
    while len(ports) < n:
        p = pl.free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _tail(path, n=12):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def users(**perms):
    entries = ["{ user: admin, password: admin }"]
    for name, p in perms.items():
        entries.append("{ user: %s, password: %s%s }" % (
            name, name, ", permissions: %s" % json.dumps(p) if p else ""))
    return "authorization { users: [ %s ] }\nno_auth_user: admin\n" % "\n  ".join(entries)


class NatsServer:
    def __init__(self, root, name="n1", port=None, http_port=None, cluster=None, extra=""):
        self.name, self.cluster, self.proc, self.extra = name, cluster, None, extra
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "nats.conf")
        self.log = os.path.join(self.dir, "nats.log")
        self.errlog = os.path.join(self.dir, "nats.stderr")   # what fails before the log opens
        self.store = os.path.join(self.dir, "js")
        ports = _free_ports(2)
        self.port, self.http_port = port or ports[0], http_port or ports[1]
        # Ports may move only before the first start, and only if we chose them
        # (a cluster's peers know each other's ports from the start).
        self._pinned = bool(port or http_port or cluster)

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.running else None

    def _spawn(self):
        text = ('server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n'
                'jetstream { store_dir: "%s" }\n'
                % (self.name, self.port, self.http_port, self.store))
        if self.cluster:
            cport, routes = self.cluster
            text += "cluster { name: c1, listen: 127.0.0.1:%d, routes: [%s] }\n" % (
                cport, ", ".join("nats://127.0.0.1:%d" % r for r in routes))
        text += self.extra
        pl.Env.write_file(self.conf, text)
        with open(self.errlog, "ab") as err:
            self.proc = subprocess.Popen([SERVER, "-c", self.conf, "-l", self.log],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        _alive.add(self)

    def _why(self):
        return "; healthz: %s\n%s%s" % (self.monitor("healthz"), _tail(self.errlog),
                                         _tail(self.log))

    def _wait_healthy(self, timeout=10):
        what = "nats-server %s (%s) to be healthy" % (self.name, self.url)
        try:
            pl.wait_for(lambda: not self.running or self.healthy(), timeout, what)
        except pl.Failure as e:
            raise pl.Failure(str(e) + self._why())
        if not self.running:
            raise pl.Failure("nats-server %s exited with %s%s"
                             % (self.name, self.proc.returncode, self._why()))

    def start(self, timeout=10):
        if self.running:
            raise pl.Failure("nats-server %s is already running" % self.name)
        for attempt in range(3):
            self._spawn()
            try:
                self._wait_healthy(timeout)
                self._pinned = True
                return self
            except pl.Failure:
                exited = not self.running
                self.kill()
                if self._pinned or not exited or attempt == 2:
                    raise
            # it exited at once: most likely a port taken since free_port()
            self.port, self.http_port = _free_ports(2)

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        _alive.discard(self)

    def stop(self, timeout=10):
        if self.running:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise pl.Failure("nats-server %s ignored SIGTERM for %gs" % (self.name, timeout))
        self.kill()

    def restart(self, timeout=10):
        self.stop()
        return self.start(timeout)

    def monitor(self, path):
        url = "http://127.0.0.1:%d/%s" % (self.http_port, path)
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:   # /healthz answers 503 with its reason
            try:
                return json.load(e)
            except ValueError:
                return {"status": e.code}
        except (OSError, ValueError):
            return None

    def healthy(self):
        return (self.monitor("healthz") or {}).get("status") == "ok"


@contextlib.contextmanager
def serving(prefix, **kw):
    """A nats-server of its own (NatsServer's keywords) in a fresh pl.Env
    named prefix, for the with block; killed and its files gone after."""
    root = pl.Env(prefix)
    try:
        srv = NatsServer(root.root, **kw).start()
        try:
            yield srv
        finally:
            srv.kill()
    finally:
        root.cleanup()


class NatsCluster:
    def __init__(self, root, n=3):
        ports = _free_ports(3 * n)
        routes = ports[2 * n:]
        self.servers = [NatsServer(root, "n%d" % (i + 1), ports[i], ports[n + i],
                                   cluster=(routes[i], routes)) for i in range(n)]

    @property
    def urls(self):
        return [s.url for s in self.servers]

    def start(self, timeout=30):
        for s in self.servers:   # all at once: none is healthy before a quorum exists
            s._spawn()
        self._wait_ready(timeout)
        return self

    def ready(self):
        up = [s for s in self.servers if s.running]
        if not all(s.healthy() for s in up):
            return False
        meta = [(s.monitor("jsz") or {}).get("meta_cluster") or {} for s in up]
        leaders = {m.get("leader") for m in meta}
        if len(leaders) != 1 or not meta[0].get("leader"):
            return False
        lead = [(s, m) for s, m in zip(up, meta) if s.name == meta[0]["leader"]]
        if not lead:
            return False
        current = {r["name"] for r in lead[0][1].get("replicas") or [] if r.get("current")}
        return all(s.name in current for s in up if s is not lead[0][0])

    def _wait_ready(self, timeout):
        def ready():
            dead = [s.name for s in self.servers if s.proc is not None and not s.running]
            if dead:   # started by us and gone: waiting longer cannot help
                raise pl.Failure("nats-server %s exited" % ", ".join(dead))
            return self.ready()
        try:
            pl.wait_for(ready, timeout, "the NATS cluster to elect a JetStream meta leader")
        except pl.Failure as e:
            raise pl.Failure(str(e) + "".join(
                "\n%s: running %s%s" % (s.name, s.running, s._why()) for s in self.servers))

    def leader_of(self, stream):
        for s in self.servers:
            if not s.running:
                continue
            try:
                with Client(s.url, timeout=2) as c:
                    info = c.js_api("STREAM.INFO." + stream, timeout=2)
            except NatsError:
                continue   # this server cannot tell: ask the next
            name = (info.get("cluster") or {}).get("leader")
            return next((x for x in self.servers if x.name == name), None)
        return None

    def kill(self, server):
        server.kill()

    def restart(self, server, timeout=30):
        server.stop()
        server._spawn()
        self._wait_ready(timeout)
        return server

    def stop(self):
        for s in self.servers:
            s.kill()


Msg = collections.namedtuple("Msg", "subject headers data reply")


def _encode_headers(headers):
    return ("NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items())
            + "\r\n").encode()


def _parse_headers(block):
    lines = block.decode("utf-8", "replace").split("\r\n")
    status = lines[0].split(None, 2)   # NATS/1.0 [code [description]]
    h = dict(zip(("Status", "Description"), status[1:]))
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            h[k.strip()] = v.strip()
    return h


class Client:
    """One connection; a reader thread routes MSG/HMSG to the queue of their
    subscription and answers the server's PINGs.  Sends are serialised by a
    lock, so several threads may publish and ack on one Client."""

    def __init__(self, url, timeout=5):
        u = urllib.parse.urlsplit(url)
        self.url, self.error, self.closed = url, None, False
        try:
            self.sock = socket.create_connection((u.hostname, u.port or 4222), timeout=timeout)
            # SUB then PUB are two small writes: Nagle would hold the second for
            # the peer's delayed ACK, 40 ms on every request
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.rfile = self.sock.makefile("rb")
            line = self.rfile.readline()
        except OSError as e:
            raise NatsError("cannot connect to %s: %s" % (url, e))
        if not line.startswith(b"INFO "):
            raise NatsError("%s: expected INFO, got %r" % (url, line[:80]))
        self.info = json.loads(line[5:])
        self.sock.settimeout(None)
        self._wlock, self._cv = threading.Lock(), threading.Condition()
        self._subs, self._next_sid, self._pings, self._pongs = {}, 1, 0, 0
        self._send(b"CONNECT " + json.dumps({
            "verbose": False, "pedantic": False, "headers": True, "no_responders": True,
            "protocol": 1, "lang": "python3-plnats", "version": "1"}).encode() + b"\r\n")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.flush(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, data):
        try:
            with self._wlock:
                self.sock.sendall(data)
        except OSError as e:
            raise NatsError("%s: connection lost: %s" % (self.url, e))

    def _read(self):
        try:
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                op, _, rest = line.rstrip(b"\r\n").partition(b" ")
                op = op.upper()
                if op in (b"MSG", b"HMSG"):
                    a = rest.decode().split()   # subject sid [reply] [hdr-len] total-len
                    hlen = int(a.pop(-2)) if op == b"HMSG" else 0
                    total = int(a[-1])
                    body = self.rfile.read(total + 2)
                    if len(body) < total + 2:
                        break
                    q = self._subs.get(int(a[1]))
                    if q is not None:
                        q.put(Msg(a[0], _parse_headers(body[:hlen]) if hlen else {},
                                  body[hlen:total], a[2] if len(a) == 4 else None))
                elif op == b"PING":
                    self._send(b"PONG\r\n")
                elif op in (b"PONG", b"-ERR"):
                    with self._cv:
                        if op == b"PONG":
                            self._pongs += 1
                        else:
                            self.error = rest.decode(errors="replace")
                        self._cv.notify_all()
                # INFO (cluster changes) and +OK need nothing
        except (OSError, ValueError, pl.Failure):
            pass
        with self._cv:
            self.closed = True
            self._cv.notify_all()
        for q in list(self._subs.values()):
            q.put(None)   # wakes whoever waits on it

    def flush(self, timeout=5):
        with self._cv:
            self._pings += 1
            want = self._pings
        self._send(b"PING\r\n")
        with self._cv:
            self._cv.wait_for(lambda: self._pongs >= want or self.closed or self.error, timeout)
            if self.error or self._pongs < want:
                raise NatsError("%s: %s" % (self.url, self.error or (
                    "connection closed" if self.closed else "no PONG within %gs" % timeout)))

    def publish(self, subject, data=b"", headers=None, reply=None):
        dest = subject + (" " + reply if reply else "")
        if headers:
            h = _encode_headers(headers)
            self._send(b"HPUB %s %d %d\r\n%s%s\r\n"
                       % (dest.encode(), len(h), len(h) + len(data), h, data))
        else:
            self._send(b"PUB %s %d\r\n%s\r\n" % (dest.encode(), len(data), data))

    def subscribe(self, subject):
        if self.closed:
            raise NatsError("%s: connection closed" % self.url)
        q = queue.Queue()
        with self._cv:
            q.subject, q.sid = subject, self._next_sid
            self._next_sid += 1
        self._subs[q.sid] = q
        self._send(b"SUB %s %d\r\n" % (subject.encode(), q.sid))
        return q

    def unsubscribe(self, q):
        self._subs.pop(q.sid, None)
        if not self.closed:
            self._send(b"UNSUB %d\r\n" % q.sid)

    def _get(self, q, timeout):
        """The next Msg on q, or None after timeout."""
        try:
            m = q.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None
        if m is None:
            raise NatsError("%s: connection closed%s"
                            % (self.url, ": " + self.error if self.error else ""))
        return m

    def request(self, subject, data=b"", headers=None, timeout=5):
        q = self.subscribe("_INBOX." + uuid.uuid4().hex)
        try:
            self.publish(subject, data, headers, reply=q.subject)
            m = self._get(q, timeout)
        finally:
            self.unsubscribe(q)
        if m is None:
            raise NatsError("no reply on %s within %gs" % (subject, timeout))
        if m.headers.get("Status") == "503":
            raise NatsError("no responders on %s" % subject)
        return m.headers, m.data

    def _json(self, what, data):
        try:
            r = json.loads(data)
        except ValueError:
            raise NatsError("%s: answer is not JSON: %r" % (what, data[:200]))
        if "error" in r:
            e = r["error"]
            raise NatsError("%s: %s (%s/%s)" % (what, e.get("description"), e.get("code"),
                                                e.get("err_code")), e)
        return r

    def js_publish(self, subject, data, headers=None, timeout=5):
        return self._json("publish to " + subject, self.request(subject, data, headers, timeout)[1])

    def js_api(self, name, payload=None, timeout=5):
        body = json.dumps(payload).encode() if payload is not None else b""
        subject = "$JS.API." + name
        return self._json(subject, self.request(subject, body, timeout=timeout)[1])

    def fetch(self, stream, durable, batch=10, timeout=2):
        q = self.subscribe("_INBOX." + uuid.uuid4().hex)
        got = []
        try:
            self.publish("$JS.API.CONSUMER.MSG.NEXT.%s.%s" % (stream, durable),
                         json.dumps({"batch": batch, "expires": int(timeout * 1e9)}).encode(),
                         reply=q.subject)
            deadline = time.monotonic() + timeout + 2   # the server's 408 normally ends it first
            while len(got) < batch:
                m = self._get(q, deadline - time.monotonic())
                if m is None or m.headers.get("Status") in ("404", "408"):
                    break
                if "Status" in m.headers:
                    raise NatsError("fetch %s/%s: %s %s" % (stream, durable, m.headers["Status"],
                                                            m.headers.get("Description", "")))
                got.append(m)
        finally:
            self.unsubscribe(q)
        return got

    def ack(self, msg):
        self.publish(msg.reply, b"+ACK")

    def close(self):
        if not self.closed:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._reader.join(5)
        self.rfile.close()
        self.sock.close()


# ---- daemons on the stream ---------------------------------------------------

def stream_group(servers, node, **settings):
    if isinstance(servers, str):
        servers = [servers]
    fields = ["servers = [ %s ];" % ", ".join('"%s"' % u for u in servers), 'node = "%s";' % node]
    for k, v in settings.items():
        fields.append("%s = %s;" % (k, '"%s"' % v if isinstance(v, str) else v))
    return "stream = { %s };" % " ".join(fields)


def nak_delays(d, regex, n=3):
    """The delays daemon d logged for an item whose result was not stored
    (regex's one group: the seconds), and whether there were n, the k-th a
    random point in the second half of a window of 2^(k-1) s, printed to a
    tenth."""
    delays = [float(m.group(1)) for m in d.matches(regex)]
    ok = len(delays) == n and all(2 ** k / 2 - 0.05 <= x <= 2 ** k + 0.05
                                  for k, x in enumerate(delays))
    return ok, delays


def stream_status(d, env):
    """SIGUSR1, then the daemon's stream counters from status.json once written."""
    before = os.path.getmtime(env.run + "/status.json") if env.status() else 0
    d.signal(signal.SIGUSR1)
    pl.wait_for(lambda: env.status() and os.path.getmtime(env.run + "/status.json") != before,
                10, "status.json after SIGUSR1")
    return env.status().get("stream") or {}


class Site:
    """Daemons of one stream as on separate machines: what every multi-daemon
    test of the stream repeats, and whatever happens, every daemon gone and
    every tree removed afterwards, with the logs shown when the test failed."""

    def __init__(self, name, servers, n=2, workers=(2, 2, 2), queues=(16, 16, 16), http=False,
                 **settings):
        self.envs, self.daemons, self.procs = [], [None] * n, []
        self._nginx = self._scripted = None
        try:
            for k in range(n):
                e = pl.Env("%s%d" % (name, k))
                self.envs.append(e)
                text = e.write_config(workers=workers, queues=queues,
                                      extra_top=stream_group(servers, "n%d" % k, **settings))
                text = text.replace(e.images, self.images).replace(e.out, self.out)
                if http:
                    text = text.replace('protocols = [ "file" ];',
                                        'protocols = [ "file", "http" ]; allow_private = true;')
                pl.Env.write_file(e.conf, text)
        except BaseException:
            self._cleanup()
            raise

    @property
    def images(self):
        return self.envs[0].images

    @property
    def out(self):
        return self.envs[0].out

    def config(self, k, text_from, text_to):
        with open(self.envs[k].conf) as f:
            text = f.read()
        if text_from not in text:
            raise pl.Failure("node %d's configuration has no %r" % (k, text_from))
        pl.Env.write_file(self.envs[k].conf, text.replace(text_from, text_to))

    def start(self, k, *args, wait=True, **kw):
        d = pl.Daemon(self.envs[k], *args, **kw)
        self.daemons[k] = d
        self.procs.append(d)
        if wait:
            d.wait_line(r"stream: consuming", pl.scaled(30, 120))
        return d

    def nginx(self, extra=""):
        root = self.envs[0].root
        for path in (root, self.images):   # its worker runs as nobody
            os.chmod(path, 0o755)
        for f in os.listdir(self.images):
            os.chmod(os.path.join(self.images, f), 0o644)
        self.access_log = os.path.join(root, "access.log")
        self._nginx = pl.Nginx(root, self.images, extra="access_log %s; %s"
                               % (self.access_log, extra))
        return self._nginx.start()

    def requests(self, part=""):
        try:
            with open(self.access_log) as f:
                return sum(1 for line in f if '"GET ' in line and part in line)
        except FileNotFoundError:
            return 0

    def scripted(self):
        self._scripted = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "e2e_server.py"), "127.0.0.1", self.images],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.envs[0].root, "e2e_server.log"), "w"))
        line = self._scripted.stdout.readline()
        if not line.strip().isdigit():
            raise pl.Failure("e2e_server.py did not print its port: %r" % line)
        self._scripted_port = int(line)
        return self._scripted_port

    def counts(self):
        url = "http://127.0.0.1:%d/_counts" % self._scripted_port
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)

    def _cleanup(self):
        for d in self.procs:
            d.stop()
        if self._nginx:
            self._nginx.kill()
        if self._scripted:
            self._scripted.kill()
            self._scripted.wait()
        for e in self.envs:
            e.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, etype, evalue, tb):
        for d in self.procs:
            d.stop()
        if etype is not None:
            pl.show_logs(self.procs)
        self._cleanup()
        return False
