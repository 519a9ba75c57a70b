"""Render the notebooks' widget figures at the widgets' defaults, for readers without a kernel.

    PYTHONPATH=. OMP_NUM_THREADS=1 python docs/figures/notebooks/render.py

Writes toy_mixture.png (notebook 04) and block_ablation.png (notebook 06, the first image whose
prediction the ablation of layer1.2.attn changes) next to this file.
"""

from __future__ import annotations

from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    torch.set_num_threads(1)
    from gsoplib.toy_mixture import toy_data
    from gsoplib.viz import lessons_mixture

    toy = toy_data(train_samples=4000, test_samples=1000)
    _, fig = lessons_mixture.toy_mixture_view(toy)
    fig.savefig(HERE / "toy_mixture.png", dpi=80)
    print("wrote", HERE / "toy_mixture.png")

    from gsoplib.ablation import ablatable_blocks
    from gsoplib.data import load_dataset, normalize
    from gsoplib.pretrained import load_pretrained
    from gsoplib.viz import lessons_ablation

    test = load_dataset("fashion_mnist", train=False)
    x, y = normalize(test.images[:500], test.info.mean, test.info.std), test.labels[:500]
    gsop1 = load_pretrained("fmnist_small_gsop1")
    first = ablatable_blocks(gsop1.model)[:1]
    effect, _ = lessons_ablation.ablation_view(gsop1.model, x, y, list(test.info.classes), first)
    flipped = int(effect.flipped.nonzero()[0])          # the widget's default image
    _, fig = lessons_ablation.ablation_view(gsop1.model, x, y, list(test.info.classes), first,
                                            flipped)
    fig.savefig(HERE / "block_ablation.png", dpi=80)
    print("wrote", HERE / "block_ablation.png")


if __name__ == "__main__":
    main()
