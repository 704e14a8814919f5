"""Greedy label placement for scatter plots: labels that do not cover each other or the points.

The leaderboard's trade-off scatter has a dense cluster (many defenses at 0% adaptive accuracy
and 82-88% clean), where labels written at a fixed offset from their point overprint each other
into an unreadable smear. This places each label, in turn, at the candidate position nearest
to its point among those free of the labels already placed, of every point's marker and of the
outside of the plotting area (or, if none is free, the one that overlaps least); the caller
draws a leader line from the point to a label placed away from it. A label with no free spot within a given distance is
reported as not placed; the scatter then marks that point with a short key number instead and
lists the keys beside the plot.

Everything here is in display units (pixels) and pure NumPy, so it is testable without a figure:
``bench.reports.plots`` measures each label's size with the figure's renderer, converts the points to
pixels, calls :func:`place_labels`, and draws the result.

Greedy placement is not optimal: a label placed early may take the spot a later one needed.
Labels are placed in the order given; the caller passes the crowded points first, so they get
the nearby spots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# radii (pixels from the point to the nearest corner/edge of the label) and directions tried
_RADII = (3.0, 8.0, 16.0, 26.0, 38.0, 52.0, 68.0, 86.0, 106.0, 128.0)
_DIRECTIONS = 24


def _overlap(box: np.ndarray, boxes: np.ndarray) -> float:
    """Total overlap area of ``box`` [4] (x0, y0, x1, y1) with each row of ``boxes`` [N, 4]."""
    if len(boxes) == 0:
        return 0.0
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    return float(np.sum(w * h))


def _outside(box: np.ndarray, area: Sequence[float]) -> float:
    """Area of ``box`` that lies outside ``area`` (x0, y0, x1, y1)."""
    w, h = box[2] - box[0], box[3] - box[1]
    iw = max(0.0, min(box[2], area[2]) - max(box[0], area[0]))
    ih = max(0.0, min(box[3], area[3]) - max(box[1], area[1]))
    return float(w * h - iw * ih)


def candidate_boxes(point: Sequence[float], size: Sequence[float],
                    marker_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Candidate label boxes around one point, nearest first.

    Args:
        point: ``(x, y)`` of the point, in pixels.
        size: ``(width, height)`` of the label, in pixels.
        marker_radius: the point's marker radius; gaps are measured from the marker's edge.

    Returns:
        ``(boxes [M, 4], distances [M])``: each box as (x0, y0, x1, y1), with the gap between the
        marker's edge and the box. A box in direction ``theta`` is placed so that its side (or
        corner) facing the point is ``g = marker_radius + r`` pixels away: to the right, it starts
        at ``x + g``; above, its bottom is at ``y + g``; and so on.
    """
    x, y = point
    w, h = size
    boxes, dist = [], []
    for r in _RADII:
        for k in range(_DIRECTIONS):
            t = 2 * np.pi * k / _DIRECTIONS
            c, s = np.cos(t), np.sin(t)
            # the box's side facing the point is r pixels away along (c, s); exactly above,
            # below, left or right of the point the box is centred on that axis (sign 0)
            sx, sy = np.sign(np.round(c, 9)), np.sign(np.round(s, 9))
            g = marker_radius + r
            cx, cy = x + g * c + sx * w / 2, y + g * s + sy * h / 2
            boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            dist.append(r)
    return np.asarray(boxes, dtype=float), np.asarray(dist, dtype=float)


def place_labels(points: np.ndarray, sizes: np.ndarray, area: Sequence[float],
                 marker_radius: np.ndarray | float = 4.0, obstacles: np.ndarray | None = None,
                 max_distance: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Place one label per point, greedily, in the order given.

    Args:
        points: ``[N, 2]`` point positions in pixels.
        sizes: ``[N, 2]`` label (width, height) in pixels.
        area: ``(x0, y0, x1, y1)``, the region labels should stay inside (the axes), in pixels.
        marker_radius: the markers' radius in pixels, one for all or ``[N]``.
        obstacles: ``[K, 4]`` boxes already taken (labels placed earlier), or None.
        max_distance: a label is only placed if a spot free of other labels and markers, and
            inside ``area``, lies within this many pixels of its marker's edge.

    Returns:
        ``(boxes [N, 4], placed [N])``: each label's box (x0, y0, x1, y1) in pixels, and whether
        it was placed. A label that was not placed has its least-bad box (within
        ``max_distance`` if any candidate is) and takes no room from the labels after it.

    Raises:
        ValueError: when the shapes do not match.
    """
    points = np.asarray(points, dtype=float)
    sizes = np.asarray(sizes, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2 or sizes.shape != points.shape:
        raise ValueError(f"points and sizes must both be [N, 2]; got {points.shape} and {sizes.shape}")
    radius = np.broadcast_to(np.asarray(marker_radius, dtype=float), (len(points),))
    markers = np.column_stack([points - radius[:, None], points + radius[:, None]])
    taken = [] if obstacles is None else [np.asarray(b, dtype=float) for b in obstacles]
    boxes, placed = [], []
    for i, (p, s) in enumerate(zip(points, sizes)):
        cands, dist = candidate_boxes(p, s, radius[i])
        near = dist <= max_distance
        if near.any():
            cands, dist = cands[near], dist[near]
        area_px = s[0] * s[1]
        taken_arr = np.asarray(taken).reshape(-1, 4)
        best, best_clash = cands[0], np.inf
        for box in cands:  # nearest first: the first spot free of clashes wins
            # label-on-label overlap weighs most, then leaving the axes, then covering a marker
            clash = (10.0 * _overlap(box, taken_arr) + 5.0 * _outside(box, area)
                     + 2.0 * _overlap(box, markers)) / area_px
            if clash < best_clash:
                best, best_clash = box, clash
                if clash == 0.0:
                    break
        ok = bool(best_clash == 0.0 and dist.min() <= max_distance)
        boxes.append(best)
        placed.append(ok)
        if ok:
            taken.append(best)
    return np.asarray(boxes).reshape(-1, 4), np.asarray(placed, dtype=bool)
