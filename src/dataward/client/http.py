"""``HTTPWard``: the ``WardAPI`` of a ward served by ``dataward serve``, over HTTP(S) with httpx.

It returns the documents the embedded ward returns and raises the same exceptions (rebuilt from the
server's JSON error bodies, with the same exit codes), so the CLI behaves identically against a
folder and against a URL. Local files are uploaded (contribution data, ids to remove) or written
(exports, HTML reports) on this side. Long operations are jobs the client polls until they end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from dataward.access.keys import without_secret
from dataward.client.bounded import (
    ANSWER_ENV,
    answer_hint,
    answer_limit,
    download_hint,
    download_limit,
    read_capped,
    refuse_declared,
    too_large,
    write_capped,
)
from dataward.client.plain_http import check_cleartext, check_no_userinfo, uses_environment_proxies
from dataward.client.tls import verifying_context
from dataward.domain.errors import AuthenticationError, DatawardError, InputError, missing_file
from dataward.domain.transport_errors import ServerUnreachable
from dataward.io.staged import staged_file
from dataward.store.tables import read_parquet_bytes

if TYPE_CHECKING:
    import pyarrow as pa

    from dataward.ledger.checkpoint import Checkpoint
    from dataward.service.audit import VerifyReport
    from dataward.service.datasets import DatasetHandle

API = "/api/v1"
CHUNK = 1 << 20


def _error_classes() -> dict[str, type[DatawardError]]:
    """Every ``DatawardError`` subclass by code (the most general class of a shared code wins)."""
    from dataward.domain import transport_errors  # noqa: F401  (registers its subclasses)

    found: dict[str, type[DatawardError]] = {}
    queue: list[type[DatawardError]] = [DatawardError]
    while queue:
        cls = queue.pop(0)
        found.setdefault(cls.code, cls)
        queue.extend(cls.__subclasses__())
    return found


_NOT_DATAWARD = "check DATAWARD_URL: it must point at `dataward serve` (or the proxy in front of it)"


_UNREADABLE = object()
"""What ``parsed_json`` returns for text that is not JSON (``None`` is JSON's ``null``)."""


def parsed_json(text: str | bytes) -> Any:
    """The JSON ``text`` holds, or ``_UNREADABLE`` when it holds none this client can read.

    What a server sends is parsed as untrusted input: a body nested deeper than Python's recursion
    limit (``[[[[...``, a few hundred kilobytes) raises ``RecursionError``, not ``ValueError``, and
    ended the command with a traceback."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _UNREADABLE


def _document_header(response: httpx.Response) -> dict[str, Any]:
    """The ``X-Dataward-Document`` header of a download: a JSON object, or ``ServerUnreachable``."""
    document = parsed_json(response.headers.get("X-Dataward-Document", "{}"))
    if not isinstance(document, dict):
        raise ServerUnreachable("the server's answer carries no readable document header", hint=_NOT_DATAWARD)
    return document


def _exit_code(value: Any, default: int) -> int:
    """The exit code an error document gives, when it is one an error may have (1 to 125); else
    ``default``: an error a server reported with exit code 0 let a failed command exit as a success."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 125:
        return value
    return default


def error_from_body(body: Any, status: int) -> DatawardError:
    """The exception an error document describes, with the exit code the server gave it."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return ServerUnreachable(
            f"the server answered HTTP {status} without a dataward error document", hint=_NOT_DATAWARD
        )
    code = str(body.get("error") or "error")
    cls = _error_classes().get(code, DatawardError)
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    hint = body.get("hint")
    # Built without the subclass's own __init__ (some take other arguments); the message, hint and
    # details are the server's. A code this client does not know keeps the code and exit code sent.
    # The details are set as given, not passed as keywords: a detail named "hint" or "message" made
    # the constructor raise TypeError (a traceback instead of the error).
    exc = cls.__new__(cls)
    DatawardError.__init__(exc, body["message"], hint=hint if isinstance(hint, str) else None)
    exc.details = {str(k): v for k, v in details.items()}
    exc.code = code
    exc.exit_code = _exit_code(body.get("exit_code"), cls.exit_code)
    exc.http_status = status
    return exc


def _job_document(answer: Any) -> dict[str, Any]:
    """A job as the server describes it (an object with an id and a status), or ``ServerUnreachable``."""
    if not isinstance(answer, dict) or not isinstance(answer.get("status"), str) or "id" not in answer:
        raise ServerUnreachable("the server's answer is not a job", hint=_NOT_DATAWARD)
    return answer


class HTTPWard:
    """A served ward, acting as the principal of ``key``. Implements ``dataward.api.WardAPI``.

    A plain ``http://`` URL is refused unless its host is loopback or ``allow_insecure_http`` (default:
    ``$DATAWARD_ALLOW_INSECURE_HTTP``) allows it: the key would cross the network in cleartext. A plain
    ``http://`` URL is reached directly, never through a proxy from the environment, and a URL with a user
    name or password in it is refused (``dataward.client.plain_http``).

    An answer is read within ``max_answer_bytes`` (a JSON document; ``$DATAWARD_MAX_ANSWER_MB``, else
    256 MiB) or ``max_download_bytes`` (a download; ``$DATAWARD_MAX_DOWNLOAD_MB``, else 16 GiB), and a
    model's files within the sizes its catalog lists (``dataward.client.bounded``)."""

    def __init__(
        self,
        url: str,
        *,
        key: str | None = None,
        timeout: float = 60.0,
        poll_interval: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        allow_insecure_http: bool | None = None,
        max_answer_bytes: int | None = None,
        max_download_bytes: int | None = None,
    ) -> None:
        key = key or os.environ.get("DATAWARD_KEY")
        if not key:
            raise AuthenticationError("no API key given", hint="set DATAWARD_KEY to your dw_... key")
        # Before any request: a key never goes in cleartext to another machine unless that is asked for
        # (``allow_insecure_http``, else $DATAWARD_ALLOW_INSECURE_HTTP; see dataward.client.plain_http),
        # and never to a proxy on the way: a plain http:// URL ignores HTTP_PROXY and ALL_PROXY.
        check_no_userinfo(url)
        check_cleartext(url, allow_insecure_http=allow_insecure_http)
        self.url = url.rstrip("/")
        self.poll_interval = poll_interval
        # Every answer is read within a cap (dataward.client.bounded): a hostile or broken server's
        # endless answer filled the user's memory, or disk, before.
        self.max_answer_bytes = answer_limit(max_answer_bytes)
        self.max_download_bytes = download_limit(max_download_bytes)
        trusts_environment = uses_environment_proxies(self.url)
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key.strip()}", "User-Agent": "dataward-client"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,  # a redirect could carry the Authorization header elsewhere
            trust_env=trusts_environment,
            verify=verifying_context(trusts_environment),
        )
        self._ward_id: str | None = None

    # --- plumbing --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HTTPWard:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def ward_id(self) -> str:
        """The served ward's id (asked once)."""
        if self._ward_id is None:
            self._ward_id = str(self.whoami()["ward"])
        return self._ward_id

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(
            f"cannot reach the dataward server at {self.url}: {type(exc).__name__}",
            hint="check DATAWARD_URL and that `dataward serve` is running",
        )

    def _refused(self, response: httpx.Response) -> DatawardError:
        """The error a streamed answer of status 400 or more reports, its document read within the cap."""
        body = read_capped(response, self.max_answer_bytes, "the server's error document", answer_hint())
        return error_from_body(parsed_json(body), response.status_code)

    def _request(self, method: str, path: str, *, data_answer: bool = False, **kwargs: Any) -> tuple[Any, bytes]:
        """Send a request; the answer's ``X-Dataward-Document`` header (parsed when ``data_answer``) and its
        body, read as it arrives within ``max_answer_bytes`` (``max_download_bytes`` for a data answer)."""
        try:
            with self._http.stream(method, API + path, **kwargs) as response:
                if response.status_code >= 400:
                    raise self._refused(response)
                if data_answer:
                    info = _document_header(response)
                    return info, read_capped(response, self.max_download_bytes, "the server's answer", download_hint())
                return None, read_capped(response, self.max_answer_bytes, "the server's answer", answer_hint())
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        _, body = self._request(method, path, **kwargs)
        answer = parsed_json(body)
        if answer is _UNREADABLE:
            raise ServerUnreachable("the server's answer is not JSON", hint="check DATAWARD_URL")
        return answer

    def _get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, json=body or {})

    def _job(self, path: str, body: dict[str, Any], progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Start a job and wait for it; its result, or its error raised."""
        job = _job_document(self._post(path, body))
        shown = ""
        delay = self.poll_interval / 4
        while job["status"] in ("queued", "running"):
            time.sleep(delay)
            delay = min(self.poll_interval, delay * 2)
            job = _job_document(self._get(f"/jobs/{self._ref(str(job['id']))}"))
            if progress is not None and job.get("progress") and job["progress"] != shown:
                shown = str(job["progress"])
                progress(shown)
        if job["status"] != "succeeded":
            raise error_from_body(job.get("error"), 200)
        return job

    def _upload(self, path: Path) -> str:
        """Stream a local file to the server; its upload id."""
        if path.is_dir():
            raise InputError(
                f"{path} is a folder: an image folder cannot be uploaded to a server yet",
                hint="convert it to Parquet or JSON Lines with the image bytes in a column",
            )

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk

        try:
            size = path.stat().st_size
        except FileNotFoundError:
            # Worded as the embedded ward's reader words it, so that both modes read the same.
            raise missing_file(path) from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        info = self._call(
            "POST",
            "/uploads",
            params={"filename": str(path)},
            content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        return str(info["upload"])

    @staticmethod
    def _ref(ref: str) -> str:
        return quote(ref, safe="")

    # --- who -------------------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        """The acting principal, the key in use and its grants."""
        return self._get("/whoami")

    # --- principals, keys, grants, policies ---------------------------------------------------
    def create_principal(
        self, name: str, *, kind: str = "human", owner: str | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Register a human or a service principal."""
        return self._post("/principals", {"name": name, "kind": kind, "owner": owner, "description": description})

    def principals(self) -> list[dict[str, Any]]:
        """Every principal with its kind, owner and status."""
        return self._get("/principals")

    def disable_principal(self, name: str, *, transfer_to: str | None = None, reason: str = "") -> dict[str, Any]:
        """Offboard a human."""
        return self._post(f"/principals/{self._ref(name)}/disable", {"transfer_to": transfer_to, "reason": reason})

    def transfer_principal(self, service: str, new_owner: str) -> dict[str, Any]:
        """Hand a service principal to another human."""
        return self._post(f"/principals/{self._ref(service)}/transfer", {"to": new_owner})

    def enable_principal(self, name: str, *, reason: str = "") -> dict[str, Any]:
        """Let a disabled human or a suspended service principal act again (admin only)."""
        return self._post(f"/principals/{self._ref(name)}/enable", {"reason": reason})

    def issue_key(
        self,
        principal: str | None = None,
        *,
        ttl_days: int | None = None,
        scopes: list[str] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Issue an API key (its plaintext is in the answer, once)."""
        body = {"principal": principal, "ttl_days": ttl_days, "scopes": scopes, "description": description}
        return self._post("/keys", body)

    def rotate_key(self, key: str, *, overlap_hours: float = 24.0) -> dict[str, Any]:
        """Issue a key's successor."""
        return self._post(f"/keys/{self._ref(without_secret(key))}/rotate", {"overlap_hours": overlap_hours})

    def revoke_key(self, key: str, *, reason: str = "") -> dict[str, Any]:
        """Revoke a key and every key minted through it."""
        return self._post(f"/keys/{self._ref(without_secret(key))}/revoke", {"reason": reason})

    def keys(self, principal: str | None = None) -> list[dict[str, Any]]:
        """API keys (never their secrets)."""
        return self._get("/keys", principal=principal)

    def grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Give a role."""
        return self._post("/grants", {"principal": principal, "role": role, "scope": scope})

    def revoke_grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Take a role away."""
        return self._post("/grants/revoke", {"principal": principal, "role": role, "scope": scope})

    def grants(self, principal: str | None = None) -> list[dict[str, Any]]:
        """Active grants."""
        return self._get("/grants", principal=principal)

    def set_policy(self, dataset: str, policy_yaml: str) -> dict[str, Any]:
        """Replace a dataset's policy."""
        return self._call("PUT", f"/datasets/{self._ref(dataset)}/policy", json={"policy_yaml": policy_yaml})

    def policy(self, dataset: str) -> dict[str, Any]:
        """A dataset's effective policy."""
        return self._get(f"/datasets/{self._ref(dataset)}/policy")

    def access_review(self, *, unused_days: int | None = None, recent_days: int = 30) -> list[dict[str, Any]]:
        """What an auditor should look at."""
        return self._get("/access-review", unused_days=unused_days, recent_days=recent_days)

    # --- datasets and contributions -------------------------------------------------------------
    def create_dataset(
        self,
        name: str,
        schema: Any,
        *,
        description: str = "",
        owner: str | None = None,
        validation_for: str | None = None,
    ) -> dict[str, Any]:
        """Create a dataset or a clean validation set."""
        schema_doc = schema.to_dict() if hasattr(schema, "to_dict") else schema
        body = {
            "name": name,
            "schema": schema_doc,
            "description": description,
            "owner": owner,
            "validation_for": validation_for,
        }
        return self._post("/datasets", body)

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets the caller may read, with their latest and training versions."""
        return self._get("/datasets")

    def dataset_info(self, name: str) -> dict[str, Any]:
        """One dataset as ``datasets`` lists it; needs ``dataset.read`` on it."""
        info = dict(self._get(f"/datasets/{self._ref(name)}"))
        # The route adds the effective policy for other callers; the embedded ward answers without it.
        info.pop("policy", None)
        return info

    def dataset(self, name: str) -> DatasetHandle:
        """A handle on one dataset for the Python API (records are fetched when first asked for)."""
        from dataward.service.datasets import DatasetHandle

        return DatasetHandle(self, name)  # type: ignore[arg-type]

    def read_version(self, dataset: str, ref: str | None = None) -> tuple[dict[str, Any], pa.Table]:
        """A version's document and canonical records, fetched as Parquet."""

        params = {"version": ref} if ref is not None else {}
        info, body = self._request("GET", f"/datasets/{self._ref(dataset)}/records", params=params, data_answer=True)
        return info, read_parquet_bytes(body)

    def load_version(
        self, dataset: str, ref: str | None = None, *, stage: str | None = "training"
    ) -> tuple[dict[str, Any], pa.Table]:
        """A version's records for training (the server's guarded loader), fetched as Parquet."""

        path = f"/datasets/{self._ref(dataset)}/load"
        info, body = self._request("GET", path, params=_load_params(ref, stage), data_answer=True)
        return info, read_parquet_bytes(body)

    def stream_version(
        self, dataset: str, ref: str | None = None, *, stage: str | None = "training", batch_rows: int = 10_000
    ) -> tuple[dict[str, Any], Iterator[pa.RecordBatch]]:
        """As ``load_version``, streamed: the server sends an Arrow IPC stream, a batch as it loads and checks
        it, and each batch is yielded as it arrives. Neither side holds the whole version. A stream the
        server ends with an error raises that error; one cut off before its end marker raises
        ``ServerUnreachable`` rather than pass for the whole version. So does a stream longer than
        ``max_download_bytes`` in all, or with one message (a batch) longer than ``max_answer_bytes``: a
        batch is held in memory whole, and the answer cap is what the client holds of any one answer
        (``dataward.client.bounded``); the stream is closed and nothing more of it is read."""
        from dataward.service.batch_rows import check_batch_rows

        check_batch_rows(batch_rows)
        params = {**_load_params(ref, stage), "batch_rows": str(batch_rows)}
        opened = self._http.stream("GET", API + f"/datasets/{self._ref(dataset)}/stream", params=params)
        try:
            response = opened.__enter__()
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach the dataward server at {self.url}: {type(exc).__name__}",
                hint="check DATAWARD_URL and that `dataward serve` is running",
            ) from None
        if response.status_code >= 400:
            try:
                refusal = self._refused(response)
            except httpx.HTTPError:
                refusal = error_from_body(None, response.status_code)
            finally:
                opened.__exit__(None, None, None)
            raise refusal
        what = f"{dataset}@{ref or stage or 'latest'}"
        try:
            info = _document_header(response)
            refuse_declared(response, self.max_download_bytes, f"the stream of {what}", download_hint())
        except ServerUnreachable:
            opened.__exit__(None, None, None)
            raise
        body = _ResponseFile(
            response,
            what=f"the stream of {what}",
            total=self.max_download_bytes,
            per_read=min(self.max_answer_bytes, self.max_download_bytes),
            batch_rows=batch_rows,
        )
        return info, _arrow_batches(body, opened, what, self.url)

    def contribute(
        self,
        dataset: str,
        data: str | Path | Any | None = None,
        *,
        source: str,
        fetched_at: datetime | None = None,
        licence: str | None = None,
        removes: str | Path | list[str] | None = None,
        message: str = "",
        format: str | None = None,
        gate: bool = True,
        progress: Callable[[str], None] | None = None,
        limits: Any = None,
    ) -> dict[str, Any]:
        """Upload a local file's records (and/or ids to remove), submit them and run the gate."""
        if not source:
            raise InputError("a contribution needs a declared source", hint="pass --source URI")
        if data is None and removes is None:
            raise InputError("a contribution must add records, remove records, or both")
        frame_file = None
        if data is not None and not isinstance(data, str | Path):
            data = frame_file = _frame_to_parquet(data)
        try:
            return self._submit(
                dataset, data, source, fetched_at, licence, removes, message, format, gate, progress, limits
            )
        finally:
            if frame_file is not None:
                frame_file.unlink(missing_ok=True)

    def _submit(
        self,
        dataset: str,
        data: str | Path | None,
        source: str,
        fetched_at: datetime | None,
        licence: str | None,
        removes: str | Path | list[str] | None,
        message: str,
        format: str | None,
        gate: bool,
        progress: Callable[[str], None] | None,
        limits: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "source": source,
            "fetched_at": fetched_at.isoformat() if fetched_at else None,
            "licence": licence,
            "message": message,
            "format": format,
            "gate": gate,
            "limits": _limits_doc(limits),
        }
        if progress is not None and data is not None:
            progress(f"uploading {data}")
        if data is not None:
            body["upload"] = self._upload(Path(data))
        if isinstance(removes, list):
            body["removes"] = removes
        elif removes is not None:
            body["removes_upload"] = self._upload(Path(removes))
        job = self._job(f"/datasets/{self._ref(dataset)}/contributions", body, progress)
        return job["result"]

    def contribution(self, ref: str) -> dict[str, Any]:
        """One contribution with its source's details."""
        return self._get(f"/contributions/{self._ref(ref)}")

    def contributions(self, dataset: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """A dataset's contributions."""
        return self._get(f"/datasets/{self._ref(dataset)}/contributions", status=status)

    def withdraw(self, contribution: str, *, reason: str = "") -> dict[str, Any]:
        """Withdraw your own contribution."""
        return self._post(f"/contributions/{self._ref(contribution)}/withdraw", {"reason": reason})

    def approve(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Approve a contribution."""
        return self._post(f"/contributions/{self._ref(contribution)}/approve", {"reason": reason})

    def reject(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Reject a contribution."""
        return self._post(f"/contributions/{self._ref(contribution)}/reject", {"reason": reason})

    def merge(self, contribution_ref: str, *, message: str = "") -> dict[str, Any]:
        """Merge a contribution into a new version."""
        return self._post(f"/contributions/{self._ref(contribution_ref)}/merge", {"message": message})

    # --- versions -------------------------------------------------------------------------------
    def versions(self, dataset: str) -> list[dict[str, Any]]:
        """A dataset's versions."""
        return self._get(f"/datasets/{self._ref(dataset)}/versions")

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Records added and removed between two versions."""
        return self._get("/diff", a=a, b=b)

    def export(self, ref: str, path: str | Path, *, format: str = "parquet") -> dict[str, Any]:
        """Download a version's records into a local file (written whole, or not at all)."""
        from dataward.io.writers import check_destination

        # As an embedded ward's export: a missing folder is refused, not created, before the download.
        target = check_destination(path, "export")
        try:
            with self._http.stream("GET", f"{API}/versions/{self._ref(ref)}/export", params={"format": format}) as resp:
                if resp.status_code >= 400:
                    raise self._refused(resp)
                info = _document_header(resp)
                # Under a random name made exclusively: a guessable one, planted as a link in a shared
                # folder, had the download written through it into another file (dataward.io.staged).
                # Within the download cap: past it the temporary file is removed and nothing is written.
                with staged_file(target) as fh:
                    write_capped(resp, fh, self.max_download_bytes, f"the export of {ref}", download_hint())
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
        return {**info, "path": str(path)}

    def promote(
        self, ref: str, *, stage: str = "training", reason: str = "", accept_shrink: bool = False
    ) -> dict[str, Any]:
        """Promote a version to training, or retire it."""
        body = {"stage": stage, "reason": reason, **({"accept_shrink": True} if accept_shrink else {})}
        return self._post(f"/versions/{self._ref(ref)}/promote", body)

    # --- gates and review -----------------------------------------------------------------------
    def run_gate(self, contribution_ref: str, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Run the dataset's gate on a contribution (a job on the server, whose steps ``progress`` is told)."""
        return self._job(f"/contributions/{self._ref(contribution_ref)}/gate", {}, progress)["result"]

    def gate_report(self, contribution_ref: str) -> dict[str, Any]:
        """The latest stored gate report of a contribution."""
        return self._get(f"/contributions/{self._ref(contribution_ref)}/gate")

    def override_block(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Request or confirm lifting a gate's block."""
        return self._post(f"/contributions/{self._ref(contribution)}/override", {"reason": reason})

    def selftest(self, dataset: str, contribution_ref: str | None = None, *, seed: int = 0) -> dict[str, Any]:
        """Plant known poisons and report what the gate catches (a job on the server)."""
        body = {"contribution": contribution_ref, "seed": seed}
        return self._job(f"/datasets/{self._ref(dataset)}/selftest", body)["result"]

    def review_list(
        self, dataset: str | None = None, *, status: str = "pending", contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Quarantined records."""
        return self._get("/review", dataset=dataset, status=status, contribution=contribution)

    def review_show(self, item: str) -> dict[str, Any]:
        """One quarantined record with the gate's evidence."""
        return self._get(f"/review/{self._ref(item)}")

    def review_decide(
        self, items: list[str], decision: str, *, reason: str, contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Accept or reject quarantined records (and every pending one of ``contribution``)."""
        if isinstance(items, str):  # as the embedded ward refuses it (service.gating.check_review_items)
            raise InputError("items must be a list of review item ids, not one string", hint=f"pass [{items!r}]")
        body = {"items": list(items), "decision": decision, "reason": reason, "contribution": contribution}
        return self._post("/review/decide", body)

    # --- audit ----------------------------------------------------------------------------------
    def trace(self, ref: str) -> dict[str, Any]:
        """Trace a record, contribution, key or version."""
        # A whole key goes as its id only: a secret in a URL ends up in the access logs.
        return self._get(f"/trace/{self._ref(without_secret(ref))}")

    def quarantine_contribution(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Hold a whole contribution out of every future version."""
        return self._post(f"/contributions/{self._ref(contribution)}/quarantine", {"reason": reason})

    def quarantine_by(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Quarantine everything a key, principal or source touched."""
        return self._post("/quarantine", {"ref": ref, "reason": reason})

    def relabel(
        self, dataset: str, changes: Mapping[str, Any], *, reason: str, version: str | None = None, gate: bool = True
    ) -> dict[str, Any]:
        """Change records' labels (a job on the server: the relabelled records are gated)."""
        body = {"changes": dict(changes), "reason": reason, "version": version, "gate": gate}
        return self._job(f"/datasets/{self._ref(dataset)}/relabel", body)["result"]

    def transformations(self, dataset: str) -> list[dict[str, Any]]:
        """The transformations recorded into a dataset."""
        return self._get(f"/datasets/{self._ref(dataset)}/transformations")

    def attest(self, ref: str) -> list[dict[str, Any]]:
        """Attestation envelopes about a version, signed by the server's ward key."""
        return self._get(f"/versions/{self._ref(ref)}/attestation")

    def card(self, ref: str) -> dict[str, Any]:
        """A dataset card of a version (Croissant JSON-LD and Markdown), written by the server."""
        return self._get(f"/versions/{self._ref(ref)}/card")

    def ledger(
        self, *, limit: int | None = None, types: list[str] | None = None, newest_first: bool = True
    ) -> list[dict[str, Any]]:
        """Ledger events."""
        return self._get("/ledger", limit=limit, type=types, newest_first=newest_first)

    def ledger_head(self) -> dict[str, Any]:
        """The newest event's number and hash."""
        return self._get("/ledger/head")

    def ledger_export(self) -> dict[str, Any]:
        """The whole chain."""
        return self._get("/ledger/export")

    def public_key(self) -> dict[str, Any]:
        """The ward's Ed25519 public key."""
        return self._get("/public-key")

    def verify(
        self, *, checkpoints: Sequence[Checkpoint] = (), public_key: str | None = None, all_signatures: bool = False
    ) -> VerifyReport:
        """Re-check the served ward (a job on the server), anchored to local checkpoints and a pinned key."""
        from dataward.service.audit import Problem, VerifyReport

        body: dict[str, Any] = {
            "checkpoints": [{"document": c.to_dict(), "source": c.source or "checkpoint"} for c in checkpoints],
            "public_key": public_key,
        }
        if all_signatures:
            body["all_signatures"] = True
        data = self._job("/verify", body)["result"]
        return VerifyReport(
            problems=[Problem(**p) for p in data["problems"]],
            checked=data["checked"],
            head=data["head"],
            anchor=data["anchor"],
            warnings=data["warnings"],
        )

    def checkpoint(self) -> dict[str, Any]:
        """Sign a checkpoint of the ledger head."""
        return self._post("/checkpoints")

    def checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints kept by the ward."""
        return self._get("/checkpoints")

    def witness(self) -> dict[str, Any]:
        """Where checkpoints are witnessed."""
        return self._get("/witness")

    def set_witness(self, location: str | None) -> dict[str, Any]:
        """Set, or turn off, the witness location (a location on the server's side)."""
        return self._call("PUT", "/witness", json={"location": location})

    # --- training runs and the model registry (dataward.server.model_routes) -------------------
    def _upload_as(self, path: Path, filename: str) -> str:
        """Stream a local file to the server under ``filename``; its upload id."""
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk

        info = self._call(
            "POST",
            "/uploads",
            params={"filename": filename},
            content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        return str(info["upload"])

    def _download(
        self, path: str, target: Path, *, limit: int | None = None, what: str = "the download"
    ) -> dict[str, Any]:
        """GET ``path`` into the file ``target`` as it arrives, at most ``limit`` bytes (default: the
        download cap); the answer's ``X-Dataward-Document``. Past the limit, or cut off, the file is not
        written (its temporary file is removed)."""
        cap = self.max_download_bytes if limit is None else min(limit, self.max_download_bytes)
        try:
            with self._http.stream("GET", API + path) as response:
                if response.status_code >= 400:
                    raise self._refused(response)
                info = _document_header(response)
                with staged_file(target) as fh:
                    write_capped(response, fh, cap, what, download_hint())
                return info
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def start_training_run(
        self, model: str, *, params: dict[str, Any] | None = None, code: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start a training run of ``model`` (its code identity and parameters are recorded now)."""
        return self._post("/training-runs", {"model": model, "params": dict(params or {}), "code": code})

    def record_training_read(self, run_id: str, dataset: str, version: str) -> dict[str, Any]:
        """Record that run ``run_id`` read ``dataset@version`` through the guarded loader."""
        return self._post(f"/training-runs/{self._ref(run_id)}/reads", {"dataset": dataset, "version": version})

    def fail_training_run(self, run_id: str, *, reason: str) -> dict[str, Any]:
        """Record that a run ended without a model."""
        return self._post(f"/training-runs/{self._ref(run_id)}/fail", {"reason": reason[:2000]})

    def finish_training_run(
        self,
        run_id: str,
        artifact: str | Path,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """End run ``run_id`` with its artifact, a file or a folder (sent as a tar archive): hashed, scanned,
        stored, signed and registered by the server as the model's next version."""
        import tarfile
        import tempfile

        from dataward.server.model_routes import pack_folder

        path = Path(artifact)
        if not path.exists():
            raise missing_file(artifact)
        body = {"name": path.name, "params": dict(params or {}), "metrics": dict(metrics or {})}
        if path.is_dir():
            with tempfile.TemporaryDirectory(prefix="dataward-artifact-") as tmp:
                try:
                    pack_folder(path, Path(tmp) / "artifact.tar")
                except (tarfile.TarError, OSError) as exc:
                    raise InputError(f"cannot read the artifact folder {path}: {exc}") from None
                upload = self._upload_as(Path(tmp) / "artifact.tar", f"{path.name}.tar")
            body.update(upload=upload, kind="folder")
        else:
            body.update(upload=self._upload_as(path, path.name), kind="file")
        return self._job(f"/training-runs/{self._ref(run_id)}/finish", body)["result"]

    def models(self, model: str | None = None) -> list[dict[str, Any]]:
        """Model versions the caller may read, newest first."""
        return self._get("/models", model=model)

    def model(self, ref: str) -> dict[str, Any]:
        """One model version with its run, datasets, scan, latest release gate and approvals."""
        return self._get(f"/models/{self._ref(ref)}")

    def model_files(self, ref: str, folder: str | Path, *, accept_affected: bool = False) -> dict[str, Any]:
        """Write a model version's files (checked by the server against the signed manifest) into ``folder``:
        refused for a withdrawn version, and for an affected released one unless ``accept_affected``."""
        import tempfile

        from dataward.client import model_download as md
        from dataward.io.archives import ArchiveLimits, extract_tar

        target = Path(folder)
        what = f"the files of model {ref!r}"
        # What the catalog lists (names, sizes, digests) bounds and checks what the server then sends: a
        # hostile server's endless or swapped files filled the disk, or were written as the model's.
        files = md.listed_files(self.model(ref), ref)
        with tempfile.TemporaryDirectory(prefix="dataward-files-") as tmp, md.staging(target) as stage:
            archive = Path(tmp) / "files.tar"
            path = f"/models/{self._ref(ref)}/files" + ("?accept_affected=true" if accept_affected else "")
            info = self._download(path, archive, limit=md.tar_bound(files), what=what)
            # An uncompressed tar of plain files unpacks to no more than its own length: a server's archive
            # that would (sparse members) or that holds links is refused before anything is written.
            limits = ArchiveLimits.within(max(sum(f.size for f in files), 1))
            extract_tar(archive, stage, limits, what=what)
            md.check_unpacked(stage, files, what)
            md.place(stage, target, files)
        return {**info, "folder": str(target)}

    def probe_inputs(self, ref: str, path: str | Path) -> dict[str, Any]:
        """Write the release gate's probe set of a model version to a Parquet file."""
        info = self._download(f"/models/{self._ref(ref)}/probe-inputs", Path(path))
        return {**info, "path": str(path)}

    def model_gate(
        self,
        ref: str,
        *,
        predict: Callable[[pa.Table], Sequence[Any]] | Any | None = None,
        predictions: str | Path | None = None,
        trusted: Sequence[str] = (),
        seed: int = 0,
    ) -> dict[str, Any]:
        """Run the release gate on ``MODEL@VERSION`` (a job on the server). Predictions come from the file
        ``predictions``, or from ``predict`` (a callable or an estimator, run here on the probe set the
        server sends: the tabular trigger search, which needs the model itself, is then not run), or else
        from the stored artifact on the server."""
        import tempfile

        if predict is not None and predictions is not None:
            raise InputError("give predictions or a predict callable, not both")
        body: dict[str, Any] = {"trusted": list(trusted), "seed": seed}
        with tempfile.TemporaryDirectory(prefix="dataward-gate-") as tmp:
            if predict is not None:
                predictions = Path(tmp) / "predictions.parquet"
                _predict_probe_set(self, ref, predict, Path(tmp) / "probes.parquet", predictions)
            if predictions is not None:
                source = Path(predictions)
                if not source.is_file():
                    raise missing_file(predictions)
                body["predictions_upload"] = self._upload_as(source, source.name)
                body["predictions_name"] = str(predictions)
            return self._job(f"/models/{self._ref(ref)}/gate", body)["result"]

    def model_gate_report(self, ref: str) -> dict[str, Any]:
        """The latest stored release gate report of a model version."""
        return self._get(f"/models/{self._ref(ref)}/gate")

    def approve_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Approve a model version for release (never one the caller's side trained)."""
        return self._post(f"/models/{self._ref(ref)}/approve", {"reason": reason})

    def release_model(self, ref: str, *, reason: str = "") -> dict[str, Any]:
        """Release a model version (promoter): gate, approvals and clean training data required."""
        return self._post(f"/models/{self._ref(ref)}/release", {"reason": reason})

    def withdraw_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Withdraw a released model version (as its releaser may; a reason is required)."""
        return self._post(f"/models/{self._ref(ref)}/withdraw", {"reason": reason})

    def model_attestation(self, ref: str) -> list[dict[str, Any]]:
        """A model version's DSSE envelopes (model-signing manifest, release attestation)."""
        return self._get(f"/models/{self._ref(ref)}/attestation")


def _predict_probe_set(client: HTTPWard, ref: str, predict: Any, probes: Path, out: Path) -> None:
    """Predict the probe set of ``ref`` here with ``predict`` into ``out`` (probe_id, prediction)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataward.release.predictors import CallablePredictor, EstimatorPredictor

    client.probe_inputs(ref, probes)
    table = read_parquet_bytes(Path(probes).read_bytes())
    ids = [str(v) for v in table.column("probe_id").to_pylist()]
    records = table.drop_columns(["probe_id"])
    if hasattr(predict, "predict"):
        from dataward.domain.schema import Schema

        dataset = str(client.model(ref)["datasets"][0]).split("@")[0]
        schema = Schema.from_dict(client._get(f"/datasets/{client._ref(dataset)}")["schema"])
        predictor: Any = EstimatorPredictor(predict, schema)
    elif callable(predict):
        predictor = CallablePredictor(predict)
    else:
        raise InputError(f"predict must be a callable or an estimator, got {type(predict).__name__}")
    labels = predictor.predict(records, ids)
    pq.write_table(pa.table({"probe_id": ids, "prediction": [str(v) for v in labels]}), out)


class _ResponseFile:
    """A read-only file over an HTTP response's body, pulled from the network only as it is read: at most
    ``total`` bytes in all (else ``ServerUnreachable``; ``stream_version`` refuses a ``Content-Length``
    past it before), and no single read of more than ``per_read``. An Arrow IPC reader reads each message's metadata and
    body in one read each, of the length the message declares: a read past ``per_read`` is refused
    before a byte of it is fetched or a buffer of its size is made."""

    def __init__(self, response: httpx.Response, *, what: str, total: int, per_read: int, batch_rows: int) -> None:
        # The body as it arrives (not in fixed chunks: a batch is handed on as soon as its bytes are here).
        self._chunks = response.iter_bytes()
        self._buffer = bytearray()
        self._position = 0
        self._pulled = 0
        self._total = total
        self._what = what
        self._per_read = per_read
        self._batch_rows = batch_rows
        self.closed = False

    def _refuse_read(self) -> ServerUnreachable:
        return too_large(
            f"one message of {self._what} (a batch of at most {self._batch_rows:,} rows)",
            self._per_read,
            f"check DATAWARD_URL; if the server is yours and its records that large, read with fewer batch_rows "
            f"or raise {ANSWER_ENV}",
        )

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        if size > self._per_read:
            raise self._refuse_read()
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pulled += len(chunk)
            if self._pulled > self._total:
                raise too_large(self._what, self._total, download_hint())
            self._buffer += chunk
            if size < 0 and len(self._buffer) > self._per_read:
                raise self._refuse_read()
        n = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._position += n
        return out

    def close(self) -> None:
        self.closed = True


def _arrow_batches(body: _ResponseFile, opened: Any, what: str, url: str) -> Iterator[pa.RecordBatch]:
    """The record batches of a ``/stream`` answer as they arrive (see ``dataward.server.arrow_stream``);
    the response is closed when they end, are refused or are left unread."""
    import pyarrow as pa

    from dataward.server.arrow_stream import END, ERROR

    cut = ServerUnreachable(
        f"the stream of {what} from {url} was cut off before its end",
        hint="read it again; what arrived is not the whole version",
    )
    try:
        try:
            reader = pa.ipc.open_stream(body)
            while True:
                try:
                    batch, metadata = reader.read_next_batch_with_custom_metadata()
                except StopIteration:
                    raise cut from None
                marks = dict(metadata) if metadata is not None else {}
                if ERROR in marks:
                    raise error_from_body(parsed_json(marks[ERROR]), 200)
                if END in marks:
                    return
                yield batch
        except (pa.ArrowInvalid, OSError, httpx.TransportError):  # a message cut short reads as OSError
            raise cut from None
    finally:
        opened.__exit__(None, None, None)


def _load_params(ref: str | None, stage: str | None) -> dict[str, str]:
    params = {"stage": "any" if stage is None else stage}
    if ref is not None:
        params["version"] = ref
    return params


def _limits_doc(limits: Any) -> dict[str, str] | None:
    """Input limits as names to sizes (the server parses the sizes, as the embedded ward does)."""
    if limits is None:
        return None
    if hasattr(limits, "to_dict"):
        limits = limits.to_dict()
    if not isinstance(limits, dict):
        raise InputError(f"input limits must be a mapping of limit names to sizes, not {type(limits).__name__}")
    return {str(k): str(v) for k, v in limits.items()}


def _frame_to_parquet(data: Any) -> Path:
    """A DataFrame or Arrow table given through the Python API, as a temporary Parquet file to upload."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataward.io.header import check_unique, frame_holder

    # Refused here as the embedded ward refuses them (the server checks the rest of the columns).
    holder = frame_holder(data)
    names = data.column_names if isinstance(data, pa.Table) else [str(n) for n in data.columns]
    check_unique(f"the {holder}", names, holder=holder)
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    fd, name = tempfile.mkstemp(prefix="dataward-", suffix=".parquet")
    os.close(fd)
    pq.write_table(table, name)
    return Path(name)
