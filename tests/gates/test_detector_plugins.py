"""A third-party package ships a detector through the ``dataward.detectors`` entry-point group."""

from __future__ import annotations

import sys
import textwrap

import pandas as pd
import pytest

from dataward.gates import base, scan


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    package = tmp_path / "wardplugin"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from dataward.gates.base import Detector, DetectorResult

            class Constant(Detector):
                name = "constant_plugin"

                def fit(self, baseline, context):
                    return self

                def score(self, contribution):
                    n = len(contribution)
                    return DetectorResult(self.name, "1", np.ones(n), np.zeros(n, bool))

            class NotADetector:
                pass
            """
        )
    )
    dist = tmp_path / "wardplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wardplugin\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(base, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    yield dist
    sys.modules.pop("wardplugin", None)


def test_an_entry_point_detector_is_registered_and_runs(plugin_on_path) -> None:
    (plugin_on_path / "entry_points.txt").write_text("[dataward.detectors]\nconstant = wardplugin:Constant\n")
    assert "constant_plugin" in base.registered()
    baseline = pd.DataFrame({"x": [float(i) for i in range(30)], "label": ["a", "b"] * 15})
    schema = {"label": "label", "inputs": [{"name": "x", "kind": "numeric"}]}
    report = scan(baseline, baseline.head(10), schema, policy={"detectors": ["constant_plugin"]})
    assert report.verdict == "pass" and list(report.results) == ["constant_plugin"]


def test_an_entry_point_that_is_not_a_detector_is_an_error_not_a_skip(plugin_on_path) -> None:
    (plugin_on_path / "entry_points.txt").write_text("[dataward.detectors]\nbad = wardplugin:NotADetector\n")
    with pytest.raises(TypeError, match="not a Detector"):
        base.registered()
