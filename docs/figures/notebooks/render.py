"""Render the notebooks' widget figures at the widgets' defaults, for readers without a kernel.

    PYTHONPATH=. OMP_NUM_THREADS=1 python docs/figures/notebooks/render.py

Writes toy_mixture.png (notebook 04) next to this file. (Notebook 06 draws its widgets' defaults
in the notebook itself.)
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


if __name__ == "__main__":
    main()
