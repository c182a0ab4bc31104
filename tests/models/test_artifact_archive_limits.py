"""The D4 attack over HTTP: a training run finished with a ~10 KB sparse tar as its artifact folder, which
used to unpack to its declared size on the server, be hashed in full and stored. It is refused, naming the
member, and nothing is registered (the unpacked total, member sizes and member count are bounded too:
see tests/security/test_archive_limits.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.client.http import HTTPWard
from dataward.domain.errors import InputError
from tests.helpers import TINY_ONNX
from tests.models.conftest import Models
from tests.security.test_archive_limits import plain_tar, sparse_tar
from tests.server.conftest import start_server


def _finish_with(tom: HTTPWard, archive: Path) -> dict:
    run = tom.start_training_run("man-clf", params={})
    tom.record_training_read(run["run"], "man", "training")
    upload = tom._upload_as(archive, "clf.tar")
    body = {"upload": upload, "name": "clf", "kind": "folder", "params": {}, "metrics": {}}
    return tom._job(f"/training-runs/{run['run']}/finish", body)


def test_a_sparse_artifact_folder_is_refused_on_the_server(models: Models, tmp_path: Path) -> None:
    server, thread, _, url = start_server(models.ward.folder, max_upload_bytes=64 << 10)
    tom = HTTPWard(url, key=models.keys["tom"])
    try:
        before = [m["ref"] for m in models.ward.models("man-clf")]
        with pytest.raises(InputError, match=r"'weights\.bin', a sparse file"):
            _finish_with(tom, sparse_tar(tmp_path / "bomb.tar"))
        # Plain files within the limit still arrive whole.
        info = _finish_with(tom, plain_tar(tmp_path / "ok.tar", {"model.onnx": TINY_ONNX, "sub/config.json": b"{}"}))
        assert {f["file"] for f in info["result"]["scan"]} == {"model.onnx", "sub/config.json"}
        before.insert(0, info["result"]["ref"])
        assert [m["ref"] for m in models.ward.models("man-clf")] == before
    finally:
        tom.close()
        server.should_exit = True
        thread.join(timeout=10)
