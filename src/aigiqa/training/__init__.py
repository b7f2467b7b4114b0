"""Training of learned metrics: one protocol (fine-tune, select on validation, test) for all.

``train(metric, database, TrainConfig(...))`` or ``metric.fit(database, split, ...)``; the command
line is ``aigiqa train`` (:mod:`aigiqa.training.cli`). torch is imported when a run starts.
"""

from aigiqa.training.loop import TrainConfig, TrainResult, bench_spec, predict, train
from aigiqa.training.losses import LOSSES, make_loss

__all__ = ["LOSSES", "TrainConfig", "TrainResult", "bench_spec", "make_loss", "predict", "train"]
