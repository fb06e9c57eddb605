"""taskscope.train: the training loop, its modes, checkpoints and task samplers.

See docs/training.md for the order of operations, the config fields, the checkpoint layout and
``accelerate launch`` usage.
"""

from .config import LoraSettings, TrainConfig
from .data import TrainDataError
from .loop import TrainResult, train
from .modes import train_control, train_fewshot, train_multitask

__all__ = [
    "LoraSettings",
    "TrainConfig",
    "TrainDataError",
    "TrainResult",
    "train",
    "train_control",
    "train_fewshot",
    "train_multitask",
]
