"""Which device to compute on: ``resolve_device("auto")`` and a clear error for one this machine lacks."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" picks cuda, then mps, then cpu; anything else is passed to torch.device.

    A device this machine does not have (``"cuda"`` without a GPU) is a ValueError, not a crash later.
    """
    if str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from err
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine; "
                                 "use device 'auto' or 'cpu'")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {str(device)!r}: MPS is not available on this machine; use 'auto' or 'cpu'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
