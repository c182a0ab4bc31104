"""Errors raised at the served ward's boundary (``dataward serve`` and its HTTP client).

They follow the same contract as ``dataward.domain.errors``: a stable ``code``, a CLI ``exit_code``
and an ``http_status``.
"""

from __future__ import annotations

from dataward.domain.errors import AuthenticationError, DatawardError, InputError


class PayloadTooLarge(InputError):
    """A request body or upload exceeds the server's size limit. Nothing was stored."""

    code = "payload_too_large"
    http_status = 413


class RateLimited(AuthenticationError):
    """Too many failed authentications from this client address or for this key id: wait, then retry."""

    code = "rate_limited"
    http_status = 429


class ServerUnreachable(DatawardError):
    """The client could not reach the server, or the server answered something that is not dataward's."""

    code = "unreachable"
    exit_code = 1
    http_status = 502


class QuotaExceeded(DatawardError):
    """A principal holds as many pending uploads, or as many pending upload bytes, as the server allows:
    use them in a contribution, or wait until the unused ones expire. Nothing was stored."""

    code = "quota_exceeded"
    exit_code = 4
    http_status = 429


class TooManyJobs(QuotaExceeded):
    """A principal, or the human accountable for it with all their service principals, already holds as
    many jobs (queued or running) as the server allows: wait until one ends. Nothing was started."""

    code = "too_many_jobs"


class JobQueueFull(DatawardError):
    """The server's job queue holds as many waiting jobs as it allows, everyone's together: retry later.
    Nothing was started."""

    code = "job_queue_full"
    exit_code = 10
    http_status = 503


class JobStateUnwritable(DatawardError):
    """The server could not write a job's state in its ``server/jobs`` folder (a full disk, a read-only
    folder): the job was not started. Its operator has to free space or fix the folder; then retry."""

    code = "job_state_unwritable"
    exit_code = 10
    http_status = 507
