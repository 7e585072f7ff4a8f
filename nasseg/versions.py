"""What produced a result: the software versions stored with every run, study and report."""
from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("optuna", "numpy", "scipy", "pandas", "plotly", "pydantic", "ray")


def versions() -> dict[str, str]:
    """nasseg, Python, the platform, torch (and CUDA/GPU when present) and the installed
    libraries a result depends on; a library that is not installed is left out.

    Example:
        >>> versions()["torch"]
        '2.13.0+cpu'
    """
    import torch

    import nasseg

    out = {"nasseg": nasseg.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "torch": torch.__version__}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name()
    return out
