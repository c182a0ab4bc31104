"""Ctrl-C during the gate of `contribute` ends the command at once and says what stands.

It was taken only when every detector had ended (the main thread waited in a join that a Ctrl-C did
not reach: 55 s and more, minutes for a large file), and the command then exited 130 with nothing said,
leaving the contribution stored but ungated without a word about `dataward gate run`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_cli import as_admin
from tests.helpers import wine_rows, wine_training_ward, write_csv

POLICY = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates, outliers]\nfirst_import: self-reference\n"

# The CLI, with every detector's chain on the scan's worker threads held for two minutes (a detector
# that computes for that long) once it has said it started.
_HELD_GATE = """
import sys, threading
from pathlib import Path
from dataward.gates import scanning
marker = Path(sys.argv[1])
original = scanning._each

def held(fn, names, workers, **kwargs):
    def chain(name):
        marker.write_text(name)
        threading.Event().wait(120)
        fn(name)
    original(chain, names, workers, **kwargs)

scanning._each = held
from dataward.cli.app import main
sys.argv = ["dataward", *sys.argv[2:]]
main()
"""


def test_ctrl_c_during_the_gate_ends_contribute_at_once_and_names_the_gate_to_run(tmp_path: Path) -> None:
    wine_training_ward(tmp_path, POLICY, 40).close()  # the gate judges against wine@v1
    ward = tmp_path / "ward"
    data = write_csv(tmp_path / "b.csv", wine_rows(40, 80, shuffled=True))
    marker = tmp_path / "started"
    env = {**os.environ, "DATAWARD_WARD": str(ward), "DATAWARD_GATE_WORKERS": "2", "COLUMNS": "200"}
    env.pop("DATAWARD_KEY", None)
    command = ["contribute", "wine", str(data), "--source", "test:b"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _HELD_GATE, str(marker), *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=60)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert took < 5, f"exited {took:.1f} s after the Ctrl-C"
    assert "wine#2 was stored, but its gate was interrupted" in err, err
    assert "dataward gate run wine#2" in err, err
    # Stored, signed and not gated: nothing of the scan was recorded.
    with as_admin(ward) as admin:
        listed = admin.contributions("wine")[-1]
        assert listed["ref"] == "wine#2"
        assert (listed["status"], listed["gate_verdict"]) == ("submitted", None)
        assert admin.verify().ok
