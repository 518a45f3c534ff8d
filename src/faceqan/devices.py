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


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (a container's
    limit, which ``os.cpu_count()`` does not see); at least 1."""
    import math
    import os
    from pathlib import Path

    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota readable: the affinity mask is the limit
    return max(count, 1)
