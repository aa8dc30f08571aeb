#!/usr/bin/python3
"""plot-metrics — a PNG of pipelined's metrics as a Prometheus server holds
them, for a README or a report where no Grafana runs.

    contrib/plot-metrics.py http://127.0.0.1:9090 OUT.png [MINUTES]

Four panels over the last MINUTES (default 5), one point a second: items
per second by outcome, queue depth per stage, busy workers per stage and
the p95 stage time (the same queries as contrib/grafana-pipelined.json).
Needs python3-pil; the font is DejaVu Sans when installed.
"""
import json
import sys
import time
import urllib.parse
import urllib.request

from PIL import Image, ImageDraw, ImageFont

PANELS = [
    ("items per second, by outcome",
     'sum by (outcome) (rate(pipelined_items_total[5s]))', "outcome"),
    ("queue depth, by stage", "sum by (stage) (pipelined_stage_queue_items)", "stage"),
    ("busy workers, by stage", "sum by (stage) (pipelined_stage_workers_busy)", "stage"),
    ("p95 stage time (s), by stage",
     "histogram_quantile(0.95, sum by (stage, le) "
     "(rate(pipelined_stage_duration_seconds_bucket[5s])))", "stage"),
]
COLOURS = {"ok": "#2ca02c", "failed": "#d62728", "download": "#1f77b4",
           "resize": "#ff7f0e", "upload": "#9467bd"}
W, H, PAD = 560, 260, 44


def query_range(base, expr, start, end):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 1})
    with urllib.request.urlopen(base + "/api/v1/query_range?" + q, timeout=10) as r:
        doc = json.load(r)
    if doc.get("status") != "success":
        raise SystemExit("query failed: %s: %s" % (expr, doc))
    return doc["data"]["result"]


def font(size):
    try:
        return ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def panel(img, x0, y0, title, series, key, start, end):
    d = ImageDraw.Draw(img)
    f, small = font(14), font(11)
    d.text((x0 + PAD, y0 + 6), title, fill="black", font=f)
    left, top, right, bottom = x0 + PAD, y0 + 30, x0 + W - 12, y0 + H - 28
    vals = [float(v) for s in series for _, v in s["values"] if v not in ("NaN", "+Inf")]
    top_v = max(vals + [1e-9]) * 1.1
    d.rectangle((left, top, right, bottom), outline="#888888")
    for i in range(5):
        y = bottom - (bottom - top) * i / 4
        d.line((left, y, right, y), fill="#e0e0e0")
        d.text((x0 + 2, y - 6), "%.3g" % (top_v * i / 4), fill="#444444", font=small)
    d.text((left, bottom + 6), "-%ds" % (end - start), fill="#444444", font=small)
    d.text((right - 24, bottom + 6), "now", fill="#444444", font=small)
    lx = left + 6
    for s in sorted(series, key=lambda s: s["metric"].get(key, "")):
        colour = COLOURS.get(s["metric"].get(key), "#7f7f7f")
        pts = [(left + (right - left) * (float(t) - start) / (end - start),
                bottom - (bottom - top) * float(v) / top_v)
               for t, v in s["values"] if v not in ("NaN", "+Inf")]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        label = s["metric"].get(key, "?")
        d.rectangle((lx, top + 6, lx + 10, top + 16), fill=colour)
        d.text((lx + 14, top + 4), label, fill="black", font=small)
        lx += 24 + int(d.textlength(label, font=small))


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    base, out = sys.argv[1].rstrip("/"), sys.argv[2]
    end = int(time.time())
    start = end - int(float(sys.argv[3]) * 60 if len(sys.argv) == 4 else 300)
    img = Image.new("RGB", (2 * W, 2 * H), "white")
    for i, (title, expr, key) in enumerate(PANELS):
        panel(img, (i % 2) * W, (i // 2) * H, title, query_range(base, expr, start, end),
              key, start, end)
    img.save(out, optimize=True)


if __name__ == "__main__":
    main()
