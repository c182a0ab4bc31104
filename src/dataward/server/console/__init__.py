"""The review console: server-rendered pages for people, served beside the API by the same app."""

from dataward.server.console.routes import Console, install_console

__all__ = ["Console", "install_console"]
