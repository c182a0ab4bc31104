"""Execution engines: where the partitions of a partitioned gate scan run.

The gate's domain logic (detectors, featurizers, the scan's stages) never imports an engine's
library; it hands the engine a function and the partitions, and the engine runs them, in the spirit of
httpx's transports. Two engines share one small interface:

* ``LocalEngine``: in this process, one partition after another (memory holds one partition at a time).
* ``DaskEngine``: on a ``dask.distributed`` cluster. The fitted state is sent once, as one task's
  result that every worker fetches once (and that Dask recomputes if the worker holding it dies),
  partitions are scored on every worker, results come back in partition order. A worker that dies is
  replaced by Dask and its tasks run again elsewhere; a partition that keeps killing workers, or that
  raises, fails the scan with an ``EngineError`` naming it.

``dask`` and ``distributed`` are an optional extra: ``pip install 'dataward[dask]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from dataward.domain.errors import InputError


class EngineError(InputError):
    """A partition could not be processed (it failed to read, it raised, or it killed its workers)."""


@runtime_checkable
class Engine(Protocol):
    """Runs one function over many partitions, with one shared (broadcast) argument."""

    name: str

    @property
    def workers(self) -> int:
        """How many partitions can run at the same time."""

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: Any, *, describe: Callable[[Any], str]) -> list:
        """``[fn(item, shared) for item in items]``, in order; raises ``EngineError`` naming the failed item."""

    def each(
        self, fn: Callable[..., Any], items: Sequence[Any], shared: Any, *, describe: Callable[[Any], str]
    ) -> Iterator[Any]:
        """``map``'s results one at a time, in order, each released by the engine once handed over (so the
        caller can spill them instead of holding every partition's result at once)."""

    def close(self) -> None:
        """Release what the engine opened itself (never a client the caller passed in)."""


class LocalEngine:
    """In this process, one partition after another."""

    name = "local"

    @property
    def workers(self) -> int:
        return 1

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: Any, *, describe: Callable[[Any], str]) -> list:
        return list(self.each(fn, items, shared, describe=describe))

    def each(
        self, fn: Callable[..., Any], items: Sequence[Any], shared: Any, *, describe: Callable[[Any], str]
    ) -> Iterator[Any]:
        for item in items:
            try:
                result = fn(item, shared)
            except InputError:
                raise
            except Exception as exc:
                raise EngineError(f"{describe(item)} failed: {type(exc).__name__}: {exc}") from exc
            yield result

    def close(self) -> None:
        return None


class DaskEngine:
    """On a ``dask.distributed`` cluster: a ``Client`` the caller owns, or one opened on ``scheduler``."""

    name = "dask"

    def __init__(self, client: Any = None, *, scheduler: str | None = None, timeout: float = 30.0) -> None:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise InputError("the Dask engine needs dask.distributed", hint="pip install 'dataward[dask]'") from exc
        if (client is None) == (scheduler is None):
            raise InputError("give the Dask engine either a client or a scheduler address, not both or neither")
        self._owned = client is None
        if client is None:
            try:
                client = Client(scheduler, timeout=timeout, set_as_default=False)
            except OSError as exc:
                raise EngineError(
                    f"could not connect to the Dask scheduler at {scheduler}: {exc}",
                    hint="start it with `dask scheduler` and workers with `dask worker SCHEDULER_ADDRESS`",
                ) from exc
        self.client = client

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: Any, *, describe: Callable[[Any], str]) -> list:
        return list(self.each(fn, items, shared, describe=describe))

    def each(
        self, fn: Callable[..., Any], items: Sequence[Any], shared: Any, *, describe: Callable[[Any], str]
    ) -> Iterator[Any]:
        from distributed import KilledWorker

        if not items:
            return
        # The fitted state travels once, as the result of a task: each worker fetches it once from a
        # peer, and, unlike scattered data, the scheduler can compute it again when its holder dies.
        state = self.client.submit(_keep, shared, pure=False)
        futures = self.client.map(fn, list(items), state=state, pure=False)
        try:
            for i, (item, future) in enumerate(zip(items, futures, strict=True)):
                try:
                    result = future.result()
                except KilledWorker as exc:
                    raise EngineError(
                        f"{describe(item)} failed: the workers that ran it died ({exc}); the scan stored nothing",
                        hint="a partition that kills its worker is usually too large for a worker's memory",
                    ) from exc
                except InputError:
                    raise
                except Exception as exc:
                    raise EngineError(f"{describe(item)} failed: {type(exc).__name__}: {exc}") from exc
                # Handed over: the cluster need not keep it (partitions arrive in order, one at a time).
                future.release()
                futures[i] = None
                yield result
        finally:
            self.client.cancel([f for f in [*futures, state] if f is not None], force=True)

    def close(self) -> None:
        if self._owned:
            self.client.close()


CONNECT_TIMEOUT_ENV = "DATAWARD_SCHEDULER_TIMEOUT"
"""Seconds to wait for a Dask scheduler before the scan fails (default 30)."""


def _connect_timeout() -> float:
    raw = os.environ.get(CONNECT_TIMEOUT_ENV, "30")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise InputError(f"{CONNECT_TIMEOUT_ENV}={raw!r} is not a number of seconds between 0 and 3600")
    return seconds


def _keep(value: Any) -> Any:
    return value


def engine_for(engine: Engine | str | None = None, *, client: Any = None, scheduler: str | None = None) -> Engine:
    """The engine a scan runs on: an ``Engine``, ``"local"``, ``"dask"`` (with ``client`` or ``scheduler``),
    or the Dask engine whenever a ``client`` or ``scheduler`` is given."""
    if engine is not None and not isinstance(engine, str):
        if client is not None or scheduler is not None:
            raise InputError("give an engine, or a Dask client or scheduler, not both")
        return engine
    if engine in (None, "local") and client is None and scheduler is None:
        return LocalEngine()
    if engine in (None, "dask"):
        return DaskEngine(client, scheduler=scheduler, timeout=_connect_timeout())
    raise InputError(f"unknown engine {engine!r}", hint="engines: local, dask")
