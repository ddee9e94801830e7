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


def _aspirin_info(T: int = 10):
    from graphdyn.models.base import DataInfo

    return DataInfo(dim=3, channels=None, node_attr_dim=1, edge_attr_dim=3, T=T, n_nodes=13, has_velocities=True)


@pytest.mark.parametrize("override", ["model.name=egnn", "model.name=st_egnn", "model.name=estag_no_edft"])
def test_switching_the_model_drops_the_files_params(override):
    """estag_md17's params are ESTAG's (edft, etm, ...): another model (a variant too, whose
    preset they would override) starts from its own defaults."""
    from graphdyn.models.registry import build_model

    cfg = load_config("estag_md17", [override])
    assert cfg.model.params == {} and cfg.training.lr == 0.005  # the rest of the file stays
    model = build_model(cfg.model.name, cfg.model.params, _aspirin_info())
    assert type(model).__name__ != "ESTAG" or cfg.model.name == "estag_no_edft"


def test_params_given_with_the_switch_are_kept_in_any_order():
    for overrides in (["model.params.hidden=8", "model.name=egnn"], ["model.name=egnn", "model.params.hidden=8"]):
        assert load_config("estag_md17", overrides).model.params == {"hidden": 8}


def test_the_same_model_keeps_the_files_params():
    assert load_config("estag_md17", ["model.name=estag"]).model.params["edft"] is True
    assert load_config("estag_md17", ["data.source=springs"]).model.params["edft"] is True  # the file names its model


def test_a_dataset_switch_that_changes_the_default_model_drops_the_params(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: md17}\nmodel: {params: {edft: true}}\n")  # ESTAG by default on md17
    assert load_config(path).model.params == {"edft": True}
    assert load_config(path, ["data.source=springs"]).model.params == {}  # the notebook's gnn on springs
    assert load_config(path, ["data.source=adk"]).model.params == {"edft": True}  # ESTAG again


@pytest.mark.parametrize("key", ["data.T", "data.delta"])
def test_window_must_be_positive(key):
    with pytest.raises(GraphdynError, match=key):
        load_config(None, [f"{key}=0"])
