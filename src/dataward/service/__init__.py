"""The service layer: ``Ward``, one method per use case."""

from dataward.service.ward import Ward

__all__ = ["Ward"]
