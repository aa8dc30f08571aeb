#!/usr/bin/python3
"""it_e2e.py — download → resize → upload end to end through `pipelined --once`.

The stage tests prove each stage against its peer; this test proves the
daemon wires them together: one job file mixing good items with every way a
source can be bad, served by real servers (Debian's nginx for honest files,
HTTP PUT and refusing upload targets; tests/e2e_server.py for scripted
misbehaviour; tests/s3_endpoint.py for signature-checked S3), and asserts on
what an operator sees: each item's result record (status and a reason that
names the cause), the exit status, and the stored outputs decoded again.

Runs (each a fresh spool, one `--once`):
  main     http sources of every kind, outputs PUT to nginx /dav/
  files    file:// below file_root and outside it (directly, via symlink)
  ro/full  uploads to nginx answering 403 / 507
  s3 ok / s3 bad secret   through the SigV4-checking endpoint
  netns    (root only) a public first hop redirecting to 127.0.0.1 with
           allow_private = false, inside `unshare -n` (this script re-runs
           itself there with --netns-child); where pl.cannot_unshare_net()
           says why not, the other runs pass and the test then skips (exit
           77) naming the reason
Helpers are kept here on purpose (small and local); only the skip rule and
its probe come from tests/pltest.py, the same for every test.  Takes ~10 s
normally; also passes under ASan.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pltest as pl  # noqa: E402
VARIANTS = '''(
    { name = "thumb"; width = 256; height = 256; fit = "inside"; format = "jpeg"; quality = 80; },
    { name = "sq"; width = 64; height = 64; fit = "cover"; format = "png"; }
  )'''
procs = []	# servers we started, stopped at exit by their own pid
top = None	# the test folder


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---- processes and ports ------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_printing_port(argv, log):
    """Start a server that prints its port once listening; return the port."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(log, 'ab'))
    procs.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 30)
    line = p.stdout.readline().strip() if ready else b''
    check(line.isdigit(), '%s did not print its port (see %s)' % (argv[1], log))
    return int(line)


def await_listen(host, port, proc, what, limit=30):
    """Readiness by connecting: poll until a connection is accepted."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        check(proc.poll() is None, '%s exited with %s' % (what, proc.returncode))
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)	# poll interval, not a synchronisation
    raise AssertionError('%s not listening on %s:%d' % (what, host, port))


def start_nginx(d):
    """nginx serving d/www, with /dav/ (PUT), /ro/ (403) and /full/ (507)."""
    for sub in ('www', 'www/dav', 'nginx'):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    os.chmod(os.path.join(d, 'www/dav'), 0o777)	# workers run as nobody
    for attempt in range(3):	# the free port may be taken before nginx binds it
        port = nginx_once(d, free_port())
        if port:
            return port
    raise AssertionError('nginx did not start; see %s/nginx/error.log' % d)


def nginx_once(d, port):
    conf = os.path.join(d, 'nginx/nginx.conf')
    with open(conf, 'w') as f:
        f.write('''daemon off;
worker_processes 1;
pid {d}/nginx/nginx.pid;
error_log {d}/nginx/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {d}/nginx/access.log;
  client_body_temp_path {d}/nginx/body;
  proxy_temp_path {d}/nginx/proxy;
  fastcgi_temp_path {d}/nginx/fastcgi;
  uwsgi_temp_path {d}/nginx/uwsgi;
  scgi_temp_path {d}/nginx/scgi;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
    location /dav/ {{
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:rw all:rw;
      client_max_body_size 10m;
    }}
    location /ro/ {{ return 403; }}
    location /full/ {{ return 507; }}
  }}
}}
'''.format(d=d, port=port))
    p = subprocess.Popen(['/usr/sbin/nginx', '-c', conf, '-e', d + '/nginx/error.log'],
                         stdout=subprocess.DEVNULL, stderr=open(d + '/nginx/stderr', 'ab'))
    procs.append(p)
    try:
        await_listen('127.0.0.1', port, p, 'nginx')
    except AssertionError:
        if p.poll() is None:
            raise
        return None
    return port


def await_log(path, count, want, limit=10):
    """nginx writes its access log line just after answering: poll until
    count(text) reaches want (or the limit passes), then return the text."""
    deadline = time.monotonic() + limit
    while True:
        text = open(path).read() if os.path.exists(path) else ''
        if count(text) >= want or time.monotonic() > deadline:
            return text
        time.sleep(0.02)	# poll interval


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---- images -------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + \
        struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)


def make_images(img, outside):
    """Every kind of source, good and bad, into img/ (and one outside it)."""
    os.makedirs(img)
    os.makedirs(outside)
    # EXIF orientation 6: stored 400x200 landscape, left half red; upright it
    # is portrait with red on top.
    im = Image.new('RGB', (400, 200), (255, 0, 0))
    im.paste((0, 0, 255), (200, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(img + '/rotated.jpg', quality=90, exif=exif)
    # the same, tagged with Display P3: stored values are not sRGB's
    subprocess.run(['vips', 'icc_transform', img + '/rotated.jpg', img + '/p3.jpg[Q=95]', 'p3'],
                   check=True)
    Image.new('CMYK', (300, 200), (0, 255, 255, 0)).save(img + '/cmyk.jpg', quality=90)
    grad = Image.linear_gradient('L').resize((300, 200))
    Image.merge('RGB', (grad, grad.transpose(Image.FLIP_LEFT_RIGHT), grad)).save(img + '/g8.png')
    subprocess.run(['vips', 'colourspace', img + '/g8.png', img + '/deep.png', 'rgb16'], check=True)
    frames = [Image.new('RGB', (320, 240), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(img + '/anim.gif', save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    noise = Image.frombytes('RGB', (320, 240), os.urandom(320 * 240 * 3))
    noise.save(img + '/plain.jpg', quality=85)
    noise.save(outside + '/secret.jpg', quality=85)	# a good image: only the guard stops it
    data = open(img + '/plain.jpg', 'rb').read()
    check(len(data) < 200000, 'plain.jpg must stay under max_bytes')
    open(img + '/trunc.jpg', 'wb').write(data[:len(data) // 2])
    open(img + '/empty.jpg', 'wb').close()
    open(img + '/page.html', 'w').write('<!DOCTYPE html><html><body>hello</body></html>\n')
    open(img + '/pic.svg', 'w').write('<svg xmlns="http://www.w3.org/2000/svg" width="10" '
                                      'height="10"><rect width="10" height="10"/></svg>\n')
    # A real PNG header declaring 30000x30000 and one tiny IDAT: only the
    # header check can reject it before any pixel exists.
    ihdr = struct.pack('>IIBBBBB', 30000, 30000, 8, 2, 0, 0, 0)
    with open(img + '/huge.png', 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr) +
                png_chunk(b'IDAT', zlib.compress(b'\0' * 1000)) + png_chunk(b'IEND', b''))
    with open(img + '/big.bin', 'wb') as f:
        f.truncate(5 * 1024 * 1024)
    os.symlink(outside + '/secret.jpg', img + '/link.jpg')


def header(path):
    """(width, height, bands, format, interpretation) as vipsheader decodes it."""
    out = subprocess.run(['vipsheader', path], capture_output=True, text=True)
    check(out.returncode == 0, 'vipsheader %s: %s' % (path, out.stderr.strip()))
    m = re.search(r': (\d+)x(\d+) (\w+), (\d+) bands?, (\w+)', out.stdout)
    check(m, 'unexpected vipsheader output: ' + out.stdout)
    return int(m[1]), int(m[2]), int(m[4]), m[3], m[5]


def colour(path, x, y):
    with Image.open(path) as im:
        return im.convert('RGB').getpixel((x, y))


def near(c, want, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(c, want))


# ---- the daemon ---------------------------------------------------------

def write_conf(path, spool, download, upload):
    with open(path, 'w') as f:
        f.write('spool = "%s";\nruntime = "%s/run";\nlog_level = "info";\n'
                'download = {\n  workers = 3;\n%s\n};\n'
                'resize = {\n  workers = 2;\n  variants = %s;\n};\n'
                'upload = {\n  workers = 2;\n%s\n};\n'
                % (spool, os.path.dirname(spool), download, VARIANTS, upload))


def put_job(spool, name, lines):
    """Write a job the way a producer must (tmp/ then rename into new/).
    Returns {NAME: line number} for items given as "URL NAME"."""
    for sub in ('tmp', 'new'):
        os.makedirs(os.path.join(spool, sub), exist_ok=True)
    text = '# %s: written by it_e2e.py\n' % name + ''.join(l + '\n' for l in lines)
    with open(os.path.join(spool, 'tmp', name), 'w') as f:
        f.write(text)
    os.rename(os.path.join(spool, 'tmp', name), os.path.join(spool, 'new', name))
    return {l.split()[1]: i + 2 for i, l in enumerate(lines) if len(l.split()) == 2}


def daemon_env():
    """A sanitizer report must not pass for "items failed" (exit 1)."""
    env = dict(os.environ)
    env['ASAN_OPTIONS'] = env.get('ASAN_OPTIONS', '') + ':exitcode=66'
    env['UBSAN_OPTIONS'] = env.get('UBSAN_OPTIONS', '') + ':exitcode=66:print_stacktrace=1'
    return env


def run_daemon(conf, want_rc, timeout=120):
    t0 = time.monotonic()
    p = subprocess.run([os.environ['PIPELINED'], '-c', conf, '--once'], env=daemon_env(),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    with open(conf + '.stderr', 'w') as f:
        f.write(p.stderr)
    check('Sanitizer' not in p.stderr and 'runtime error:' not in p.stderr,
          'sanitizer report from %s:\n%s' % (conf, p.stderr[-4000:]))
    check(p.returncode == want_rc, '%s: exit %d, expected %d; stderr:\n%s'
          % (conf, p.returncode, want_rc, p.stderr[-4000:]))
    print('  %s: exit %d in %.1f s' % (os.path.relpath(os.path.dirname(conf), top), p.returncode,
                                       time.monotonic() - t0))
    return p.stderr


def results(spool, job, where):
    """{name: record} from where/JOB.result; the job itself must be there too."""
    check(os.path.exists(os.path.join(spool, where, job)),
          'job %s not in %s/ (new: %s, done: %s, failed: %s)' % (
              job, where, *(sorted(os.listdir(os.path.join(spool, s)))
                            for s in ('new', 'done', 'failed'))))
    recs = {}
    with open(os.path.join(spool, where, job + '.result')) as f:
        for line in f:
            r = json.loads(line)
            check(r['name'] not in recs, 'two records for ' + r['name'])
            recs[r['name']] = r
    return recs


def expect(recs, lines, name, status, *words):
    """The item's record has this status, its line, and each word in its error."""
    check(name in recs, 'no result record for %s (have %s)' % (name, sorted(recs)))
    r = recs[name]
    check(r['status'] == status, '%s: status %s, expected %s: %s' % (name, r['status'], status, r))
    check(r['line'] == lines[name], '%s: line %s, expected %d' % (name, r['line'], lines[name]))
    if status == 'ok':
        check(not r.get('error') and len(r['outputs']) == 2, '%s: %s' % (name, r))
    else:
        check(r['outputs'] == [], '%s failed but has outputs: %s' % (name, r))
        for w in words:
            check(w in (r.get('error') or ''), '%s: reason %r lacks %r' % (name, r.get('error'), w))
    return r


def dl(extra=''):
    """download settings shared by the runs: fast timeouts, one quick retry"""
    return '''  timeout = 2.0;
  connect_timeout = 2.0;
  max_bytes = 200000;
  retries = 1;
  backoff = 0.1;
  protocols = [ "http" ];
  allow_private = true;''' + extra


# ---- the runs -----------------------------------------------------------

def run_main(d, ng, sp, img):
    """Every kind of http source in one job; outputs PUT to nginx /dav/."""
    os.makedirs(d + '/main')
    spool = d + '/main/spool'
    n = 'http://127.0.0.1:%d/img/' % ng
    s = 'http://127.0.0.1:%d/' % sp
    good = ['rotated', 'p3', 'cmyk', 'deep', 'anim', 'plain', 'flaky']
    lines = put_job(spool, 'mixed', [
        n + 'rotated.jpg rotated', n + 'p3.jpg p3', n + 'cmyk.jpg cmyk', n + 'deep.png deep',
        n + 'anim.gif anim', n + 'plain.jpg plain', n + 'missing.jpg missing',
        s + 'flaky/plain.jpg flaky', s + 'hang hang', n + 'big.bin biglen',
        s + 'endless endless', n + 'page.html html', n + 'trunc.jpg trunc',
        n + 'empty.jpg empty', n + 'huge.png huge', n + 'pic.svg svg',
        'file://%s/plain.jpg fileproto' % img])
    dav = 'http://127.0.0.1:%d/dav/{job}/{name}-{variant}.{ext}' % ng
    conf = d + '/main/pipeline.conf'
    write_conf(conf, spool, dl(), '  url = "%s";' % dav)
    log = run_daemon(conf, 1)
    recs = results(spool, 'mixed', 'failed')
    check(len(recs) == len(lines), 'records for %s, expected %s' % (sorted(recs), sorted(lines)))

    for name in good:
        r = expect(recs, lines, name, 'ok')
        want = ['http://127.0.0.1:%d/dav/mixed/%s-%s' % (ng, name, v)
                for v in ('thumb.jpg', 'sq.png')]
        check(sorted(r['outputs']) == sorted(want), '%s outputs %s' % (name, r['outputs']))
        for v in ('thumb.jpg', 'sq.png'):
            w, h, bands, fmt, interp = header('%s/www/dav/mixed/%s-%s' % (d, name, v))
            check((bands, fmt, interp) == (3, 'uchar', 'srgb'),
                  '%s-%s is %d bands %s %s, not 3-band sRGB 8-bit' % (name, v, bands, fmt, interp))
            if v == 'sq.png':
                check((w, h) == (64, 64), '%s-sq.png is %dx%d' % (name, w, h))
            else:
                check(max(w, h) == 256, '%s-thumb.jpg is %dx%d, not in a 256 box' % (name, w, h))
    # upright, and colours kept: untagged stays as it was, P3 comes back to sRGB
    for name in ('rotated', 'p3'):
        rot = '%s/www/dav/mixed/%s-thumb.jpg' % (d, name)
        check(header(rot)[:2] == (128, 256), '%s thumb is %dx%d, not upright portrait'
              % ((name,) + header(rot)[:2]))
        top, bottom = colour(rot, 64, 40), colour(rot, 64, 215)
        check(near(top, (255, 0, 0), 12) and near(bottom, (0, 0, 255), 12),
              '%s thumb: top %s, bottom %s; expected red over blue' % (name, top, bottom))
    cm = colour(d + '/www/dav/mixed/cmyk-thumb.jpg', 100, 80)
    check(cm[0] > 200 and cm[1] < 80 and cm[2] < 80, 'CMYK red came out %s' % (cm,))
    # 16-bit: the same levels as the 8-bit gradient it was made from
    src = Image.open(img + '/g8.png')
    deep = d + '/www/dav/mixed/deep-thumb.jpg'
    for y in (20, 85, 150):
        want = src.getpixel((150, int((y + 0.5) * 200 / 171)))
        check(near(colour(deep, 128, y), want, 8), '16-bit source row %d: %s, expected %s'
              % (y, colour(deep, 128, y), want))
    an = d + '/www/dav/mixed/anim-thumb.jpg'
    check(header(an)[:2] == (256, 192), 'anim thumb is %dx%d: not one 320x240 frame' % header(an)[:2])
    check(near(colour(an, 128, 96), (255, 0, 0), 12), 'anim thumb is not the first (red) frame: %s'
          % (colour(an, 128, 96),))

    expect(recs, lines, 'missing', 'failed', '404')
    expect(recs, lines, 'hang', 'failed', 'timed out')
    expect(recs, lines, 'biglen', 'failed', 'max_bytes', 'Content-Length')
    expect(recs, lines, 'endless', 'failed', 'body exceeds max_bytes')
    expect(recs, lines, 'html', 'failed', 'not an image')
    expect(recs, lines, 'trunc', 'failed', 'JPEG truncated: no EOI marker')
    expect(recs, lines, 'empty', 'failed', 'empty body')
    expect(recs, lines, 'huge', 'failed', 'image too large', '30000')
    expect(recs, lines, 'svg', 'failed', 'blocked')
    expect(recs, lines, 'fileproto', 'failed', 'file://', 'download.protocols')
    for name, r in recs.items():
        if r['status'] == 'failed':
            check(re.search(r'^<4>job mixed item %d .*failed in' % r['line'], log, re.M),
                  'no warning logged for failed item %s' % name)

    # 500 is retried and then served; 404 is not retried
    counts = json.load(urllib.request.urlopen(s + '_counts', timeout=10))
    check(counts.get('/flaky/plain.jpg') == 2, 'flaky fetched %s times, expected 2' % counts)
    check(counts.get('/hang') == 2, 'hang tried %s times, expected 2 (retries = 1)' % counts)
    access = await_log(d + '/nginx/access.log', lambda t: t.count('GET /img/missing.jpg '), 1)
    check(access.count('GET /img/missing.jpg ') == 1, '404 fetched other than once:\n' + access)


def run_files(d, img):
    """file:// sources: below file_root fine; outside it refused, also via symlink."""
    os.makedirs(d + '/files')
    spool = d + '/files/spool'
    lines = put_job(spool, 'local', [
        'file://%s/plain.jpg plain' % img, 'file:///etc/hostname etc',
        'file://%s/link.jpg link' % img, 'file://%s/../../outside/secret.jpg dotdot' % img,
        'file://%s/nothere.jpg nothere' % img])
    conf = d + '/files/pipeline.conf'
    extra = '\n  protocols = [ "http", "file" ];\n  file_root = "%s";' % img
    write_conf(conf, spool, dl().replace('  protocols = [ "http" ];\n', '') + extra,
               '  url = "file://%s/files/out/{job}/{name}-{variant}.{ext}";' % d)
    run_daemon(conf, 1)
    recs = results(spool, 'local', 'failed')
    expect(recs, lines, 'plain', 'ok')
    expect(recs, lines, 'etc', 'failed', 'outside file_root')
    expect(recs, lines, 'link', 'failed', 'outside file_root')
    expect(recs, lines, 'dotdot', 'failed', 'outside file_root')
    expect(recs, lines, 'nothere', 'failed', 'nothere.jpg')
    check(sorted(os.listdir(d + '/files/out/local')) == ['plain-sq.png', 'plain-thumb.jpg'],
          'unexpected outputs: %s' % os.listdir(d + '/files/out/local'))
    # the same source gives the same bytes, whichever way it was uploaded
    for v in ('thumb.jpg', 'sq.png'):
        a = open('%s/files/out/local/plain-%s' % (d, v), 'rb').read()
        b = open('%s/www/dav/mixed/plain-%s' % (d, v), 'rb').read()
        check(a == b, 'plain-%s: PUT to nginx stored other bytes than file://' % v)


def run_refusing(d, ng, img, where, status):
    """An upload target that refuses: every item fails naming the status."""
    os.makedirs(d + '/' + where)
    spool = '%s/%s/spool' % (d, where)
    n = 'http://127.0.0.1:%d/img/' % ng
    lines = put_job(spool, 'up', [n + 'plain.jpg plain', n + 'cmyk.jpg cmyk'])
    conf = '%s/%s/pipeline.conf' % (d, where)
    write_conf(conf, spool, dl(), '  url = "http://127.0.0.1:%d/%s/{job}/{name}-{variant}.{ext}";'
               '\n  retries = 1;\n  backoff = 0.1;' % (ng, where))
    run_daemon(conf, 1)
    recs = results(spool, 'up', 'failed')
    for name in ('plain', 'cmyk'):
        expect(recs, lines, name, 'failed', 'HTTP %d' % status, '/%s/up/%s-' % (where, name))
    # an item stops at its first refused output; 4xx is final, 5xx retried once
    attempts = 1 if status < 500 else 2
    pattern = re.compile(r'"PUT (/%s/\S+) ' % where)
    puts = pattern.findall(await_log(d + '/nginx/access.log',
                                     lambda t: len(pattern.findall(t)), 2 * attempts))
    tries = {p: puts.count(p) for p in puts}
    check(len(tries) == 2 and set(tries.values()) == {attempts},
          'PUTs to /%s/ %s: expected %d per item' % (where, tries, attempts))


def run_s3(d, img, ng):
    """S3 through the daemon: right keys store the objects, a wrong secret fails."""
    os.makedirs(d + '/s3/store')
    port = start_printing_port(['/usr/bin/python3', HERE + '/s3_endpoint.py', d + '/s3/store',
                                'AKIDE2ETEST', 'e2e-right-secret', 'us-east-1'],
                               d + '/s3/endpoint.log')
    n = 'http://127.0.0.1:%d/img/' % ng
    for run, secret in (('good', 'e2e-right-secret'), ('bad', 'e2e-wrong-secret')):
        base = '%s/s3/%s' % (d, run)
        os.makedirs(base)
        with open(base + '/s3.cred', 'w') as f:
            f.write('access_key_id = AKIDE2ETEST\nsecret_access_key = %s\n' % secret)
        os.chmod(base + '/s3.cred', 0o600)
        conf = base + '/pipeline.conf'
        write_conf(conf, base + '/spool', dl(), '''  url = "s3://bucket/%s/{name}-{variant}.{ext}";
  s3 = { endpoint = "http://127.0.0.1:%d"; region = "us-east-1"; credentials = "%s"; };'''
                   % (run, port, base + '/s3.cred'))
        jobs = {job: put_job(base + '/spool', job, [n + 'plain.jpg plain', n + 'deep.png deep'])
                for job in ('one', 'two')}
        run_daemon(conf, 0 if run == 'good' else 1)
        for job, lines in jobs.items():
            recs = results(base + '/spool', job, 'done' if run == 'good' else 'failed')
            for name in ('plain', 'deep'):
                if run == 'good':
                    expect(recs, lines, name, 'ok')
                else:
                    expect(recs, lines, name, 'failed', '403', 'SignatureDoesNotMatch')
    store = d + '/s3/store/bucket'
    check(not os.path.exists(store + '/bad'), 'objects stored with a wrong secret')
    check(sorted(os.listdir(store + '/good')) ==
          ['deep-sq.png', 'deep-thumb.jpg', 'plain-sq.png', 'plain-thumb.jpg'],
          's3 objects: %s' % os.listdir(store + '/good'))
    for v in ('thumb.jpg', 'sq.png'):
        a = open('%s/good/plain-%s' % (store, v), 'rb').read()
        b = open('%s/www/dav/mixed/plain-%s' % (d, v), 'rb').read()
        check(a == b, 'plain-%s: S3 object differs from the PUT output' % v)
        check(header('%s/good/deep-%s' % (store, v))[2:] == (3, 'uchar', 'srgb'),
              'deep-%s from S3 is not 3-band sRGB 8-bit' % v)


# ---- the SSRF guard, in a network namespace -----------------------------

PUBLIC = '198.51.100.7'


def netns_child(d, img):
    """Runs inside `unshare -n`: lo up with a "public" address; a file server
    on 127.0.0.1 and a redirector on PUBLIC; the daemon with allow_private =
    false.  Exits with the daemon's status, or 99 if the network cannot be
    set up (the probe said it could: a failure, not a skip)."""
    try:
        subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
        subprocess.run(['ip', 'addr', 'add', PUBLIC + '/32', 'dev', 'lo'], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print('netns: cannot set up lo: %s' % e, file=sys.stderr)
        sys.exit(99)
    try:
        srv = '/usr/bin/python3', HERE + '/e2e_server.py'
        inner = start_printing_port([*srv, '127.0.0.1', img], d + '/netns/inner.log')
        outer = start_printing_port([*srv, PUBLIC, img, 'http://127.0.0.1:%d/' % inner],
                                    d + '/netns/outer.log')
        o = 'http://%s:%d/' % (PUBLIC, outer)
        put_job(d + '/netns/spool', 'guard', [
            o + 'file/plain.jpg public', o + 'redirect/file/plain.jpg redirected',
            'http://127.0.0.1:%d/file/plain.jpg direct' % inner])
        conf = d + '/netns/pipeline.conf'
        write_conf(conf, d + '/netns/spool', dl().replace('allow_private = true',
                                                          'allow_private = false'),
                   '  url = "file://%s/netns/out/{name}-{variant}.{ext}";' % d)
        p = subprocess.run([os.environ['PIPELINED'], '-c', conf, '--once'], env=daemon_env(),
                           stdin=subprocess.DEVNULL, stderr=open(conf + '.stderr', 'w'),
                           timeout=120)
        sys.exit(p.returncode)
    finally:
        stop_all()


def run_netns(d, img):
    os.makedirs(d + '/netns')
    t0 = time.monotonic()
    p = subprocess.run(['unshare', '-n', '/usr/bin/python3', os.path.abspath(__file__),
                        '--netns-child', d, img], timeout=180)
    check(p.returncode != 99, 'netns: the namespace\'s lo could not be set up (above)')
    err = open(d + '/netns/pipeline.conf.stderr').read()
    check('Sanitizer' not in err and 'runtime error:' not in err, 'sanitizer report:\n' + err)
    check(p.returncode == 1, 'netns daemon exit %d, expected 1:\n%s' % (p.returncode, err[-3000:]))
    print('  netns: exit 1 in %.1f s' % (time.monotonic() - t0))
    recs = results(d + '/netns/spool', 'guard', 'failed')
    lines = {'public': 2, 'redirected': 3, 'direct': 4}
    expect(recs, lines, 'public', 'ok')
    expect(recs, lines, 'redirected', 'failed', 'refused to connect to 127.0.0.1 (loopback)')
    expect(recs, lines, 'direct', 'failed', 'refused to connect to 127.0.0.1 (loopback)')
    inner = open(d + '/netns/inner.log').read()
    check('/file/plain.jpg' not in inner, 'the guard let a request reach 127.0.0.1:\n' + inner)


# ---- main ---------------------------------------------------------------

def main():
    if len(sys.argv) == 4 and sys.argv[1] == '--netns-child':
        return netns_child(sys.argv[2], sys.argv[3])
    check(os.environ.get('PIPELINED'), 'PIPELINED is not set (run through ctest)')
    no_netns = pl.cannot_unshare_net()
    global top
    d = top = tempfile.mkdtemp(prefix='it_e2e.')
    os.chmod(d, 0o755)	# nginx workers (nobody) must reach www/
    ok = False
    t0 = time.monotonic()
    try:
        img = d + '/www/img'
        make_images(img, d + '/outside')
        ng = start_nginx(d)
        sp = start_printing_port(['/usr/bin/python3', HERE + '/e2e_server.py', '127.0.0.1', img],
                                 d + '/e2e_server.log')
        print('it_e2e: in %s, nginx on %d, scripted server on %d' % (d, ng, sp))
        run_main(d, ng, sp, img)
        run_files(d, img)
        run_refusing(d, ng, img, 'ro', 403)
        run_refusing(d, ng, img, 'full', 507)
        run_s3(d, img, ng)
        if no_netns:
            print('  netns redirect guard: not run, ' + no_netns)
        else:
            run_netns(d, img)
        ok = True
    finally:
        stop_all()
        if ok:
            shutil.rmtree(d)
            print('it_e2e: %s passed in %.1f s' % ('the runs that ran' if no_netns else 'all',
                                                   time.monotonic() - t0))
        else:
            print('it_e2e: FAILED; files kept in ' + d)
    if no_netns:
        pl.skip('netns redirect guard not run (%s); the other runs passed' % no_netns)


if __name__ == '__main__':
    main()
