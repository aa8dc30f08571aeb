"""it_https — downloads over https:// against a real TLS server.

https is one of the default download protocols, so a transfer over it is
checked end to end: a local nginx with a throwaway CA's server certificate
(made here with openssl(1), for 127.0.0.1) serves the sources, and the real
daemon must fetch them, verifying the certificate.  pipelined has no CA
setting of its own: libcurl reads its built-in bundle,
/etc/ssl/certs/ca-certificates.crt on Debian.  So the daemon runs in a
private mount namespace (`unshare -m`) where that file is bind-mounted over
by the test CA alone; the host's trust store is never touched.  Where
pl.cannot_unshare_mount() says why that is impossible, the test skips.

The same job also names a second nginx whose certificate is self-signed
(not from the trusted CA): that item must be recorded failed with a reason
naming the rejected certificate, and the items after it must still be
fetched, so one bad peer costs one item, not the daemon.

Nothing sleeps: each server is awaited by connecting, the daemon runs with
--once and is awaited to exit.  A few seconds.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

SLOW = 4 if pl.SANITIZE else 1
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args):
    p = pl.run(["openssl"] + list(args), timeout=60)
    pl.check(p.returncode == 0, "openssl %s: %s" % (args[0], p.stderr.strip()[-400:]))


def make_certs(d):
    """A CA, a server certificate it signs for 127.0.0.1, and a self-signed
    one for the same address that nobody trusts; paths by name."""
    f = {k: os.path.join(d, k) for k in ("ca.pem", "ca.key", "srv.pem", "srv.key", "srv.csr",
                                         "srv.ext", "rogue.pem", "rogue.key")}
    openssl("req", "-x509", *EC, "-keyout", f["ca.key"], "-out", f["ca.pem"], "-days", "2",
            "-subj", "/CN=pipelined test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *EC, "-keyout", f["srv.key"], "-out", f["srv.csr"], "-subj", "/CN=127.0.0.1")
    with open(f["srv.ext"], "w") as e:
        e.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f["srv.csr"], "-CA", f["ca.pem"], "-CAkey", f["ca.key"],
            "-CAcreateserial", "-out", f["srv.pem"], "-days", "2", "-extfile", f["srv.ext"])
    openssl("req", "-x509", *EC, "-keyout", f["rogue.key"], "-out", f["rogue.pem"],
            "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    return f


def t_https_downloads():
    for tool in ("nginx", "openssl"):
        if not shutil.which(tool):
            pl.skip("%s is not installed" % tool)
    why = pl.cannot_unshare_mount()
    if why:
        pl.skip(why)
    env = pl.Env("https")
    os.chmod(env.root, 0o755)
    servers = []
    try:
        certs = make_certs(env.root)
        imgs = env.image_set(2)
        ports = {}
        for name, cert in (("good", "srv"), ("rogue", "rogue")):
            root = os.path.join(env.root, "nginx-" + name)
            os.mkdir(root)
            ng = pl.Nginx(root, env.images, tls=(certs[cert + ".pem"], certs[cert + ".key"]))
            servers.append(ng)
            ports[name] = ng.start()

        text = env.write_config(extra_download="  allow_private = true;")
        text = text.replace('protocols = [ "file" ];', 'protocols = [ "https" ];')
        env.write_file(env.conf, text.replace('  file_root = "%s";\n' % env.images, ""))
        plan = ["good", "good", "rogue", "good", "good"]
        env.submit("tls", ["https://127.0.0.1:%d/%s item%d"
                           % (ports[p], os.path.basename(imgs[i % 2]), i + 1)
                           for i, p in enumerate(plan)])

        script = 'mount --bind "$1" "$2" && exec "$3" -c "$4" --once'
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script,
                            "sh", certs["ca.pem"], BUNDLE, pl.BIN, env.conf],
                           capture_output=True, text=True, timeout=60 * SLOW)
        # 1: with --once, at least one item failed (pipelined(8), EXIT STATUS)
        pl.check(p.returncode == 1, "--once over https with one untrusted peer exited %d: %s"
                 % (p.returncode, p.stderr[-800:]))
        recs = {r["line"]: r for r in env.records("tls")}
        pl.check(sorted(recs) == list(range(1, len(plan) + 1)), "records: %s" % recs)
        for line, peer in enumerate(plan, 1):
            r = recs[line]
            if peer == "good":
                pl.check(r["status"] == "ok", "line %d from the trusted server: %s" % (line, r))
            else:
                pl.check(r["status"] == "failed" and
                         "TLS certificate rejected" in (r.get("error") or ""),
                         "line %d from the untrusted server: %s" % (line, r))
        outs = [f for f in env.outputs() if not f.startswith(".")]
        pl.check(len(outs) == plan.count("good"), "outputs: %s" % outs)
    finally:
        for ng in servers:
            ng.kill()
        env.cleanup()


if __name__ == "__main__":
    pl.main([
        ("https downloads verify the server against the CA bundle", t_https_downloads),
    ])
