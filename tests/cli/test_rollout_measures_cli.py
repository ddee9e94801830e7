"""``graphdyn evaluate`` and ``graphdyn rollout`` print stability, h(r) and the short-horizon
error; a model whose rollout diverges reads "diverged at stride S in K of M starts", never
"nan"."""

from __future__ import annotations

import re

import pytest
import torch

from graphdyn.training.config import load_config
from graphdyn.training.run import train

NAN = re.compile(r"\bnan\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny trained spring-chain model and a copy with every weight times 10, which blows up."""
    folder = tmp_path_factory.mktemp("measures")
    cfg = load_config("notebook_acc", ["training.epochs=2", "data.options.n_train=100", "data.options.n_val=20",
                                       "data.options.n_test=20", "eval.rollout_steps=10", "eval.rollout_starts=2",
                                       f"output_dir={folder}"])
    run = train(cfg, quiet=True)
    good = run.run_dir / "model.pt"
    ck = torch.load(good, weights_only=True)
    ck["state_dict"] = {k: v * 10 if v.is_floating_point() and k != "target_scale" else v for k, v in ck["state_dict"].items()}
    bad = folder / "exploding.pt"
    torch.save(ck, bad)
    return run.run_dir, good, bad


def test_run_report_shows_stability_hr_and_figures(checkpoints):
    run_dir = checkpoints[0]
    report = (run_dir / "report.md").read_text()
    assert "## Rollout: stability, h(r), short horizon" in report and "- stability: 2 of 2 starts stable" in report
    assert "- h(r): MAE" in report and "noise floor" in report and "- short horizon: H =" in report
    for name in ("hr", "bond_lengths", "short_horizon"):
        assert f"![{name}](figures/{name}.png)" in report and (run_dir / "figures" / f"{name}.png").stat().st_size > 5000
    assert not NAN.search(report)


@pytest.mark.parametrize("command", ["evaluate", "rollout"])
def test_commands_print_the_measures(command, checkpoints, run_cli, tmp_path):
    extra = ["--out", str(tmp_path / "r.npz")] if command == "rollout" else []
    proc = run_cli(command, str(checkpoints[1]), "--steps", "30", "--starts", "3", *extra)
    assert proc.code == 0, proc.err
    out = proc.out
    assert re.search(r"^stability: \d of 3 starts stable to the end", out, re.MULTILINE)
    assert re.search(r"^  bonded pairs: 2 springs; threshold ", out, re.MULTILINE)
    assert re.search(r"^h\(r\): MAE [\d.e-]+ vs noise floor [\d.e-]+", out, re.MULTILINE)
    assert re.search(r"^short horizon: H = \d+ strides", out, re.MULTILINE) and "copy last frame" in out
    assert "energy drift" in out and not NAN.search(out)


@pytest.mark.parametrize("command", ["evaluate", "rollout"])
def test_a_diverged_model_says_diverged_and_never_nan(command, checkpoints, run_cli, tmp_path):
    extra = ["--out", str(tmp_path / "r.npz")] if command == "rollout" else []
    proc = run_cli(command, str(checkpoints[2]), "--steps", "100", "--starts", "4", *extra)
    assert proc.code == 0, proc.err
    assert re.search(r"diverged at stride \d+ in 4 of 4 starts", proc.out), proc.out
    assert re.search(r"^h\(r\): ", proc.out, re.MULTILINE) and not NAN.search(proc.out + proc.err)


def test_evaluate_json_and_threshold_option(checkpoints, run_cli, tmp_path):
    import json

    proc = run_cli("evaluate", str(checkpoints[2]), "--steps", "100", "--starts", "4", "--json", "--stability-threshold", "0.05",
                   "--out", str(tmp_path / "m.json"))
    assert proc.code == 0, proc.err
    metrics = json.loads(proc.out)  # strict JSON: no NaN
    assert metrics == json.loads((tmp_path / "m.json").read_text())
    roll = metrics["rollout"]
    assert roll["stability"]["threshold"] == 0.05 and roll["diverged"].endswith("in 4 of 4 starts") and roll["final_mse_mean"] is None
    proc = run_cli("evaluate", str(checkpoints[1]), "--stability-threshold", "-1")
    assert proc.code == 2 and "stability_threshold" in proc.err
