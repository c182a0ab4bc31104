"""Clients of a served ward: ``HTTPWard`` implements ``dataward.api.WardAPI`` over HTTP."""

from dataward.client.http import HTTPWard, error_from_body

__all__ = ["HTTPWard", "error_from_body"]
