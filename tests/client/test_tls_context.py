"""A served ward over https: the client's certificate store is built once per process, and verifies.

The clients share one verifying context (``dataward.client.tls``) rather than each reading the CA
bundle; these tests hold it to that, and to verify as before: a server whose certificate no trusted
authority signed is refused for its certificate, one whose authority ``SSL_CERT_FILE`` names is reached,
and a change of that variable, or of the file it names, is honoured by the next client."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dataward.client import tls
from dataward.client.http import HTTPWard
from dataward.client.tls import verifying_context
from dataward.domain.transport_errors import ServerUnreachable


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (it is its own authority), and that key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dataward test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _WhoAmI(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a whoami document, as a served ward would."""

    def do_GET(self) -> None:
        body = json.dumps({"ward": "w-test", "principal": "alice"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WhoAmI)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_nor_trust_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the test machine's environment says: a proxy would make a refusal the proxy's."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _refused_for_its_certificate(url: str) -> None:
    """``whoami`` at ``url`` is refused because the server's certificate does not verify."""
    with HTTPWard(url, key="dw_test_key") as ward, pytest.raises(ServerUnreachable, match="cannot reach") as refused:
        ward.whoami()
    causes = []
    exc: BaseException | None = refused.value
    while exc is not None:
        causes.append(repr(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("CERTIFICATE_VERIFY_FAILED" in cause for cause in causes), causes


def test_an_unknown_authority_is_refused(https_server: tuple[str, Path]) -> None:
    url, _cert = https_server
    _refused_for_its_certificate(url)


def test_the_authority_named_by_ssl_cert_file_is_trusted_and_a_change_is_honoured(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with HTTPWard(url, key="dw_test_key") as ward:
        assert ward.whoami()["principal"] == "alice"
    # The next client after the variable is unset trusts the default bundle again, not the test's authority.
    monkeypatch.delenv("SSL_CERT_FILE")
    _refused_for_its_certificate(url)


def test_a_bundle_replaced_while_the_process_runs_is_read_again(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, cert = https_server
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(cert.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with HTTPWard(url, key="dw_test_key") as ward:
        assert ward.whoami()["principal"] == "alice"
    # The authority withdrawn from the same file (as an upgrade of the bundle would): no longer trusted.
    (tmp_path / "other").mkdir()
    other, _key = _self_signed(tmp_path / "other")
    bundle.write_bytes(other.read_bytes() + b"\n")
    _refused_for_its_certificate(url)
    # The context of the withdrawn bundle is dropped, not kept beside the new one.
    assert [key[1] for key in tls._contexts].count(str(bundle)) == 1


def test_clients_share_one_context_per_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built: list[object] = []
    real = ssl.create_default_context

    def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
        built.append(args or kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tls, "_contexts", {})
    monkeypatch.setattr(ssl, "create_default_context", counted)
    for url in ("https://ward.example", "https://ward.example", "http://127.0.0.1:9", "http://127.0.0.1:9"):
        HTTPWard(url, key="dw_test_key").close()
    # One context for https (trust_env) and one for loopback http, where httpx read the bundle for each client.
    assert len(built) == 2, built
    assert verifying_context(True) is verifying_context(True)
    assert verifying_context(False) is verifying_context(False)
    assert verifying_context(True) is not verifying_context(False)
    cert, _key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    assert verifying_context(True) is not verifying_context(False)
    # trust_env=False reads no variable: the same context whatever they say.
    assert verifying_context(False) is verifying_context(False)
    assert len(built) == 3, built
    assert verifying_context(True).verify_mode == ssl.CERT_REQUIRED and verifying_context(True).check_hostname
