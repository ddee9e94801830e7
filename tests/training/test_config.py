import pytest

from graphdyn import GraphdynError
from graphdyn.training.config import apply_overrides, builtin_config_path, load_config


def test_builtin_configs_load():
    for name in ("notebook_dv", "notebook_acc"):
        cfg = load_config(builtin_config_path(name))
        assert cfg.data.source == "springs" and cfg.model.name == "gnn"


def test_overrides_are_typed_and_nested():
    cfg = load_config(None, ["training.lr=1e-2", "data.options.dim=2", "model.params.hidden=8", "seed=5"])
    assert cfg.training.lr == 0.01 and cfg.data.options == {"dim": 2} and cfg.model.params["hidden"] == 8 and cfg.seed == 5
    assert apply_overrides({"a": {"b": 1}}, ["a.c=[1, 2]"]) == {"a": {"b": 1, "c": [1, 2]}}


def test_unknown_key_names_the_file_and_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  epochs: 3\n  learning_rate: 0.1\n")
    with pytest.raises(GraphdynError) as exc:
        load_config(path)
    assert "run.yaml" in str(exc.value) and "training.learning_rate" in str(exc.value) and "unknown" in str(exc.value)


@pytest.mark.parametrize("override, key", [("training.epochs=0", "training.epochs"), ("training.optimizer=sgd", "training.optimizer"), ("nope=1", "nope")])
def test_bad_values_are_errors(override, key):
    with pytest.raises(GraphdynError, match=key):
        load_config(None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(GraphdynError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(GraphdynError, match="invalid YAML"):
        load_config(bad)


def test_builtin_config_by_name_and_dataset_default_model():
    from graphdyn.training.config import builtin_configs, resolve_config_path

    assert {"notebook_acc", "notebook_dv", "charged_estag", "estag_md17", "estag_adk", "estag_mocap"} <= set(builtin_configs())
    assert load_config("estag_adk").data.source == "adk"
    assert resolve_config_path("does_not_exist").name == "does_not_exist"  # left alone: a clear 'not found' later
    assert load_config(None).model.name is None  # chosen from the dataset when the run is prepared


def test_adk_trains_out_of_the_box_with_estag():
    from graphdyn.models.estag import ESTAG
    from graphdyn.training.run import prepare

    prep = prepare(load_config(None, ["data.source=adk"]))  # the AdK files shipped with MDAnalysisTests
    assert prep.config.model.name == "estag" and isinstance(prep.simulator.model, ESTAG)
    assert prep.simulator.model.info.channels == 4 and prep.meta["config"]["model"]["name"] == "estag"
    assert len(prep.splits.train) > 0
