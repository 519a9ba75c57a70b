"""Files laid out as the authors' code writes them, written here from the key names their code
uses, independently of gsoplib.convert's tables: for tests/test_convert.py and for the
ImageNet-size checkpoint the explorer's tests open (tests/imagenet_checkpoint.py)."""

from pathlib import Path

import torch
from torch import nn

# Section 11: the GSoP repo's names for gsoplib's modules.
AUTHORS_NAMES = [
    ("stem.0.", "conv1."),
    ("stem.1.", "bn1."),
    (".shortcut.", ".downsample."),
    (".attn.reduce.0.", ".conv_for_DR."),
    (".attn.reduce.1.", ".bn_for_DR."),
    (".attn.embed.bn.", ".row_bn."),
    (".attn.embed.conv.", ".row_conv_group."),
    (".attn.expand.", ".fc_adapt_channels."),
    ("head.pool.reduce.0.", "layer_reduce."),
    ("head.pool.reduce.1.", "layer_reduce_bn."),
    ("head.fc.", "fc."),
]
# Sections 3, 5 and 11: what the authors' code does that the paper does not say.
GSOP_CODE = {
    "last_stride": 1,
    "block_kwargs": [{"rd_channels": 128, "pre_relu": True, "rd_stride": 2}]
    + [{"rd_channels": 128, "pre_relu": True}] * 3,
}
MPNCOV_CODE = {"last_stride": 1, "head_kwargs": {"rd_channels": 256, "iters": 5}}


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics and biases, so a mix-up of any two tensors shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


def authors_name(key: str) -> str:
    for ours, theirs in AUTHORS_NAMES:
        if key.startswith(ours) or (ours.startswith(".") and ours in key):
            return key.replace(ours, theirs, 1)
    return key


def authors_layout(model: nn.Module, drop_batches_tracked: bool = False) -> dict:
    return {
        authors_name(k): v.clone()
        for k, v in model.state_dict().items()
        if not (drop_batches_tracked and k.endswith("num_batches_tracked"))
    }


def column_major_fc(weight: torch.Tensor, n: int) -> torch.Tensor:
    """fc weights of row-major triangle features -> the same classifier in the GSoP repo's
    column-major order: the entry (r, c), r <= c, is taken column c by column, r = 0..c."""
    row_major = {}
    for r in range(n):
        for c in range(r, n):
            row_major[(r, c)] = len(row_major)
    order = [row_major[(r, c)] for c in range(n) for r in range(c + 1)]
    return weight[:, order].clone()


def main_py_file(path: Path, state: dict) -> Path:
    """What the GSoP repo's main.py saves: its dict with DataParallel's ``module.`` keys."""
    torch.save({"epoch": 100, "arch": "resnet50", "best_prec1": torch.tensor(77.98),
                "state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}}, path)
    return path
