"""Scatter labels that do not overprint (bench.reports.label_placement, and its use in bench.reports.plots)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.reports.label_placement import candidate_boxes, place_labels


def _pairwise_overlap(boxes: np.ndarray) -> float:
    total = 0.0
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            w = min(a[2], b[2]) - max(a[0], b[0])
            h = min(a[3], b[3]) - max(a[1], b[1])
            total += max(w, 0) * max(h, 0)
    return total


def _covers(box: np.ndarray, p: np.ndarray) -> bool:
    return bool(box[0] < p[0] < box[2] and box[1] < p[1] < box[3])


def test_candidates_never_cover_their_point_and_start_beyond_the_marker() -> None:
    boxes, dist = candidate_boxes((100.0, 50.0), (40.0, 10.0), marker_radius=5.0)
    assert len(boxes) == len(dist) and np.all(np.diff(dist) >= 0)  # nearest first
    assert not any(_covers(b, np.array([100.0, 50.0])) for b in boxes)
    right = boxes[0]  # direction 0: to the right, vertically centred
    assert right[0] == pytest.approx(100 + 5 + dist[0]) and right[1] == pytest.approx(45.0)


def test_a_dense_cluster_gets_labels_that_do_not_overlap() -> None:
    rng = np.random.default_rng(0)
    pts = np.column_stack([300 + 30 * rng.random(12), 200 + 10 * rng.random(12)])  # 12 points in 30 x 10 px
    sizes = np.tile([70.0, 10.0], (12, 1))
    boxes, ok = place_labels(pts, sizes, (0, 0, 800, 500), marker_radius=3.0)
    assert ok.all()
    assert _pairwise_overlap(boxes) == 0.0
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= 800) and np.all(boxes[:, 3] <= 500)
    assert not any(_covers(b, p) for b in boxes for p in pts)  # no label hides a point


def test_an_isolated_point_is_labelled_right_next_to_it() -> None:
    boxes, ok = place_labels(np.array([[100.0, 100.0]]), np.array([[50.0, 10.0]]), (0, 0, 400, 400), 4.0)
    assert ok[0]
    b = boxes[0]
    gap = np.hypot(max(b[0] - 100, 0, 100 - b[2]), max(b[1] - 100, 0, 100 - b[3]))
    assert gap <= 4.0 + 3.0 + 1e-9  # the marker's edge plus the first radius


def test_labels_without_a_free_spot_nearby_are_reported_and_take_no_room() -> None:
    pts = np.tile([200.0, 200.0], (8, 1)) + np.arange(8)[:, None] * [1.0, 0.0]  # 8 points on one spot
    sizes = np.tile([120.0, 12.0], (8, 1))
    boxes, ok = place_labels(pts, sizes, (0, 0, 400, 400), 3.0, max_distance=10)
    assert 0 < ok.sum() < 8
    assert _pairwise_overlap(boxes[ok]) == 0.0
    # an obstacle is respected: the same labels placed again avoid the first run's boxes
    again, ok2 = place_labels(pts[~ok], sizes[~ok], (0, 0, 400, 400), 3.0, obstacles=boxes[ok])
    assert ok2.all() and _pairwise_overlap(np.concatenate([boxes[ok], again])) == 0.0


def test_mismatched_shapes_are_named() -> None:
    with pytest.raises(ValueError, match=r"\[N, 2\].*\(3, 2\).*\(2, 2\)"):
        place_labels(np.zeros((3, 2)), np.zeros((2, 2)), (0, 0, 1, 1))


def test_scatter_labels_every_point_once_without_overprinting() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.reports.plots import _label_points

    # the leaderboard's shape: a few spread-out points and a cluster of 10 at ~0%
    names = [f"defense_{i}(x={i})" for i in range(14)]
    xy = [(47, 15), (60, 16), (72, 10), (67, 7)] + [(82 + 0.6 * i, 0.05 * (i % 3)) for i in range(10)]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for x, y in xy:
        ax.scatter(x, y, s=20)
    ax.set_ylim(-1, 20)
    _label_points(fig, ax, [(n, p, 20.0) for n, p in zip(names, xy)])
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_transform() is not ax.transAxes]
    listing = [t for t in ax.texts if t.get_transform() is ax.transAxes]
    keyed = {line.split(maxsplit=1)[1]: line.split()[0] for t in listing for line in t.get_text().splitlines()}
    shown = [t.get_text() for t in labels]
    for n in names:  # every defense is named once: by its label or by a key listed beside the plot
        assert (n in shown) != (n in keyed), n
    assert sorted(shown) == sorted([n for n in names if n not in keyed] + list(keyed.values()))
    from matplotlib.text import Text

    # the text's own box, as drawn (an Annotation's window extent also covers its leader line)
    fig.canvas.draw()
    boxes = np.array([Text.get_window_extent(t, renderer).extents for t in labels])
    assert _pairwise_overlap(boxes) < 1.0  # no two labels overprint (antialiasing slack)
    plt.close(fig)
