"""The PyTorch side of shifthw: DeepShift layers, quantisers, conversion, training, zoo.

A model here is a :class:`~shifthw.models.net.ShiftSequential` of
:class:`~shifthw.models.quant.ActQuant` and shift layers
(:class:`~shifthw.models.layers.LinearShift`, :class:`~shifthw.models.layers.Conv2dShift`)
whose float64 forward is exactly the integer arithmetic of :mod:`shifthw.numerics`.
"""

from shifthw.models.convert import (
    convert_to_shift, fold_batchnorm, import_deepshift_checkpoint,
)
from shifthw.models.layers import Conv2dShift, LinearShift
from shifthw.models.net import ShiftSequential
from shifthw.models.quant import ActQuant, pow2_round, quantize_act_ste
from shifthw.models.zoo import build, cnn, load_checkpoint, load_zoo, mlp

__all__ = [
    "ActQuant", "quantize_act_ste", "pow2_round", "LinearShift", "Conv2dShift",
    "ShiftSequential", "fold_batchnorm", "convert_to_shift", "import_deepshift_checkpoint",
    "mlp", "cnn", "build", "load_checkpoint", "load_zoo",
]
