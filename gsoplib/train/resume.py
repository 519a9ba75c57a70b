"""A run's resume state: what ``resume.pt`` holds after each epoch, and the check that a resumed
run is the run that saved it (only :data:`RESUMABLE_CHANGES` may differ)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from gsoplib import checkpoint

from .config import RESUMABLE_CHANGES, TrainConfig


def resume_state(config: TrainConfig, epoch: int, model: nn.Module, optimizer,
                 history: list[dict], steps: list[dict], wall_time: float) -> dict:
    """Everything a run needs to go on after ``epoch`` epochs: tensors and primitives only
    (written with :func:`gsoplib.checkpoint.save_state`)."""
    return {
        "config": config.to_dict(),
        "epoch": epoch,
        "model": checkpoint.clean_state_dict(model.state_dict()),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "steps": steps,
        "wall_time_s": wall_time,
    }


def read_resume_state(path: Path, config: TrainConfig) -> dict | None:
    """The state saved at ``path``, or None when there is none; a ValueError in one sentence
    when it was saved by a run with other settings than ``config``."""
    if not path.exists():
        return None
    state = checkpoint.load_state(path)
    saved, current = state["config"], config.to_dict()
    changed = sorted(
        k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]
    )
    if changed:
        raise ValueError(
            f"{path} was saved by a run with different {', '.join(changed)}; "
            "resume with the same settings or choose another output folder"
        )
    return state


__all__ = ["read_resume_state", "resume_state"]
