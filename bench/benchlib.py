"""benchlib — what the end-to-end benchmarks share (bench/e2e, bench/stream).

Why one module: both scripts must run the same work on the same corpus
through the same daemon configuration, or their figures could not be set
side by side; so the corpus (Debian's mate-backgrounds, fetched into
bench/cache/), the nginx that serves and stores it, the pipelined
configuration, the job writer and the child runner (GNU time, so a
child's peak RSS is its own) live here once.  Standard library only: the
scripts run on Debian's /usr/bin/python3.
"""
import glob
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, 'bench')
CACHE = os.environ.get('PL_BENCH_CACHE') or os.path.join(BENCH, 'cache')
BUILD = os.path.join(REPO, 'build', 'normal')
PIPELINED = os.path.join(BUILD, 'pipelined')
NCPU = os.cpu_count() or 1
BOX = 256


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def die(msg):
    sys.exit(f'{os.path.relpath(sys.argv[0], REPO)}: {msg}')


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def out(*cmd):
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return '?'


def ensure(needs):
    """Install the packages of the commands in NEEDS ((command, package), …)
    that are missing through scripts/deps, which adds what building
    pipelined needs; exit naming what is still missing."""
    sh(os.path.join(REPO, 'scripts', 'deps'), *[pkg for cmd, pkg in needs if not shutil.which(cmd)])
    still = [cmd for cmd, _ in needs if not shutil.which(cmd)]
    if still:
        die(f"still missing after scripts/deps: {' '.join(still)}")


def build_pipelined():
    log('building pipelined (RelWithDebInfo) in build/normal')
    sh('cmake', '-S', REPO, '-B', BUILD, '-DCMAKE_BUILD_TYPE=RelWithDebInfo',
       stdout=subprocess.DEVNULL)
    sh('cmake', '--build', BUILD, '-j', str(NCPU), '--target', 'pipelined',
       stdout=subprocess.DEVNULL)


def corpus():
    root = os.path.join(CACHE, 'mate-backgrounds')
    if not os.path.isdir(root):
        log('fetching the corpus: apt-get download mate-backgrounds')
        os.makedirs(CACHE, exist_ok=True)
        debs = glob.glob(os.path.join(CACHE, 'mate-backgrounds_*.deb'))
        if not debs:
            sh('apt-get', 'download', 'mate-backgrounds', cwd=CACHE)
            debs = glob.glob(os.path.join(CACHE, 'mate-backgrounds_*.deb'))
        sh('dpkg', '-x', debs[0], root + '.tmp')
        os.rename(root + '.tmp', root)
    files = sorted(glob.glob(os.path.join(root, 'usr/share/backgrounds/**/*.jpg'), recursive=True) +
                   glob.glob(os.path.join(root, 'usr/share/backgrounds/**/*.png'), recursive=True))
    if not files:
        die('no JPEG or PNG in mate-backgrounds')
    return files


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Nginx:
    """nginx in the foreground (daemon off) as our child, everything under tmp."""

    def __init__(self, tmp, files):
        self.dir = os.path.join(tmp, 'nginx')
        for d in ('www/img', 'dav'):
            os.makedirs(os.path.join(self.dir, d))
        os.chmod(self.dir, 0o755)
        os.chmod(os.path.join(self.dir, 'dav'), 0o777)   # workers run as nobody
        for f in files:
            shutil.copy(f, os.path.join(self.dir, 'www/img', os.path.basename(f)))
        self.port = free_port()
        conf = os.path.join(self.dir, 'nginx.conf')
        d = self.dir
        with open(conf, 'w') as c:
            c.write(f"""daemon off; master_process on; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
 access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
 client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
 uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
 types {{ image/jpeg jpg; image/png png; }}
 server {{
  listen 127.0.0.1:{self.port};
  root {d}/www;
  location /dav/ {{ root {d}; dav_methods PUT DELETE; create_full_put_path on;
   dav_access user:rw group:rw all:rw; client_max_body_size 200m;
   client_body_buffer_size 1m; }}
 }}
}}
""")
        self.proc = subprocess.Popen(['nginx', '-q', '-c', conf, '-p', d],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        for _ in range(1000):
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=0.1).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    die('nginx failed: ' + open(f'{d}/error.log').read())
                time.sleep(0.01)
        self.url = f'http://127.0.0.1:{self.port}'

    def clear_dav(self, name):
        shutil.rmtree(os.path.join(self.dir, 'dav', name), ignore_errors=True)

    def count_dav(self, name):
        return len(glob.glob(os.path.join(self.dir, 'dav', name, '*')))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run_child(cmd, env=None, cwd=None):
    """Run cmd to its end; return (exit code, stdout, stderr, wall s, cpu s, maxrss KiB).

    The child runs under GNU time, which forks it afresh: a child forked
    straight from this (larger) Python process would inherit its RSS high
    water mark across exec (Linux folds the old mm's peak into the
    process's maxrss), and a small daemon would then report Python's peak.
    CPU is user + system of the child and everything it waited for."""
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e, \
            tempfile.NamedTemporaryFile(mode='r') as t:
        t0 = time.perf_counter()
        p = subprocess.Popen(['/usr/bin/time', '-f', '%U %S %M', '-o', t.name, *cmd],
                             stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=env, cwd=cwd)
        p.wait()
        wall = time.perf_counter() - t0
        user, system, rss = t.read().strip().splitlines()[-1].split()
        o.seek(0)
        e.seek(0)
        return (p.returncode, o.read().decode(), e.read().decode(), wall,
                float(user) + float(system), int(rss))


def run_watching(cmd, path, env=None):
    """run_child(cmd, env), and meanwhile watch for PATH to appear (a job's
    result in done/): returns run_child's tuple and the time.perf_counter()
    at which PATH was first seen (None if never).  A daemon may take a
    while to exit after its last job is done; this is when the work was."""
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.wait(0.005):
            if os.path.exists(path):
                seen.append(time.perf_counter())
                return

    t = threading.Thread(target=watch)
    t.start()
    try:
        r = run_child(cmd, env=env)
    finally:
        stop.set()
        t.join()
    if not seen and os.path.exists(path):
        seen.append(time.perf_counter())
    return r, (seen[0] if seen else None)


def pl_conf(path, spool, widths, download, upload_url, top='', per_host=16):
    """The daemon configuration every pipelined run uses: one 256×256 JPEG
    variant; DOWNLOAD is pasted into the download group, TOP (a stream
    group, say) at the top level."""
    d, r, u = widths
    fmt = lambda w: f'"{w}"' if isinstance(w, str) else str(w)   # "auto", "adaptive"
    with open(path, 'w') as c:
        c.write(f"""spool = "{spool}";
runtime = "{spool}.run";
log_level = "warning";
download = {{ workers = {fmt(d)}; queue = 16; allow_private = true; per_host = {per_host};
  {download} }};
resize = {{ workers = {fmt(r)}; queue = 16;
  variants = ( {{ name = "thumb"; width = {BOX}; height = {BOX}; fit = "inside";
                 format = "jpeg"; quality = 80; }} ); }};
upload = {{ workers = {fmt(u)}; queue = 16; url = "{upload_url}"; }};
{top}
""")


def write_job(spool, name, lines):
    for d in ('tmp', 'new'):
        os.makedirs(os.path.join(spool, d), exist_ok=True)
    tmp = os.path.join(spool, 'tmp', name)
    with open(tmp, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))
    os.rename(tmp, os.path.join(spool, 'new', name))


def run_pipelined(tmp, nginx, items, widths, tag, rnd, env=None, top='', per_host=16):
    """pipelined --once on one job of ITEMS ((url, name), …) in a fresh
    spool, outputs PUT to nginx under dav/TAG/; exit unless every item is
    ok.  Returns seconds (exec to exit), job_seconds (exec to the job's
    result in done/), images, cpu s and peak RSS KiB."""
    spool = os.path.join(tmp, f'spool-{tag}-{rnd}')
    os.makedirs(spool)
    conf = spool + '.conf'
    pl_conf(conf, spool, widths, '', f'{nginx.url}/dav/{tag}/{{name}}-{{variant}}.{{ext}}', top,
            per_host)
    write_job(spool, 'corpus', [f'{u} {n}' for u, n in items])
    t0 = time.perf_counter()
    (rc, _, err, wall, cpu, rss), done = run_watching([PIPELINED, '-c', conf, '--once'],
                                                      os.path.join(spool, 'done', 'corpus.result'),
                                                      env)
    results = open(os.path.join(spool, 'done' if rc == 0 else 'failed', 'corpus.result')).read()
    ok = results.count('"status":"ok"')
    if rc != 0 or ok != len(items):
        die(f'pipelined {tag} exit {rc}, {ok}/{len(items)} ok:\n{err[-2000:]}')
    shutil.rmtree(spool)
    return dict(seconds=wall, job_seconds=done - t0, images=len(items), cpu=cpu, rss=rss)


def small_jpeg(path, corpus_files, size=(320, 240)):
    """A JPEG of SIZE made from the corpus's first JPEG: the one source of
    the memory checks, so that nothing but the number of items waiting
    differs between two runs."""
    from PIL import Image
    jpeg = next(f for f in corpus_files if f.endswith('.jpg'))
    Image.open(jpeg).convert('RGB').resize(size).save(path, quality=85)
    return path


def parse_widths(s):
    import argparse
    w = [x if x == 'auto' else int(x) for x in s.split(',')]
    if len(w) != 3:
        raise argparse.ArgumentTypeError('three widths: download,resize,upload')
    return tuple(w)


def machine():
    model = '?'
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'):
            model = line.split(':', 1)[1].strip()
            break
    mem = int(open('/proc/meminfo').readline().split()[1]) // 1024
    return (f'{model}, {NCPU} cores, {mem} MiB RAM, Linux {platform.release()}, '
            f'Debian {out("cat", "/etc/debian_version")}')
