"""The bearer key in cleartext: a client pointed at ``http://`` on another machine (a typo, a copied
example, ``DATAWARD_URL=http://10.x.x.x``) used to send ``Authorization: Bearer dw_...`` over the network
as is. It is refused before anything is sent, unless the host is loopback or the user opted in with
``DATAWARD_ALLOW_INSECURE_HTTP=1``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.domain.errors import DatawardError, InputError

KEY = "dw_abcdefgh_" + "a" * 52


class Recorder(httpx.BaseTransport):
    """Records every request instead of sending it."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(200, json={"principal": "x", "ward": "w"})


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://dataward.example.com", "HTTP://192.168.0.7"])
def test_plain_http_to_another_host_is_refused_before_sending(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAWARD_ALLOW_INSECURE_HTTP", raising=False)
    recorder = Recorder()
    with pytest.raises(InputError, match="refusing to send your API key over plain http://") as refused:
        HTTPWard(url, key=KEY, transport=recorder).whoami()
    assert "DATAWARD_ALLOW_INSECURE_HTTP" in (refused.value.hint or "")
    assert recorder.seen == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.8.9.10", "http://localhost:1", "http://[::1]:8000", "https://10.1.2.3"]
)
def test_loopback_and_https_stay_allowed(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAWARD_ALLOW_INSECURE_HTTP", raising=False)
    recorder = Recorder()
    HTTPWard(url, key=KEY, transport=recorder).whoami()
    assert len(recorder.seen) == 1


def test_the_opt_in_allows_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_ALLOW_INSECURE_HTTP", "1")
    recorder = Recorder()
    HTTPWard("http://10.1.2.3:8000", key=KEY, transport=recorder).whoami()
    assert len(recorder.seen) == 1
    monkeypatch.delenv("DATAWARD_ALLOW_INSECURE_HTTP")
    HTTPWard("http://10.1.2.3:8000", key=KEY, transport=recorder, allow_insecure_http=True).whoami()
    assert len(recorder.seen) == 2


def _outward_address() -> str | None:
    """A non-loopback address of this machine, or None (no route out)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_the_cli_sends_no_key_to_a_plain_http_listener_elsewhere() -> None:
    """The trial's repro: a listener on this machine's network address, and `dataward whoami` aimed at it."""
    address = _outward_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(1)
    listener.settimeout(15)
    got: list[bytes] = []

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(5)
        got.append(conn.recv(4096))
        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    env = {**os.environ, "DATAWARD_URL": f"http://{address}:{listener.getsockname()[1]}", "DATAWARD_KEY": KEY}
    env.pop("DATAWARD_WARD", None)
    env.pop("DATAWARD_ALLOW_INSECURE_HTTP", None)
    done = subprocess.run(
        [sys.executable, "-m", "dataward", "whoami"], env=env, capture_output=True, text=True, timeout=120
    )
    listener.close()
    thread.join(5)
    assert not any(KEY.encode() in g for g in got), "the key crossed the network in cleartext"
    assert done.returncode == 2, done.stderr
    assert "plain http://" in done.stderr + done.stdout


class _Listener:
    """A plain TCP listener on loopback recording the first bytes of every connection (a server, or a
    proxy on the way), and answering each with a 502."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.socket.settimeout(10)
        self.got: list[bytes] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                self.got.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread at once
        self.socket.close()
        self.thread.join(5)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_in_the_environment_never_receives_the_key_of_a_plain_http_url(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a workstation or CI runner has HTTP_PROXY pointing at a proxy on another machine, and
    the client talks to `dataward serve` on http://127.0.0.1. The request, `Authorization: Bearer dw_...`
    included, went in cleartext to the proxy (and from there to the proxy's own loopback). A plain
    http:// URL is now reached directly whatever the environment says."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DATAWARD_ALLOW_INSECURE_HTTP", raising=False)
    proxy, server = _Listener(), _Listener()
    try:
        monkeypatch.setenv(variable, proxy.url)
        with HTTPWard(server.url, key=KEY) as ward, pytest.raises(DatawardError):
            ward.whoami()
    finally:
        proxy.close()
        server.close()
    assert not any(KEY.encode() in g for g in proxy.got), "the key went to the proxy in cleartext"
    assert any(KEY.encode() in g for g in server.got)


def test_an_https_url_still_uses_the_environments_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy only tunnels an https:// connection (CONNECT): it sees no key, and networks that need
    one keep working."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert HTTPWard("https://dataward.example.com", key=KEY)._http._mounts
    assert not HTTPWard("http://127.0.0.1:8000", key=KEY)._http._mounts


@pytest.mark.parametrize(
    "url",
    ["https://alice:hunter2@dataward.example.com", "http://alice:hunter2@127.0.0.1:8000", "https://dw_x@h.example"],
)
def test_a_url_with_a_user_or_password_is_refused_without_echoing_it(url: str) -> None:
    """With `user:password@` in the URL the HTTP client sent them as Basic credentials in place of the
    key, and every 'cannot reach the dataward server at URL' printed the password."""
    recorder = Recorder()
    with pytest.raises(InputError, match="user name or password") as refused:
        HTTPWard(url, key=KEY, transport=recorder)
    assert "hunter2" not in str(refused.value) and "dw_x" not in str(refused.value)
    assert recorder.seen == []
