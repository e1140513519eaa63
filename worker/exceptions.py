"""Every error the worker raises, in one tree under StreamrecError."""

from __future__ import annotations

from connector.exceptions import ModelNotFoundError, StreamrecError

__all__ = ["ModelFitError", "ModelNotFoundError", "NotEnoughDataError", "WorkerError"]


class WorkerError(StreamrecError):
    """Base of the worker's errors."""


class NotEnoughDataError(WorkerError, ValueError):
    """The training data is below Personalize's minimum; the message gives the counts."""


class ModelFitError(WorkerError, ArithmeticError):
    """Training diverged (loss not finite) and could not recover."""
