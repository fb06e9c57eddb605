"""Stop when learned: a validation criterion checked after every evaluation, under the step cap.

`EarlyStopping.update(step, loss)` takes the mean validation loss of one evaluation (the mean over
validation tasks of each task's mean target-token loss) and, in this order:

1. records it as the best when it is lower than the best so far by more than ``min_delta`` (the first
   evaluation always is), else counts one evaluation without improvement;
2. returns ``"target_reached"`` when the loss is at or below ``target_loss``;
3. returns ``"no_improvement"`` when ``patience`` evaluations in a row did not improve on the best;
4. otherwise ``None`` (keep training).

When the run ends without a criterion firing, its reason is ``"max_steps"`` (``config.max_steps`` was the
cap) or ``"epochs"``.  The final weights are those of the step the run stopped at, or with ``restore_best`` those
of the best evaluation (``result.json``'s ``weights_step``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STOP_REASONS = ("max_steps", "epochs", "target_reached", "no_improvement")


@dataclass
class EarlyStopping:
    target_loss: float | None
    patience: int | None
    min_delta: float = 0.0
    best_loss: float | None = None
    best_step: int | None = None
    last_loss: float | None = None
    evaluations_without_improvement: int = 0

    def update(self, step: int, loss: float) -> str | None:
        """Record one evaluation; the stop reason if a criterion fires, else ``None`` (module docstring)."""
        self.last_loss = loss
        if self.best_loss is None or loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step, self.evaluations_without_improvement = loss, step, 0
        else:
            self.evaluations_without_improvement += 1
        if self.target_loss is not None and loss <= self.target_loss:
            return "target_reached"
        if self.patience is not None and self.evaluations_without_improvement >= self.patience:
            return "no_improvement"
        return None

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
