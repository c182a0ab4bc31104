"""``dataward serve``: the ward behind an HTTP boundary (FastAPI under uvicorn).

``create_app(ServerSettings(ward=PATH))`` builds the application; ``dataward serve`` runs it.
"""

from dataward.server.app import create_app
from dataward.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
