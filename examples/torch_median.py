"""A host-code submission in PyTorch (CPU): a median filter, as a PyTorch author would write it.

Score it with ``shieldbench submit examples/torch_median.py``. PyTorch is an optional extra:
``pip install -e '.[torch]'`` (on this project's machines ``pip install torch==2.13.0`` takes the
CPU build from disk). The function gets a float32 NumPy batch ``[B, H, W, C]`` in [0, 1], works
on a torch tensor and may return the tensor itself: the wrapper takes it back to NumPy. Its
border is PyTorch's ``reflect`` padding, so it is not bit-equal to the built-in ``median``
(which pads by edge replication).
"""

import numpy as np

from bench import host_transform

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # a clear message instead of a bare ModuleNotFoundError
    raise ImportError("examples/torch_median.py needs PyTorch: pip install -e '.[torch]'") from None


@host_transform("torch_median")
def torch_median(x: np.ndarray, size: int = 3) -> "torch.Tensor":
    """``size`` x ``size`` median of every channel (odd ``size``), through ``unfold``."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be odd and positive, got {size}")
    t = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW
    r = size // 2
    p = F.pad(t, (r, r, r, r), mode="reflect")
    windows = p.unfold(2, size, 1).unfold(3, size, 1)  # [B, C, H, W, size, size]
    med = windows.reshape(*windows.shape[:4], -1).median(dim=-1).values
    return med.permute(0, 2, 3, 1).contiguous()
