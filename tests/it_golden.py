#!/usr/bin/python3
"""it_golden — the result files, byte for byte, against committed copies.

JOB.result is an interface: producers parse it, and a refactoring of the
code that writes it must not change one byte of it.  This runs fixed jobs
through `pipelined --once` (file:// sources, local outputs) and compares
every result file with tests/golden/JOB.result after replacing only what
must differ between runs: the order of the records (workers finish in any
order), the milliseconds of each record and the test's temporary folder.  The jobs cover what the writer has to get right: good
items with several outputs, derived and made-unique names, every kind of
bad line, escapes of quotes, backslashes and control characters, valid and
invalid UTF-8, a NUL byte, CRLF endings, and an item that fails in a stage.

PL_GOLDEN_UPDATE=1 rewrites the golden files instead (then review the diff).
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

GOLDEN = os.path.join(pl.SRCDIR, "tests", "golden")
VARIANTS = ('{ name = "thumb"; width = 32; height = 32; fit = "inside"; format = "jpeg"; '
            'quality = 70; },\n    { name = "sq"; width = 16; height = 16; fit = "cover"; '
            'format = "png"; }')


def jobs(img):
    """name -> bytes of the job file; img: {key: path}."""
    j = {}
    j["1-good"] = ("# a comment, then a blank line\n\n"
                   "file://%(a)s\n"
                   "file://%(a)s\n"
                   "  file://%(b)s\tcover  \r\n"
                   "file://%(c)s c.v2_x-1\n" % img).encode()
    j["2-bad"] = ("file://%(a)s\n"
                  "not-a-url\n"
                  "file://%(a)s x y\n"
                  "file://%(a)s .dot\n"
                  "file://%(a)s dup\n"
                  "file://%(b)s dup\n"
                  "file://%(a)s %(long)s\n"
                  "file://%(root)s/missing.jpg\n"
                  "file://%(a)s\n" % dict(img, long="n" * 101)).encode()
    j["3-escapes"] = (b'quote"d back\\slash \x01ctl\n'
                      b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 valid utf-8\n"
                      b"bad \xff\xfe utf-8 \xc3\n"
                      b"nul \x00 byte\n"
                      b"tab\there\n"
                      + b"y" * 9000 + b"\n"
                      + b"file://" + img["a"].encode() + b"\n")
    j["4-empty"] = b"# nothing to do\n\n   \n"
    return j


def normalize(text, root):
    """Records in line order (workers finish in any order), each byte for
    byte but for its milliseconds and the temporary folder."""
    text = text.replace(root, "ROOT")
    text = re.sub(r'"milliseconds":[0-9]+', '"milliseconds":0', text)
    recs = text.splitlines(keepends=True)
    return "".join(sorted(recs, key=lambda r: int(re.match(r'\{"line":([0-9]+),', r).group(1))))


def t_golden():
    env = pl.Env("golden")
    try:
        env.write_config(workers=(2, 2, 2), variants=VARIANTS)
        img = {k: pl.make_image(os.path.join(env.images, k + ext), 64, 48, kind)
               for k, ext, kind in (("a", ".jpg", "noise"), ("b", ".png", "zone"),
                                    ("c", ".jpg", "sines"))}
        img["root"] = env.images
        for name, data in jobs(img).items():
            tmp = os.path.join(env.spool, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, os.path.join(env.spool, "new", name))
        p = pl.run([pl.BIN, "-c", env.conf, "--once"], timeout=120, errors="replace")
        pl.check(p.returncode == 1, "--once: exit %d, want 1; %s" % (p.returncode, p.stderr[-1000:]))
        update = os.environ.get("PL_GOLDEN_UPDATE") == "1"
        for name in sorted(jobs(img)):
            where = env.where(name)
            pl.check(where in ("done", "failed"), "job %s is in %s" % (name, where))
            with open(os.path.join(env.spool, where, name + ".result"), encoding="utf-8",
                      newline="") as f:
                got = "%s/\n%s" % (where, normalize(f.read(), env.root))
            path = os.path.join(GOLDEN, name + ".result")
            if update:
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(got)
                continue
            with open(path, encoding="utf-8", newline="") as f:
                want = f.read()
            if got != want:
                gl, wl = got.splitlines(), want.splitlines()
                diff = next((i for i in range(min(len(gl), len(wl))) if gl[i] != wl[i]),
                            min(len(gl), len(wl)))
                pl.fail("%s differs from tests/golden at line %d:\n  got  %r\n  want %r"
                        % (name, diff + 1, gl[diff] if diff < len(gl) else None,
                           wl[diff] if diff < len(wl) else None))
    finally:
        env.cleanup()


if __name__ == "__main__":
    pl.main([("result files byte for byte", t_golden)])
