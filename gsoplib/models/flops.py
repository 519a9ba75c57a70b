"""Multiply-adds of a forward pass, counted from shapes alone (the papers' "GFLOPs").

The GSoP-Net and iSQRT-COV papers, like He et al., report one multiply-add as one FLOP
(ResNet-50 at 224: 3.86 "GFLOPs" in GSoP-Net Table 5).
:class:`torch.utils.flop_counter.FlopCounterMode` counts two FLOPs per multiply-add for the
matrix products and convolutions, so the count here is half its total. Element-wise work (BN,
ReLU, sigmoid) is not counted, as in the papers.

The model runs under :class:`FakeTensorMode`: tensors have shapes and no storage, so counting
ResNet-50 at 224 takes well under a second and no memory, whether the model is built here from
its name or handed in with real weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
)
from torch.utils.flop_counter import FlopCounterMode

from .factory import create_model, model_defaults


def count_multiply_adds(model: nn.Module, input_size: int | tuple[int, int] = 224,
                        in_chans: int = 3) -> int:
    """Multiply-adds of ``model`` on one (1, in_chans, H, W) image, in eval mode.

    ``input_size`` is H = W or (H, W). The model's mode is restored afterwards. A model whose
    work depends on the image's values (a gated mixture runs only the components its gate picks)
    cannot be counted from shapes: ValueError.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    was_training = model.training
    model.eval()
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            x = mode.from_tensor(torch.empty(1, in_chans, h, w))
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(x)
    except (DataDependentOutputException, DynamicOutputShapeException) as error:
        raise ValueError(
            f"{type(model).__name__}'s work depends on the input's values ({error.func}), so its "
            "multiply-adds cannot be counted from shapes alone"
        ) from None
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def model_gflops(name: str, input_size: int | tuple[int, int] | None = None, **kwargs) -> float:
    """GFLOPs (billions of multiply-adds) of the zoo model ``name`` at ``input_size``
    (default: the model's own, 224 for the ImageNet networks), built without any memory.

    Examples:
        >>> round(model_gflops("resnet50"), 2), round(model_gflops("resnet50_gsop1"), 2)
        (4.09, 6.51)
    """
    defaults = model_defaults(name)
    with FakeTensorMode():
        model = create_model(name, **kwargs)
    in_chans = kwargs.get("in_chans") or defaults["in_chans"]
    return count_multiply_adds(model, input_size or defaults["input_size"], in_chans) / 1e9


__all__ = ["count_multiply_adds", "model_gflops"]
