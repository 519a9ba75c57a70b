"""Attribution maps with captum: which pixels a prediction rests on, aligned with the input.

    :func:`grad_cam`              Grad-CAM (Selvaraju et al. 2017) on any block or the last
                                  stage: ReLU of the gradient-weighted channel sum, upsampled
                                  bilinearly to the input, as in the paper
    :func:`occlusion`             the drop in the target's score when a window is zeroed
    :func:`integrated_gradients`  gradients integrated along the path from a zero baseline,
                                  n_steps and the internal batch size capped
    :func:`attribute`             any of them by name

Each returns a (B, H, W) float32 CPU tensor for (B, C, H, W) inputs; show it with
:func:`gsoplib.viz.overlay` or :func:`gsoplib.viz.attribution_figure`. The model runs in eval
mode with gradients on; every module's train/eval flag is restored afterwards, captum's hooks are
gone, and the caller's images and parameters keep their ``requires_grad``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion
from torch import nn

from .taps import taps

METHODS = ("gradcam", "occlusion", "integrated_gradients")
MAX_IG_STEPS = 256
MAX_INTERNAL_BATCH = 64
#: What each method's map holds, for a colour bar's title: (unit, how to read it).
UNITS = {
    "gradcam": ("Grad-CAM / its largest value",
                "where the layer's gradient-weighted activations favour the class; a ReLU keeps "
                "it non-negative and its scale depends on the layer, so it is shown divided by "
                "its largest value (0 to 1)"),
    "occlusion": ("drop in the class logit",
                  "how far the class logit falls when a window around the pixel is set to a "
                  "uniform grey at the dataset's mean intensity (0 after normalisation, not the "
                  "mean image): red where the window supported the class, blue where it counted "
                  "against it"),
    "integrated_gradients": ("contribution to the class logit",
                             "each pixel's share of the logit's change from a uniform grey at "
                             "the dataset's mean intensity (0 after normalisation) to this "
                             "one (the shares sum to it): red for the class, blue against"),
}


@contextmanager
def _eval_with_grad(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def _inputs(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        raise ValueError("images must be a normalised float tensor (B, C, H, W) or (C, H, W)")
    if not images.is_floating_point():
        raise ValueError(f"images must be a normalised float tensor, got {images.dtype}")
    images = images.unsqueeze(0) if images.dim() == 3 else images
    device = next(iter(model.parameters()), images).device
    # A fresh leaf, so gradients reach the layer even when every parameter is frozen, and the
    # caller's tensor keeps its requires_grad.
    return images.detach().to(device).clone().requires_grad_(True)


def _targets(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor | int:
    if target is None:
        with torch.no_grad():
            return model(x).argmax(dim=1)
    if isinstance(target, int):
        return target
    return torch.as_tensor(target, device=x.device).reshape(-1)


def last_stage(model: nn.Module, images: torch.Tensor) -> str:
    """Path of the last top-level child of ``model`` whose output is a (B, C, H, W) map: the
    last stage of a ResNet, whose output the head pools; the classic Grad-CAM layer."""
    found: list[str] = []
    handles = [
        child.register_forward_hook(
            lambda m, a, out, name=name: found.append(name)
            if isinstance(out, torch.Tensor) and out.dim() == 4
            else None
        )
        for name, child in model.named_children()
    ]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no top-level child returning a (B, C, H, W) map; "
            "pass layer= a module path"
        )
    return found[-1]


def _layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    try:
        return model.get_submodule(layer)
    except AttributeError:
        blocks = list(dict.fromkeys(p.rpartition(".")[0] for p in taps(model)))
        valid = [name for name, _ in model.named_children()] + [b for b in blocks if b]
        raise ValueError(
            f"layer {layer!r} is not a module of {type(model).__name__}; e.g. "
            f"{', '.join(valid) or 'a path from model.named_modules()'}"
        ) from None


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    layer: str | nn.Module | None = None,
) -> torch.Tensor:
    """Grad-CAM of ``layer`` (a module path or module; default :func:`last_stage`).

    The layer's channels are weighted by the spatial mean of the target logit's gradient, summed,
    passed through ReLU (paper Eq. 1-2) and upsampled bilinearly to the input: (B, H, W) >= 0.
    target: a class index, (B,) indices, or None for each image's predicted class.
    """
    x = _inputs(model, images)
    with _eval_with_grad(model):
        module = _layer(model, layer if layer is not None else last_stage(model, x.detach()))
        tgt = _targets(model, x.detach(), target)
        cam = LayerGradCam(model, module).attribute(x, target=tgt, relu_attributions=True)
        if cam.dim() != 4:
            raise ValueError(
                f"Grad-CAM needs a layer with a (B, C, H, W) output; {layer!r} gave "
                f"{tuple(cam.shape)}"
            )
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam.detach()[:, 0].float().cpu()


def occlusion(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    window: int | None = None,
    stride: int | None = None,
    perturbations_per_eval: int = 16,
) -> torch.Tensor:
    """Occlusion (Zeiler and Fergus 2014): the target logit's drop when a window x window patch
    of every channel is set to 0 (for normalised inputs a uniform image at the dataset's mean
    intensity, not the mean image), averaged over the
    windows covering each pixel: (B, H, W), positive where the patch supported the target.

    Defaults: window a quarter of the shorter side (7 for 28x28), stride half the window.
    """
    x = _inputs(model, images)
    side = min(x.shape[-2:])
    window = window or max(2, side // 4)
    stride = stride or max(1, window // 2)
    if not 1 <= window <= side or stride < 1:
        raise ValueError(f"occlusion window must be in [1, {side}] and stride >= 1, got "
                         f"window={window}, stride={stride}")
    channels = x.shape[1]
    with _eval_with_grad(model):
        tgt = _targets(model, x.detach(), target)
        with torch.no_grad():
            attr = Occlusion(model).attribute(
                x.detach(),
                sliding_window_shapes=(channels, window, window),
                strides=(channels, stride, stride),
                baselines=0.0,
                target=tgt,
                perturbations_per_eval=perturbations_per_eval,
            )
    return attr.sum(dim=1).float().cpu()


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    n_steps: int = 32,
    internal_batch_size: int = 16,
) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) from a zero baseline (for normalised
    inputs a uniform image at the dataset's mean intensity, not the mean image), summed over
    channels: (B, H, W), signed.

    Costs n_steps forward and backward passes per image, run internal_batch_size at a time;
    n_steps is capped at MAX_IG_STEPS and internal_batch_size at MAX_INTERNAL_BATCH.
    """
    if not 1 <= n_steps <= MAX_IG_STEPS:
        raise ValueError(f"n_steps must be between 1 and {MAX_IG_STEPS}, got {n_steps}")
    if not 1 <= internal_batch_size <= MAX_INTERNAL_BATCH:
        raise ValueError(
            f"internal_batch_size must be between 1 and {MAX_INTERNAL_BATCH}, "
            f"got {internal_batch_size}"
        )
    x = _inputs(model, images)
    with _eval_with_grad(model):
        tgt = _targets(model, x.detach(), target)
        attr = IntegratedGradients(model).attribute(
            x,
            baselines=torch.zeros_like(x),
            target=tgt,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
        )
    return attr.detach().sum(dim=1).float().cpu()


_BY_NAME: dict[str, Callable[..., torch.Tensor]] = {
    "gradcam": grad_cam,
    "occlusion": occlusion,
    "integrated_gradients": integrated_gradients,
}


def attribute(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "gradcam",
    target: int | torch.Tensor | None = None,
    **options,
) -> torch.Tensor:
    """The ``method`` map ('gradcam', 'occlusion' or 'integrated_gradients'): (B, H, W)."""
    if method not in _BY_NAME:
        raise ValueError(f"unknown attribution method {method!r}; expected one of "
                         f"{', '.join(METHODS)}")
    return _BY_NAME[method](model, images, target, **options)


__all__ = [
    "MAX_IG_STEPS",
    "MAX_INTERNAL_BATCH",
    "METHODS",
    "attribute",
    "grad_cam",
    "integrated_gradients",
    "last_stage",
    "occlusion",
]
