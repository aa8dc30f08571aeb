"""it_cli — the command line of pipelined(8) as a script or an operator meets it.

What a caller relies on is the exit status and the words on the terminal:
-h/-V, the usage errors (2), `-t` (0 + "configuration OK", or one
FILE:LINE: message per error + 78), a bad or missing file without -t (78),
and `--once` telling "all items ok" (0) from "some failed" (1); 70 when the
daemon cannot set itself up (its spool cannot be made: a file stands where
a folder must be); the warning
`-t` gives for an upload.url without {job}, and the built-in url keeping
apart two jobs' items of the same name (run in a private mount namespace,
since it writes below /var/lib/pipelined).  Also the
--once progress bar, which only appears on a terminal: run under a pty
(Python's pty module) it shows "[…] …, ETA …" and the final summary; with
stderr a pipe there is no "\\r" in the output.  Log lines written while the
bar stands (failed items, debug lines, "job … finished") are replayed on a
small terminal model: each must come out whole on a line of its own, the
bar redrawn below, and the last bar whole.  Runs in a few seconds.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402


def cli(*args, timeout=60):
    return pl.run([pl.BIN] + list(args), timeout=timeout)


def expect_rc(p, rc, what):
    pl.check(p.returncode == rc, "%s: exit %d, expected %d; stdout %r stderr %r"
             % (what, p.returncode, rc, p.stdout[-500:], p.stderr[-500:]))


def t_help_version_usage():
    p = cli("-h")
    expect_rc(p, 0, "-h")
    pl.check("usage:" in p.stdout and "--once" in p.stdout, "-h prints no usage: %r" % p.stdout)
    p = cli("--help")
    expect_rc(p, 0, "--help")
    with open(os.path.join(pl.SRCDIR, "CMakeLists.txt")) as f:
        version = re.search(r"project\(pipelined VERSION ([0-9.]+)", f.read()).group(1)
    p = cli("-V")
    expect_rc(p, 0, "-V")
    pl.check(p.stdout.strip() == "pipelined " + version,
             "-V printed %r, expected 'pipelined %s'" % (p.stdout, version))
    p = cli()
    expect_rc(p, 2, "no -c")
    pl.check("-c" in p.stderr, "no -c: the error does not mention -c: %r" % p.stderr)
    p = cli("--bogus")
    expect_rc(p, 2, "unknown long option")
    p = cli("-x", "-c", "/dev/null")
    expect_rc(p, 2, "unknown option -x")
    pl.check("usage:" in p.stderr, "unknown option: no usage on stderr: %r" % p.stderr)
    p = cli("-c", "/dev/null", "extra")
    expect_rc(p, 2, "stray argument")


NO_JOB = ("upload.url has no {job}: outputs of different jobs with the same item name "
          "overwrite each other")


def t_check_shipped():
    p = cli("-c", os.path.join(pl.SRCDIR, "conf", "pipeline.conf"), "-t")
    expect_rc(p, 0, "-t on conf/pipeline.conf")
    pl.check(p.stdout.strip() == "configuration OK", "-t printed %r" % p.stdout)
    pl.check(p.stderr == "", "-t on conf/pipeline.conf said %r" % p.stderr)


def t_check_warning():
    """A url without {job} passes -t, with a warning at its line."""
    env = pl.Env("cli")
    try:
        text = env.write_config()
        line = [i for i, t in enumerate(text.splitlines(), 1) if t.strip().startswith("url =")]
        pl.check(len(line) == 1 and "{job}" not in text, "pltest's url changed: %r" % text)
        p = cli("-c", env.conf, "-t")
        expect_rc(p, 0, "-t with a url without {job}")
        pl.check(p.stdout.strip() == "configuration OK", "-t printed %r" % p.stdout)
        want = "%s:%d: %s" % (env.conf, line[0], NO_JOB)
        pl.check(want in p.stderr, "no warning %r in %r" % (want, p.stderr))
    finally:
        env.cleanup()


def t_check_errors():
    env = pl.Env("cli")
    try:
        bad = os.path.join(env.root, "bad.conf")
        env.write_file(bad, "\n".join([
            "# three errors, each on its own line",   # 1
            'spool = "%s";' % env.spool,              # 2
            'colour = "blue";',                       # 3 unknown setting
            "download = {",                           # 4
            '  workers = "three";',                   # 5 wrong type
            "  queue = 2;",                           # 6
            "};",                                     # 7
            "resize = {",                             # 8
            "  queue = 0;",                           # 9 out of range
            "};",                                     # 10
        ]) + "\n")
        p = cli("-c", bad, "-t")
        expect_rc(p, 78, "-t on a file with three errors")
        out = p.stdout + p.stderr
        errs = [line for line in out.splitlines() if line.startswith(bad + ":")]
        pl.check(len(errs) == 3, "expected 3 '%s:LINE: …' lines, got:\n%s" % (bad, out))
        got = [int(line[len(bad) + 1:].split(":", 1)[0]) for line in errs]
        pl.check(got == [3, 5, 9], "error line numbers %s, expected [3, 5, 9]:\n%s" % (got, out))
        pl.check("colour" in errs[0], "line 3 error does not name 'colour': %r" % errs[0])
        pl.check("workers" in errs[1], "line 5 error does not name workers: %r" % errs[1])
        pl.check("queue" in errs[2] and "0" in errs[2],
                 "line 9 error does not name queue and 0: %r" % errs[2])
        pl.check("configuration OK" not in out, "bad file reported OK")

        # The same file without -t: the daemon refuses to start, 78, errors logged.
        p = cli("-c", bad, "--once")
        expect_rc(p, 78, "--once with a bad config")
        pl.check(bad + ":3:" in p.stderr, "bad config without -t: no FILE:LINE: %r" % p.stderr)
        p = cli("-c", bad)
        expect_rc(p, 78, "daemon with a bad config")

        missing = os.path.join(env.root, "no-such.conf")
        for extra in (["-t"], []):
            p = cli("-c", missing, *extra)
            expect_rc(p, 78, "missing file %s" % extra)
            pl.check(missing in p.stdout + p.stderr, "missing file %s: path not named: %r"
                     % (extra, p.stdout + p.stderr))
    finally:
        env.cleanup()


def t_once_exit_status():
    env = pl.Env("cli")
    try:
        env.write_config(workers=(2, 2, 2))
        imgs = env.image_set(3)
        env.submit("good", env.items(12, imgs))
        p = cli("-c", env.conf, "--once")
        expect_rc(p, 0, "--once, all good")
        pl.check(env.where("good") == "done", "good job is in %s" % env.where("good"))
        pl.check("\r" not in p.stderr, "a progress bar was drawn on a pipe")
        pl.check(re.search(r"12 items in .*12 ok, 0 failed", p.stderr),
                 "no summary line: %r" % p.stderr[-400:])

        lines = env.items(5, imgs) + ["file://%s/missing.jpg gone" % env.images]
        env.submit("mixed", lines)
        p = cli("-c", env.conf, "--once")
        expect_rc(p, 1, "--once with a failing item")
        pl.check(env.where("mixed") == "failed", "mixed job is in %s" % env.where("mixed"))
        recs = env.records("mixed")
        bad = [r for r in recs if r["status"] == "failed"]
        pl.check(len(recs) == 6 and len(bad) == 1 and bad[0]["line"] == 6,
                 "mixed records: %s" % recs)
        pl.check(re.search(r"<4>job mixed item 6 .*failed in download", p.stderr),
                 "no warning for the failed item: %r" % p.stderr[-600:])

        p = cli("-c", env.conf, "--once")
        expect_rc(p, 0, "--once on an empty spool")
    finally:
        env.cleanup()


def t_default_url_keeps_jobs_apart():
    """Two jobs, each with an item named "small", through the built-in
    upload.url: two files, not one overwritten.  That url writes below
    /var/lib/pipelined/out, so the daemon runs in a private mount namespace
    (unshare -rm) with a tmpfs over /var/lib, and lists the outputs there."""
    why = pl.cannot_unshare_mount()
    if why:
        pl.skip("default url: " + why)  # exit 77; a failure under PL_REQUIRE_ALL=1
    env = pl.Env("cli")
    try:
        text = env.write_config()
        nourl = re.sub(r"(?m)^  url = .*\n", "", text)
        pl.check(nourl != text and "url" not in nourl, "cannot drop the url from %r" % text)
        env.write_file(env.conf, nourl)
        img = env.image_set(1)[0]
        env.submit("job-a", ["file://%s small" % img])
        env.submit("job-b", ["file://%s small" % img])
        script = ('mount -t tmpfs tmpfs /var/lib || exit 99\n'
                  '"$0" -c "$1" --once >&2 || exit $?\n'
                  'cd /var/lib/pipelined/out && find . -type f | sort\n')
        p = pl.run(["unshare", "-rm", "sh", "-c", script, pl.BIN, env.conf], timeout=120)
        pl.check(p.returncode != 99, "cannot mount a tmpfs over /var/lib: %r" % p.stderr)
        expect_rc(p, 0, "--once with the default url")
        got = p.stdout.split()
        pl.check(got == ["./job-a/small-thumb.jpg", "./job-b/small-thumb.jpg"],
                 "outputs of two jobs with an item 'small': %s" % got)
        pl.check(env.where("job-a") == "done" and env.where("job-b") == "done",
                 "jobs in %s and %s" % (env.where("job-a"), env.where("job-b")))
    finally:
        env.cleanup()


def t_exit_internal():
    env = pl.Env("cli")
    try:
        blocker = os.path.join(env.root, "a-file")
        with open(blocker, "w") as f:
            f.write("not a folder\n")
        for spool in (blocker, os.path.join(blocker, "spool")):
            text = env.write_config().replace('spool = "%s";' % env.spool,
                                              'spool = "%s";' % spool)
            env.write_file(env.conf, text)
            pl.check(cli("-c", env.conf, "-t").returncode == 0, "-t refused %s" % spool)
            for args in ((), ("--once",)):
                p = cli("-c", env.conf, *args, timeout=pl.scaled(30, 120))
                expect_rc(p, 70, "spool %s %s" % (spool, " ".join(args)))
                pl.check(re.search(r"^<3>cannot open the spool %s: Not a directory$"
                                   % re.escape(spool), p.stderr, re.M),
                         "no error naming the spool: %r" % p.stderr[-400:])
    finally:
        env.cleanup()


def t_once_progress_bar():
    env = pl.Env("cli")
    try:
        env.write_config(workers=(1, 1, 1))
        imgs = env.image_set(3, 320, 240)
        n = pl.scaled(60, 30)
        env.submit("bar", env.items(n, imgs))
        rc, out = pl.run_on_pty([pl.BIN, "-c", env.conf, "--once"], pl.scaled(60, 180))
        pl.check(rc == 0, "--once on a pty exited %d: %r" % (rc, out[-500:]))
        bars = re.findall(r"\r\[[#.]+\] (\d+)/(\d+), (\d+) failed, [0-9.]+/s, ETA [-0-9:]+", out)
        pl.check(bars, "no progress bar on the terminal: %r" % out[-800:])
        pl.check(all(int(t) == n for _, t, _ in bars), "bar totals are not %d: %s" % (n, bars))
        pl.check(bars[-1][0] == str(n), "the last bar does not show %d/%d: %s" % (n, n, bars[-1]))
        pl.check(re.search(r"%d items in [0-9.]+ s: %d ok, 0 failed" % (n, n), out),
                 "no final summary on the terminal: %r" % out[-500:])
        pl.check(not re.search(r"^<\d>", out, re.M), "'<N>' prefixes on a terminal")
        pl.check(env.where("bar") == "done", "job is in %s" % env.where("bar"))
    finally:
        env.cleanup()


def screen_lines(out):
    """The lines a terminal shows for out: "\\r" returns to column 0, "\\033[K"
    erases to the end of the line, "\\n" starts a new one; no wrapping, so a
    line that was split shows as two and one overwritten shows its remains."""
    lines, cur, col, i = [], [], 0, 0
    while i < len(out):
        c = out[i]
        if out.startswith("\033[K", i):
            del cur[col:]
            i += 3
            continue
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("".join(cur))
            cur, col = [], 0
        else:
            if col < len(cur):
                cur[col] = c
            else:
                cur.append(c)
            col += 1
        i += 1
    if cur:
        lines.append("".join(cur))
    return lines


BAR_RE = r"\[[#.]+\] \d+/\d+, \d+ failed, [0-9.]+/s, ETA [-0-9:]+"


def t_log_lines_over_bar():
    env = pl.Env("cli")
    try:
        # enough items that the run lasts a few bar frames
        env.write_config(workers=(1, 1, 1), log_level="debug")
        imgs = env.image_set(3, 640, 480, "png")
        n = pl.scaled(200, 60)
        jobs = ["bar-%d" % j for j in range(3)]
        for job in jobs:    # every fifth item fails: a warning while the bar stands
            lines = env.items(n, imgs)
            lines[::5] = ["file://%s/missing-%d.jpg" % (env.images, k)
                          for k in range(len(lines[::5]))]
            env.submit(job, lines)
        rc, out = pl.run_on_pty([pl.BIN, "-c", env.conf, "--once"], pl.scaled(90, 240))
        pl.check(rc == 1, "--once with failing items on a pty exited %d: %r" % (rc, out[-500:]))
        shown = [ln for ln in screen_lines(out.replace("\r\n", "\n")) if ln.strip()]
        total = 3 * n
        for ln in shown:
            whole_log = ln.startswith("pipelined: ")
            whole_bar = re.fullmatch(BAR_RE, ln) is not None
            pl.check(whole_log or whole_bar, "a line on the terminal is neither a whole log "
                     "line nor a whole bar: %r" % ln)
            pl.check(not (whole_log and re.search(r"\[[#.]{10,}\]|ETA [-0-9:]+$", ln)),
                     "a bar fragment shares a line with a log line: %r" % ln)
        failed = 3 * len(range(0, n, 5))
        for job in jobs:
            pl.check(any(re.fullmatch(r"pipelined: job %s finished: .*" % job, ln) for ln in shown),
                     "no whole 'job %s finished' line on the terminal" % job)
        pl.check(sum(1 for ln in shown if re.fullmatch(r"pipelined: warning: job bar-\d item "
                                                      r"\d+ .*", ln)) >= failed,
                 "fewer than %d whole warnings for failed items" % failed)
        bars = [ln for ln in shown if re.fullmatch(BAR_RE, ln)]
        pl.check(bars and bars[-1].startswith("[%s] %d/%d, %d failed, " % ("#" * 20, total, total,
                                                                          failed))
                 and bars[-1].endswith("ETA 0:00"),
                 "the last bar is not the whole final one: %r" % (bars[-1:],))
        last_bar = max(i for i, ln in enumerate(shown) if ln == bars[-1])
        pl.check(any(re.match(r"pipelined: %d items in" % total, ln) for ln in shown[last_bar:]),
                 "the summary does not follow the final bar: %r" % shown[last_bar:last_bar + 3])
    finally:
        env.cleanup()


if __name__ == "__main__":
    pl.main([
        ("help, version, usage errors", t_help_version_usage),
        ("-t on the shipped configuration", t_check_shipped),
        ("-t warns about a url without {job}", t_check_warning),
        ("two jobs, one item name, the default url: two outputs", t_default_url_keeps_jobs_apart),
        ("-t and start-up with three errors / a missing file", t_check_errors),
        ("--once exit status", t_once_exit_status),
        ("exit status 70: no spool can be made", t_exit_internal),
        ("--once progress bar on a terminal", t_once_progress_bar),
        ("log lines over the progress bar", t_log_lines_over_bar),
    ])
