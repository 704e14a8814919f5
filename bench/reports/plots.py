"""Leaderboard pictures, drawn from stored results (matplotlib, the optional ``plots`` extra).

* ``robustness_curves``: robust accuracy vs Linf eps per defense, gray-box and adaptive side
  by side (the shape of SHIELD's Fig. 4). At each eps the worst case over that level's Linf
  attacks is plotted, as in the leaderboard's headline; eps 0 is clean accuracy.
* ``tradeoff_scatter``: clean vs adaptive robust accuracy (Linf 8/255 headline), marker area
  proportional to the defense's preprocessing cost. Labels are placed apart
  (``bench.reports.label_placement``); points in a cluster too dense to label get key numbers, listed
  beside the axes.

Drawn by ``shieldbench report --only pictures`` (the ``Pictures`` report) beside the leaderboard
(``leaderboards/<protocol>-*.png``), atomically. The gallery, which crafts an adversarial
example and runs the defenses, is an experiment: ``bench.experiments.gallery``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.eval.schema import Result
from bench.reports.report import README_PROTOCOL, Report, Store, register_report


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("pictures need matplotlib: pip install -e '.[plots]'") from None
    return plt


def png(fig) -> bytes:
    """The figure as PNG bytes (120 dpi, no software stamp), and closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def curve(result: Result, level: str) -> tuple[list[float], list[float]]:
    """``(eps list, accuracy list)``: eps 0 = clean, then the worst case per Linf eps (<= 16/255)
    of ``level``, chosen as the leaderboard's headline is (``bench.reports.leaderboard.worst_entry``).

    An eps that the protocol measures only on a subset of its images (``cifar10-standard``'s
    adaptive 4/255: 500 images) is plotted from that subset rather than left out.
    """
    from bench.reports.leaderboard import worst_entry

    worst = {}
    for eps in sorted({e.eps for e in result.at(level) if e.norm == "linf" and e.eps is not None and e.eps <= 16}):
        entry = worst_entry(result, level, eps) or worst_entry(result, level, eps, subsets=True)
        worst[eps] = entry.robust
    return [0.0, *worst], [result.clean_accuracy.mean, *worst.values()]


def robustness_curves(results: Sequence[Result], title: str = "") -> bytes:
    """Robust accuracy vs Linf eps per defense, gray-box and adaptive side by side (PNG bytes)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    cmap = plt.get_cmap("tab20")
    ensemble = any(e.is_ensemble for r in results for e in r.at("adaptive"))  # cifar10-standard-v2's worst case
    how = " (worst case over the ensemble)" if ensemble else " (BPDA + EOT)"
    for ax, level in zip(axes, ("gray-box", "adaptive")):
        for i, r in enumerate(results):
            eps, acc = curve(r, level)
            if len(eps) > 1:
                # 20 colours, then the same colours dashed: no two lines look alike
                ax.plot(eps, [100 * a for a in acc], marker="o", ms=3, color=cmap(i % 20),
                        linestyle=("-", "--", ":")[(i // 20) % 3], label=r.spec)
        ax.set_title(f"{level}{how if level == 'adaptive' else ''}")
        ax.set_xlabel("Linf eps (/255)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title or "robust accuracy vs Linf budget (worst case over attacks)")
    return png(fig)


def tradeoff_scatter(results: Sequence[Result], title: str = "") -> bytes:
    """Clean vs adaptive accuracy, one marker per defense, labelled by ``_label_points`` (PNG bytes)."""
    from bench.reports.leaderboard import headline

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    rows = []
    for r in results:
        h = headline(r)
        if h.adaptive is not None:
            rows.append((r.spec, 100 * h.clean, 100 * h.adaptive, 20 + 400 * min(1.0, h.defense_ms / 5.0)))
    top = max([a for _, _, a, _ in rows], default=0.0)
    for _, clean, adaptive, size in rows:
        ax.scatter(clean, adaptive, s=size, alpha=0.6)
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("adaptive robust accuracy at 8/255 (%)")
    ax.set_ylim(-1.0, max(10.0, top + 5.0))  # from 0, so that near-0% rows do not read as spread out
    ax.grid(alpha=0.3)
    ax.set_title(title or "clean vs adaptive robust accuracy (marker area: defense ms/img, capped at 5 ms)")
    if rows:
        _label_points(fig, ax, [(spec, (c, a), size) for spec, c, a, size in rows])
    return png(fig)


def _label_points(fig, ax, points: Sequence[tuple[str, tuple[float, float], float]]) -> None:
    """Label scatter points ``(label, (x, y), marker area in pt^2)`` without overprinting.

    A label goes next to its point where a free spot lies within ~20 px
    (``bench.reports.label_placement``); a point in a cluster too dense for that gets a key number
    (placed the same way, with a leader line when it sits apart), and the keys are listed to the
    right of the axes.
    """
    from bench.reports.label_placement import place_labels

    renderer = fig.canvas.get_renderer()

    def measure(text: str) -> tuple[float, float]:
        t = ax.text(0, 0, text, fontsize=7)
        bb = t.get_window_extent(renderer)
        t.remove()
        return bb.width + 2, bb.height + 2

    pts = ax.transData.transform(np.array([xy for _, xy, _ in points]))
    radius = np.sqrt(np.array([s for *_, s in points]) / np.pi) * fig.dpi / 72
    area = ax.bbox.extents
    # crowded points first, so that they get the spots next to them
    order = np.argsort(-(np.linalg.norm(pts[:, None] - pts[None], axis=-1) < 60).sum(1), kind="stable")
    names = [points[i][0] for i in order]
    boxes, ok = place_labels(pts[order], np.array([measure(n) for n in names]), area, radius[order],
                             max_distance=20)
    # keys for the rest, numbered left to right so that the list reads like the plot
    rest = sorted(np.flatnonzero(~ok), key=lambda j: tuple(pts[order[j]]))
    keys = [str(k + 1) for k in range(len(rest))]
    if rest:
        key_boxes, _ = place_labels(pts[order[rest]], np.array([measure(k) for k in keys]), area,
                                    radius[order[rest]], obstacles=boxes[ok])
        boxes[rest] = key_boxes
    text = dict(zip(rest, keys))
    to_data = ax.transData.inverted()
    for j, i in enumerate(order):
        box, p, rad = boxes[j], pts[i], radius[i]
        gap = np.hypot(max(box[0] - p[0], 0, p[0] - box[2]), max(box[1] - p[1], 0, p[1] - box[3])) - rad
        ax.annotate(text.get(j, names[j]), points[i][1], xytext=to_data.transform(box[:2] + 1),
                    textcoords="data", fontsize=7, ha="left", va="bottom",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 0, "shrinkB": 2}
                    if gap > 6 else None)
    if rest:
        listing = "\n".join(f"{k}  {names[j]}" for k, j in zip(keys, rest))
        ax.text(1.02, 0.0, listing, transform=ax.transAxes, fontsize=7, va="bottom", ha="left", family="monospace")


@register_report("pictures")
class Pictures(Report):
    """The curves and the trade-off scatter of one protocol (default: the README's, ``README_PROTOCOL``), beside
    its page. Not byte-stable across matplotlib versions, so drawn only when named
    (``shieldbench report --only pictures``) and never checked."""

    checked = False

    def __init__(self, protocol: str = README_PROTOCOL) -> None:
        self.protocol = protocol

    def render(self, store: Store) -> dict[Path, str | bytes]:
        results = store.results_of(self.protocol)
        if not results:
            return {}
        return {store.pages / f"{self.protocol}-curves.png": robustness_curves(results),
                store.pages / f"{self.protocol}-tradeoff.png": tradeoff_scatter(results)}
