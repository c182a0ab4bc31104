"""Training runs: what trained a model, on which data, with which parameters, and the model itself.

>>> import dataward
>>> with dataward.training_run("reviews@training", model="sentiment", params={"C": 1.0}) as run:
...     df = run.load()                          # or dataward.load("reviews@training"): both are recorded
...     model = fit(df)
...     save_as_onnx(model, "model.onnx")
...     run.log_artifact("model.onnx")
>>> run.model_version["ref"]
'sentiment@v1'

On entry the run is started in the ward with the code identity of the calling script (git commit and
dirty flag, or the script's hash: ``dataward.provenance.code.code_identity``) and the parameters; every
version read through ``dataward.load`` / ``dataward.stream`` inside the block is recorded in it; on a clean
exit the artifact is hashed (OpenSSF model-signing), scanned, stored, signed and registered as the
model's next version. An exception inside the block records the run as failed and is re-raised.
"""

from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dataward.domain.errors import DatawardError, InputError
from dataward.domain.limits import text_keyed

if TYPE_CHECKING:
    from dataward.api import WardAPI

_current: ContextVar[TrainingRun | None] = ContextVar("dataward_training_run", default=None)


def current_run() -> TrainingRun | None:
    """The training run whose ``with`` block is running, if any."""
    return _current.get()


class TrainingRun:
    """One training run (see the module docstring)."""

    def __init__(
        self,
        data: str | list[str] | None,
        *,
        model: str,
        params: dict[str, Any] | None = None,
        ward: WardAPI | None = None,
        script: str | os.PathLike[str] | None = None,
    ) -> None:
        self.refs = [data] if isinstance(data, str) else list(data or [])
        self.model = model
        # Checked here too, not only by the ward: a client's JSON would turn {1: 2} into {"1": 2} on the way.
        self.params = text_keyed(params, "training parameters")
        self.metrics: dict[str, Any] = {}
        self._ward = ward
        self.script = script
        self.run_id: str | None = None
        self.read: list[str] = []
        self.artifact: Path | None = None
        self.model_version: dict[str, Any] | None = None
        self._token: Any = None

    @property
    def ward(self) -> WardAPI:
        if self._ward is None:
            import dataward

            self._ward = dataward.open()
        return self._ward

    def __enter__(self) -> TrainingRun:
        from dataward.provenance.code import code_identity

        code = code_identity(self.script)
        self.run_id = str(self.ward.start_training_run(self.model, params=self.params, code=code)["run"])
        self._token = _current.set(self)
        return self

    def load(self, ref: str | None = None, **kwargs: Any) -> Any:
        """``dataward.load`` of ``ref`` (default: the run's first dataset) against the run's ward."""
        from dataward.loader import load

        ref = ref or self._default_ref()
        return load(ref, ward=self.ward, **kwargs)

    def stream(self, ref: str | None = None, **kwargs: Any) -> Any:
        """``dataward.stream`` of ``ref`` (default: the run's first dataset) against the run's ward."""
        from dataward.loader import stream

        ref = ref or self._default_ref()
        return stream(ref, ward=self.ward, **kwargs)

    def _default_ref(self) -> str:
        if not self.refs:
            raise InputError("this training run names no dataset", hint="pass one: run.load('DATASET@training')")
        return self.refs[0]

    def note_read(self, info: dict[str, Any]) -> None:
        """Record in the ward that this run read the version ``info`` describes (the loader calls it)."""
        if self.run_id is None:
            return
        answer = self.ward.record_training_read(self.run_id, info["dataset"], f"v{info['number']}")
        self.read = list(answer["read"])

    def log_params(self, **params: Any) -> None:
        """Add parameters (recorded with the model version)."""
        self.params.update(params)

    def log_metrics(self, **metrics: Any) -> None:
        """Add metrics (recorded with the model version)."""
        self.metrics.update(metrics)

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """The model file or folder to register when the block ends."""
        self.artifact = Path(path)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _current.reset(self._token)
        assert self.run_id is not None
        if exc is not None:
            self.ward.fail_training_run(self.run_id, reason=f"{exc_type.__name__ if exc_type else 'error'}: {exc}")
            return
        if self.artifact is None:
            self.ward.fail_training_run(self.run_id, reason="the run ended without an artifact")
            raise InputError(
                f"training run {self.run_id} ended without an artifact", hint="call run.log_artifact(PATH) in the block"
            )
        try:
            self.model_version = self.ward.finish_training_run(
                self.run_id, self.artifact, params=self.params, metrics=self.metrics
            )
        except DatawardError as refused:
            # The block is over: a run whose model was refused (its data quarantined meanwhile, say)
            # ends as failed, with the reason, rather than staying "running" with nothing to finish it.
            with contextlib.suppress(DatawardError):
                self.ward.fail_training_run(self.run_id, reason=f"refused at finish: {refused.message}")
            raise


def training_run(
    data: str | list[str] | None = None,
    *,
    model: str,
    params: dict[str, Any] | None = None,
    ward: WardAPI | None = None,
    script: str | os.PathLike[str] | None = None,
) -> TrainingRun:
    """A training run of ``model`` on ``data`` (``DATASET@training`` or a list), used as a context manager."""
    return TrainingRun(data, model=model, params=params, ward=ward, script=script)


__all__ = ["TrainingRun", "current_run", "training_run"]
