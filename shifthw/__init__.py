"""shifthw: multiplication-free (DeepShift) neural networks on FPGAs and ASICs."""

__version__ = "0.1.0"
