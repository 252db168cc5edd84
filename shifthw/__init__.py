"""shifthw: multiplication-free (DeepShift) neural networks on FPGAs and ASICs.

``shifthw.compile(model, rows=8, cols=8)`` binds a model to a generated shift engine; see
:mod:`shifthw.api`.
"""

__version__ = "0.1.0"

from .api import HardwareModel, compile  # noqa: E402

__all__ = ["compile", "HardwareModel", "__version__"]
