"""e2e_pillow.py — the Python system of bench/e2e: the threaded pipeline of
Effective Python (ClosableQueue + StoppableWorker: download, resize, upload
stages of 3, 4 and 5 threads) doing the same work per source as pipelined,
with Debian's Pillow used the way a Pillow user would: draft mode for JPEG
(DCT scaling), exif_transpose, thumbnail with LANCZOS, alpha flattened onto
white, save quality=80 (Pillow writes no metadata unless asked); urllib for
the GET and the PUT.

    /usr/bin/python3 e2e_pillow.py LISTFILE PUTBASE [D R U]

Prints one line of JSON: images, failures and the seconds from the first
GET to the last PUT (the interpreter's start-up is not counted).
"""
import io
import json
import sys
import time
import urllib.request
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from effective_pipeline import ClosableQueue, start_threads, stop_threads  # noqa: E402

from PIL import Image, ImageOps, __version__ as PIL_VERSION

BOX = (256, 256)


failures = []


def download(item):
    url, name = item
    try:
        with urllib.request.urlopen(url) as r:
            return name, r.read()
    except Exception as e:  # noqa: BLE001 — counted and reported
        failures.append(f"GET {url}: {e}")
        return None


def resize(item):
    name, data = item
    try:
        img = Image.open(io.BytesIO(data))
        if img.format == 'JPEG':
            img.draft('RGB', BOX)
        img = ImageOps.exif_transpose(img)
        img.thumbnail(BOX, Image.LANCZOS)
        if img.mode in ('RGBA', 'LA') or (img.mode == 'P' and 'transparency' in img.info):
            rgba = img.convert('RGBA')
            img = Image.new('RGB', rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel('A'))
        elif img.mode != 'RGB':
            img = img.convert('RGB')
        out = io.BytesIO()
        img.save(out, 'JPEG', quality=80)
        return name, out.getvalue()
    except Exception as e:  # noqa: BLE001
        failures.append(f"resize {name}: {e}")
        return None


def make_upload(putbase):
    def upload(item):
        name, data = item
        req = urllib.request.Request(f"{putbase}/{name}-thumb.jpg", data=data, method='PUT',
                                     headers={'Content-Type': 'image/jpeg'})
        try:
            with urllib.request.urlopen(req) as r:
                r.read()
        except Exception as e:  # noqa: BLE001
            failures.append(f"PUT {name}: {e}")
        return None
    return upload


def main():
    listfile, putbase = sys.argv[1], sys.argv[2]
    widths = [int(x) for x in sys.argv[3:6]] if len(sys.argv) >= 6 else [3, 4, 5]
    items = [tuple(line.split(' ', 1)) for line in open(listfile).read().split('\n') if line]
    download_queue, resize_queue, upload_queue, done_queue = (
        ClosableQueue(), ClosableQueue(), ClosableQueue(), ClosableQueue())
    t0 = time.monotonic()
    download_threads = start_threads(widths[0], download, download_queue, resize_queue)
    resize_threads = start_threads(widths[1], resize, resize_queue, upload_queue)
    upload_threads = start_threads(widths[2], make_upload(putbase), upload_queue, done_queue)
    for item in items:
        download_queue.put(item)
    stop_threads(download_queue, download_threads)
    stop_threads(resize_queue, resize_threads)
    stop_threads(upload_queue, upload_threads)
    seconds = time.monotonic() - t0
    for f in failures[:5]:
        print(f, file=sys.stderr)
    print(json.dumps({'images': len(items), 'failures': len(failures), 'seconds': seconds,
                      'versions': {'pillow': PIL_VERSION,
                                   'python': sys.version.split()[0]}}))


if __name__ == '__main__':
    main()
