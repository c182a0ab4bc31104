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

The Dask scheduler and its workers are inside the ward's trust boundary: they run the ward's code on
the contribution, and what they return is unpickled in the ward's process (whoever can reach the
scheduler can run code there and forge the workers' results). A scheduler opened from an address must
therefore be reached over ``tls://`` (mutual TLS, configured with Dask's ``distributed.comm.tls``
settings or a ``Security``), or over loopback; a plain ``tcp://`` address on another host is refused
unless the operator accepts the risk (``allow_insecure``, ``$DATAWARD_ALLOW_INSECURE_SCHEDULER``).

``dask`` and ``distributed`` are an optional extra: ``pip install 'dataward[dask]'``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

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
    """On a ``dask.distributed`` cluster: a ``Client`` the caller owns, or one opened on ``scheduler``.

    ``security`` (a ``distributed.Security``) is the TLS identity a client opened here presents; None
    takes Dask's configuration (``distributed.comm.tls.*``, e.g. ``$DASK_DISTRIBUTED__COMM__TLS__CA_FILE``).
    ``allow_insecure`` accepts a plain ``tcp://`` scheduler on another host (None: as
    ``$DATAWARD_ALLOW_INSECURE_SCHEDULER`` says); see ``check_scheduler_address``."""

    name = "dask"

    def __init__(
        self,
        client: Any = None,
        *,
        scheduler: str | None = None,
        timeout: float = 30.0,
        security: Any = None,
        allow_insecure: bool | None = None,
    ) -> None:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise InputError("the Dask engine needs dask.distributed", hint="pip install 'dataward[dask]'") from exc
        if (client is None) == (scheduler is None):
            raise InputError("give the Dask engine either a client or a scheduler address, not both or neither")
        allowed = insecure_scheduler_allowed() if allow_insecure is None else allow_insecure
        self._owned = client is None
        if client is None:
            assert scheduler is not None
            # Refused before any connection: the first result unpickled could already run code here.
            check_scheduler_address(scheduler, allow_insecure=allowed)
            security = _client_security(scheduler, security)
            try:
                client = Client(scheduler, timeout=timeout, set_as_default=False, security=security)
            except OSError as exc:
                raise EngineError(
                    f"could not connect to the Dask scheduler at {scheduler}: {exc}",
                    hint="start it with `dask scheduler` and workers with `dask worker SCHEDULER_ADDRESS`",
                ) from exc
        else:
            # A client the caller opened is checked too: the scan's results would come back over it.
            address = getattr(getattr(client, "scheduler", None), "address", None)
            if not isinstance(address, str):
                raise InputError(
                    "the Dask client has no scheduler address to check (not started, or not a distributed.Client)",
                    hint="give a started distributed.Client, or the scheduler's address",
                )
            check_scheduler_address(address, allow_insecure=allowed)
        self.client = client
        address = getattr(getattr(client, "scheduler", None), "address", None) or scheduler or ""
        # A plain transport accepted because the ward dials it on loopback: the cluster behind it must be on
        # loopback too (a scheduler listening on every interface lets workers join from anywhere).
        scheme, _ = _scheme_and_host(str(address))
        self._loopback_only = not allowed and scheme not in SECURE_SCHEMES | IN_PROCESS_SCHEMES
        self._check_members()

    def _check_members(self) -> None:
        """Refuse (``InputError``) a cluster reached on plain loopback that holds a worker elsewhere."""
        if not self._loopback_only:
            return
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        away = sorted(w for w in workers if not _is_loopback(_scheme_and_host(str(w))[1]))
        if away:
            raise InputError(
                f"refusing the Dask cluster: the scheduler was reached on loopback without TLS, and workers "
                f"joined it from other hosts ({', '.join(away[:3])}): their results would be unpickled here",
                hint="run the scheduler and workers with TLS (docs/operations.md), or accept the risk with "
                f"--allow-insecure-scheduler or {INSECURE_SCHEDULER_ENV}=1",
            )

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
        self._check_members()  # a worker may have joined since the engine was made
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


INSECURE_SCHEDULER_ENV = "DATAWARD_ALLOW_INSECURE_SCHEDULER"
"""Set to 1 to accept a plain ``tcp://`` Dask scheduler on another host (see ``check_scheduler_address``)."""

SECURE_SCHEMES = frozenset({"tls", "wss"})
"""Dask transports that authenticate both ends (with a ``Security`` holding a CA and a certificate)."""

IN_PROCESS_SCHEMES = frozenset({"inproc"})
"""Dask transports that never leave the process (``LocalCluster(processes=False)``)."""

TLS_SETTINGS = (
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and "
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY (Dask's distributed.comm.tls.ca-file, .client.cert, .client.key)"
)


def insecure_scheduler_allowed() -> bool:
    """Whether ``$DATAWARD_ALLOW_INSECURE_SCHEDULER`` accepts a plain ``tcp://`` scheduler on another host."""
    raw = os.environ.get(INSECURE_SCHEDULER_ENV, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise InputError(f"{INSECURE_SCHEDULER_ENV}={raw!r} is not 1 or 0")


def _scheme_and_host(address: str) -> tuple[str, str]:
    """A Dask address's transport and host (``host:port`` alone is Dask's default, ``tcp``)."""
    scheme, sep, _ = address.partition("://")
    if not sep:
        scheme, address = "tcp", f"tcp://{address}"
    try:
        host = urlsplit(address).hostname or ""
    except ValueError as exc:
        raise InputError(f"{address!r} is not a Dask scheduler address: {exc}") from None
    return scheme.lower(), host


def _is_loopback(host: str) -> bool:
    # Names are not resolved: what a name resolves to is not the ward's to vouch for.
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_scheduler_address(address: str, *, allow_insecure: bool = False) -> None:
    """Refuse (``InputError``) a scheduler reached without authentication from another host.

    Whoever can reach the scheduler can run code on its workers and, through the pickled results the
    ward unpickles, in the ward's own process, and can forge the gate's verdict. ``tls://`` (mutual TLS)
    and ``inproc://`` are accepted, and so is any transport on a loopback address; anything else (a
    ``tcp://`` address on another host) only with ``allow_insecure``."""
    scheme, host = _scheme_and_host(address)
    if scheme in SECURE_SCHEMES or scheme in IN_PROCESS_SCHEMES or _is_loopback(host) or allow_insecure:
        return
    raise InputError(
        f"refusing the Dask scheduler at {address}: {scheme}:// neither encrypts nor authenticates, and whoever "
        "can reach the scheduler can forge the gate's verdict and run code in this process (the workers' "
        "results are unpickled here)",
        hint="run the scheduler and workers with TLS and give a tls:// address (docs/operations.md), or accept "
        f"the risk on a network only the ward reaches: --allow-insecure-scheduler or {INSECURE_SCHEDULER_ENV}=1",
    )


def _client_security(address: str, security: Any) -> Any:
    """The ``Security`` a client opened on ``address`` presents: ``security`` when given, else None
    (Dask's configuration or its security loader). A ``tls://`` address without a CA and a client
    certificate is refused here, readably, rather than failing deep in the TLS handshake."""
    scheme, _ = _scheme_and_host(address)
    if security is not None or scheme not in SECURE_SCHEMES:
        return security
    import dask
    from distributed import Security

    if dask.config.get("distributed.client.security-loader", None):
        return None
    configured = Security()
    if not (configured.tls_ca_file and configured.tls_client_cert):
        raise InputError(
            f"the Dask scheduler at {address} needs TLS, and no CA file and client certificate are configured",
            hint=f"set {TLS_SETTINGS}",
        )
    return None


def _keep(value: Any) -> Any:
    return value


def engine_for(
    engine: Engine | str | None = None,
    *,
    client: Any = None,
    scheduler: str | None = None,
    security: Any = None,
    allow_insecure_scheduler: bool | None = None,
) -> Engine:
    """The engine a scan runs on: an ``Engine``, ``"local"``, ``"dask"`` (with ``client`` or ``scheduler``),
    or the Dask engine whenever a ``client`` or ``scheduler`` is given. ``security`` and
    ``allow_insecure_scheduler`` are the Dask engine's (``DaskEngine``)."""
    if engine is not None and not isinstance(engine, str):
        if client is not None or scheduler is not None:
            raise InputError("give an engine, or a Dask client or scheduler, not both")
        return engine
    if engine in (None, "local") and client is None and scheduler is None:
        return LocalEngine()
    if engine in (None, "dask"):
        return DaskEngine(
            client,
            scheduler=scheduler,
            timeout=_connect_timeout(),
            security=security,
            allow_insecure=allow_insecure_scheduler,
        )
    raise InputError(f"unknown engine {engine!r}", hint="engines: local, dask")
