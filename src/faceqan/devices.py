"""Which torch device to run on, checked before any work, with errors that say what to do."""

from __future__ import annotations

import torch

CUDA_INSTALL_HINT = "install a CUDA build of torch: pip install torch --index-url https://download.pytorch.org/whl/cu128"


def resolve_device(name: str | torch.device) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``, if this machine and torch build have it; else a ValueError in one line."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {str(name)!r}: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise ValueError(f"device {str(name)!r} asked for, but {build} (torch {torch.__version__}); {CUDA_INSTALL_HINT}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(name)!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) are visible")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("device 'mps' asked for, but Apple's Metal backend is not available on this machine")
        return device
    raise ValueError(f"unsupported device {str(name)!r}: use cpu, cuda, cuda:N or mps")
