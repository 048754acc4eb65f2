"""The versions a reference set, budget file or report records."""

from __future__ import annotations

import numpy as np


def versions() -> dict[str, str]:
    """Versions of gpt2core, numpy, python and (when installed) torch and transformers."""
    import platform
    from importlib.metadata import version

    versions = {"gpt2core": version("gpt2core"), "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch
        import transformers

        versions.update(torch=torch.__version__, transformers=transformers.__version__)
    except ImportError:
        pass
    return versions
