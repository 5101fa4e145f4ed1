"""Stacked bar charts drawn on the server as SVG geometry (no script, nothing fetched elsewhere).

`stacked_bars` turns buckets (an hour each, say) of counts per series into rectangles, grid lines
and labels in SVG user units; a template draws them (templates/admin/portal/stacked_chart.html),
the colours come from classes in core/static/smarthome/dashboard.css, so the page keeps the strict
Content-Security-Policy (no inline style).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Series:
    key: str  # css class suffix: `series-<key>`
    label: str


@dataclass
class Bucket:
    label: str  # under the bar, e.g. "14:00"
    counts: dict  # series key -> count


WIDTH, HEIGHT = 760, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 16, 34


def nice_ceiling(value: int) -> int:
    """The smallest of 4, 8, 20, 40, 80, 200, ... not below `value` (axis top, 4 grid steps)."""
    if value <= 4:
        return 4
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            top = int(4 * step * magnitude)
            if top >= value:
                return top
        magnitude *= 10


def stacked_bars(buckets: list[Bucket], series: list[Series], *, label_every: int = 3) -> dict:
    """Geometry of a stacked bar chart: one bar per bucket, the series stacked in `series` order
    (only series with a count anywhere appear, in the bars and the legend)."""
    shown = [s for s in series if any(b.counts.get(s.key, 0) for b in buckets)]
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    top = nice_ceiling(max([sum(b.counts.get(s.key, 0) for s in shown) for b in buckets] + [0]))
    slot = plot_w / max(len(buckets), 1)
    bar_w = round(slot * 0.7, 2)
    baseline = PAD_TOP + plot_h
    bars = []
    for i, bucket in enumerate(buckets):
        x = round(PAD_LEFT + i * slot + slot * 0.15, 2)
        y = baseline
        rects = []
        for one in shown:
            count = bucket.counts.get(one.key, 0)
            if not count:
                continue
            h = round(plot_h * count / top, 2)
            y = round(y - h, 2)
            rects.append({"key": one.key, "label": one.label, "n": count, "y": y, "h": h})
        total = sum(r["n"] for r in rects)
        bars.append({
            "label": bucket.label, "x": x, "rects": rects, "total": total,
            "summary": ", ".join(f"{r['label']}: {r['n']}" for r in rects),
            "show_label": i % label_every == label_every - 1 or i == len(buckets) - 1,
            "label_x": round(PAD_LEFT + i * slot + slot / 2, 2),
        })
    return {
        "width": WIDTH, "height": HEIGHT, "left": PAD_LEFT, "right": WIDTH - PAD_RIGHT, "baseline": baseline,
        "label_y": baseline + 18, "bar_w": bar_w, "bars": bars, "series": shown,
        "grid": [{"y": round(baseline - plot_h * k / 4, 2), "value": int(top * k / 4)} for k in range(5)],
        "empty": not shown,
    }
