#!/usr/bin/python3
"""it_bombs.py — metadata bombs through `pipelined --once`: memory stays
within what the configuration allows, and every item that fails says why.

The sources are crafted here (struct + zlib):
  - the hardening issue's 144-byte PNG whose zTXt claims 2 GB, twice, so
    that both resize workers meet one at once (libpng allocated and zeroed
    2 GB each: 2.1 GB RSS per file, then "libvips gave no reason");
  - a 3 MB PNG of text chunks inflating to 320 MB (converted, slowly, at
    over 1 GB RSS): it must convert, with its text stripped;
  - a TIFF whose nine tags share one 8 MiB block (read again and again);
  - a WebP whose ICC chunk claims 2 GB (refused as "unable to parse image");
  - a JPEG and a PNG cut short, and a PNG with a damaged IHDR CRC (reasons
    were "Premature end …", "libpng read error" and "libvips gave no reason");
  - two good images.

The daemon's peak RSS is read from the kernel when it is reaped (wait4's
ru_maxrss), not sampled, and must stay below

    base + resize.workers × max_pixels × 4 bytes × 2 + the sources' bytes

(one RGBA frame per worker, twice over, plus every source held at once): the
ceiling pipelined(8) tells an operator to give the unit, at this test's
small max_pixels.  base is the daemon with libvips loaded (larger under
ASan, whose shadow memory and quarantine count in RSS).  A few seconds.
"""
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

RESIZE_WORKERS = 2
MAX_PIXELS = 4000000
BASE_MIB = pl.scaled(160, 256)


def png_chunk(kind, data, claim=None):
    n = len(data) if claim is None else claim
    return struct.pack(">I", n) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w=16, h=16, extra=b"", ihdr_crc_ok=True):
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    if not ihdr_crc_ok:
        ihdr = ihdr[:-4] + bytes(b ^ 0xFF for b in ihdr[-4:])
    raw = b"".join(b"\0" + b"\x80" * (3 * w) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + ihdr + extra + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def ztxt_bomb():
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
    data = head + struct.pack(">I", 2147483632) + b"zTXt" + b"Comment\0\0"
    return data + b"\0" * (144 - len(data))


def text_png():
    z = b"Comment\0\0" + zlib.compress(b"z" * 40000000, 9)
    text = b"Comment\0" + b"t" * 1000000
    return png(extra=png_chunk(b"zTXt", z) * 8 + png_chunk(b"tEXt", text) * 3)


def tiff_bomb():
    """Little-endian, 16x8 RGB, nine UNDEFINED tags on one 8 MiB block."""
    w, h, blob = 16, 8, 8 * 1024 * 1024
    pix = b"\x80" * (w * h * 3)
    head_len = 8
    pix_at = head_len
    bps_at = pix_at + len(pix)
    blob_at = bps_at + 6
    ifd_at = blob_at + blob
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, bps_at), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, pix_at), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(pix)),
            (284, 3, 1, 1)] + [(65000 + i, 7, blob, blob_at) for i in range(9)]
    ifd = struct.pack("<H", len(tags))
    for tag, typ, count, value in tags:
        if typ == 3 and count == 1:
            ifd += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return (b"II*\0" + struct.pack("<I", ifd_at) + pix + struct.pack("<HHH", 8, 8, 8)
            + b"\0" * blob + ifd)


def webp_claim():
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x20, 0, 0, 0, 63, 0, 0, 63, 0, 0])
    iccp = b"ICCP" + struct.pack("<I", 2147483632) + b"\0" * 64
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x) + len(iccp)) + b"WEBP" + vp8x + iccp


# name -> (bytes or path maker, expected status, words the reason must hold)
def sources(env):
    good_jpg = pl.make_image(os.path.join(env.images, "good.jpg"), 640, 480)
    good_png = pl.make_image(os.path.join(env.images, "good.png"), 640, 480)
    with open(good_jpg, "rb") as f:
        jpg = f.read()
    with open(good_png, "rb") as f:
        pngdata = f.read()
    return [
        ("ztxt-a.png", ztxt_bomb(), "failed",
         "PNG chunk zTXt at byte 33 claims 2147483632 bytes, file has 144"),
        ("ztxt-b.png", ztxt_bomb(), "failed",
         "PNG chunk zTXt at byte 33 claims 2147483632 bytes, file has 144"),
        ("text.png", text_png(), "ok", None),
        ("shared.tif", tiff_bomb(), "failed", "TIFF tag data adds up to more than"),
        ("claim.webp", webp_claim(), "failed", "WebP chunk ICCP at byte 30 claims 2147483632"),
        ("cut.jpg", jpg[:len(jpg) * 6 // 10], "failed", "JPEG truncated"),
        ("cut.png", pngdata[:len(pngdata) - 12], "failed", "PNG truncated: no IEND chunk"),
        ("crc.png", png(ihdr_crc_ok=False), "failed", "cannot read image header: IHDR: CRC error"),
        ("good.jpg", None, "ok", None),
        ("good.png", None, "ok", None),
    ]


def t_bombs_bounded_and_named():
    env = pl.Env("bombs")
    d = None
    try:
        text = env.write_config(workers=(2, RESIZE_WORKERS, 1))
        text = text.replace("resize = {\n", "resize = {\n  max_pixels = %d;\n" % MAX_PIXELS, 1)
        env.write_file(env.conf, text)
        srcs = sources(env)
        total = 0
        for name, data, _, _ in srcs:
            path = os.path.join(env.images, name)
            if data is not None:
                with open(path, "wb") as f:
                    f.write(data)
            total += os.path.getsize(path)
        env.submit("bombs", ["file://%s/%s item%02d" % (env.images, name, i + 1)
                             for i, (name, _, _, _) in enumerate(srcs)])

        extra = {}
        if pl.SANITIZE:
            extra["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=64"
        d = pl.Daemon(env, "--once", extra_env=extra)
        got = {}

        def reaped():
            pid, status, ru = os.wait4(d.proc.pid, os.WNOHANG)
            if pid:
                got.update(status=status, maxrss=ru.ru_maxrss)
            return pid

        pl.wait_for(reaped, 300, "pipelined --once to exit")
        code = os.waitstatus_to_exitcode(got["status"])
        pl.check(code == 1, "exit status %d, expected 1 (some items failed); log tail: %s"
                 % (code, d.lines[-5:]))

        recs = {r["line"]: r for r in env.records("bombs")}
        for i, (name, _, status, words) in enumerate(srcs):
            r = recs.get(i + 1)
            pl.check(r is not None, "%s: no result record" % name)
            pl.check(r["status"] == status, "%s: %s, expected %s (%s)"
                     % (name, r["status"], status, r.get("error")))
            if words:
                pl.check(words in (r.get("error") or ""), "%s: reason %r lacks %r"
                         % (name, r.get("error"), words))
        generic = [ln for ln in d.lines if "no reason" in ln or "without a message" in ln]
        pl.check(not generic, "a generic reason in the log: %s" % generic[:1])

        bound = (BASE_MIB * 1024 + RESIZE_WORKERS * MAX_PIXELS * 4 * 2 // 1024
                 + total // 1024)
        pl.note("peak RSS %d KiB, bound %d KiB (base %d MiB, %d workers x %d pixels x 4 B x 2, "
                "sources %d KiB)" % (got["maxrss"], bound, BASE_MIB, RESIZE_WORKERS, MAX_PIXELS,
                                     total // 1024))
        pl.check(got["maxrss"] < bound, "peak RSS %d KiB is over the bound %d KiB"
                 % (got["maxrss"], bound))
    finally:
        if d:
            d.stop()
        env.cleanup()


if __name__ == "__main__":
    pl.main([("bombs_bounded_and_named", t_bombs_bounded_and_named)])
