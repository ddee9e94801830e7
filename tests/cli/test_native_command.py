"""`graphdyn native`: whether the kernels built and what the backend resolves to."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from graphdyn import native
from graphdyn.cli.app import app

runner = CliRunner()


def test_native_reports_status_backend_limits_and_ops(monkeypatch):
    monkeypatch.delenv("GRAPHDYN_BACKEND", raising=False)
    result = runner.invoke(app, ["native", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["compiled"] == native.available()
    assert report["backend"] == ("native" if native.available() else "torch")
    assert report["limits"] == native.LIMITS and "edft_edges" in report["ops"]
    text = runner.invoke(app, ["native"]).output
    assert text.startswith("native kernels: ") and "backend: auto -> " in text


def test_native_require_exits_1_when_disabled(monkeypatch):
    monkeypatch.setenv(native.ENV, "0")
    result = runner.invoke(app, ["native", "--require"])
    assert result.exit_code == 1
    assert "unavailable: disabled by $GRAPHDYN_NATIVE" in result.output
