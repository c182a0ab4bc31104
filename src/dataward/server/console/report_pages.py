"""The gate report as an HTML page for the console, drawn off the server's event loop and remembered.

Drawing a report (matplotlib plots) takes a CPU second or more. Drawn in the request's coroutine, it
held the worker's event loop for that long: any reader of a dataset (a contributor bot's key
included) loading report pages in a loop kept every other request of that worker, the API's and
``/healthz`` included, waiting seconds each. Here a page is drawn in a worker thread, one at a time
per process (a drawing holds the interpreter most of the time, and several at once would starve the
loop again), and the pages drawn last are kept, keyed by the digest of the very document drawn: the
same report seen with the same rights is drawn once, and a caller who may see less (records
withheld) gets a page of their own document, never another caller's.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from dataward.gates.html import render_html

KEPT_PAGES = 16
"""How many drawn pages a process keeps (a page is 100 to 200 kB)."""


def _digest(report: Mapping[str, Any], title: str) -> str:
    canonical = json.dumps({"title": title, "report": report}, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class ReportPages:
    """Gate report pages, drawn in a thread one at a time and kept by the digest of what was drawn."""

    def __init__(self, *, kept: int = KEPT_PAGES, draw: Callable[..., str] = render_html) -> None:
        self.kept = kept
        self.draw = draw
        self._pages: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._drawing = threading.Lock()

    async def page(self, report: Mapping[str, Any], *, title: str) -> str:
        """The HTML page of ``report`` (as ``render_html`` draws it), without blocking the event loop."""
        return await run_in_threadpool(self._page, report, title)

    def _page(self, report: Mapping[str, Any], title: str) -> str:
        key = _digest(report, title)
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
        with self._drawing:
            with self._lock:  # drawn meanwhile by the request that held the drawing lock
                if key in self._pages:
                    return self._pages[key]
            html = self.draw(report, title=title)
        with self._lock:
            self._pages[key] = html
            while len(self._pages) > self.kept:
                self._pages.popitem(last=False)
        return html


__all__ = ["ReportPages"]
