"""A host-code submission: an OpenCV-style Gaussian blur written in NumPy.

Score it with ``shieldbench submit examples/numpy_blur.py``. It follows
``cv2.GaussianBlur(img, (k, k), sigma)``'s conventions without needing OpenCV: a separable,
normalised Gaussian kernel of odd size ``k`` (OpenCV's default ``k = 2 * round(3 * sigma) + 1``
for 8-bit images when ``k = 0``) and the ``BORDER_REFLECT_101`` border (``dcb|abcd|cba``, NumPy's
``reflect`` mode). Float32 batches ``[B, H, W, C]`` in [0, 1] in and out.
"""

import numpy as np

from bench import host_transform


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps ``[size]``."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(r ** 2) / (2 * sigma ** 2))
    return k / k.sum()


@host_transform("numpy_blur")
def numpy_blur(x: np.ndarray, sigma: float = 1.0, size: int = 0) -> np.ndarray:
    """Separable Gaussian blur of every channel; ``size = 0`` picks OpenCV's default for ``sigma``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    k = size or 2 * int(round(3 * sigma)) + 1
    if k < 1 or k % 2 == 0:
        raise ValueError(f"size must be odd and positive (or 0), got {size}")
    taps, r = gaussian_kernel(k, sigma), k // 2
    y = x.astype(np.float64)
    for axis in (1, 2):  # rows, then columns
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        p = np.pad(y, pad, mode="reflect")
        n = y.shape[axis]
        y = sum(t * np.take(p, np.arange(i, i + n), axis=axis) for i, t in enumerate(taps))
    return np.clip(y, 0.0, 1.0).astype(np.float32)
