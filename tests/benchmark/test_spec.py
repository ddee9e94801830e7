"""Benchmark specs: strict keys, names checked, cells and their run configs."""

from __future__ import annotations

import pytest

from bench_helpers import TINY_CHARGED, TINY_CONFIG
from graphdyn.benchmark.published import published_table
from graphdyn.benchmark.spec import builtin_specs, load_spec, parse_spec, resolve_spec_path, substitute
from graphdyn.errors import GraphdynError
from graphdyn.models.registry import available_models
from graphdyn.training.config import parse_config


def tiny(**over):
    spec = {"seeds": [1, 2], "config": TINY_CONFIG, "datasets": {"charged": TINY_CHARGED}, "models": ["pt_t", "egnn"]}
    spec.update(over)
    return spec


def test_unknown_key_names_the_file_and_the_key(write_spec):
    path = write_spec(tiny(modles=["estag"]))
    with pytest.raises(GraphdynError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and "modles" in str(err.value)
    path = write_spec(tiny(models=[{"name": "egnn", "parms": {}}]))
    with pytest.raises(GraphdynError, match=r"models\.0\.parms"):
        load_spec(path)


def test_unknown_key_inside_a_run_config_section_names_where_it_was_written(write_spec):
    ds = {**TINY_CHARGED, "config": {"training": {"lrr": 0.1}}}
    with pytest.raises(GraphdynError, match=r"datasets\.charged\.config\.training\.lrr"):
        load_spec(write_spec(tiny(datasets={"charged": ds})))
    with pytest.raises(GraphdynError, match=r"field 'config\.training\.epochs'"):
        load_spec(write_spec(tiny(config={"training": {"epochs": 0}})))


def test_unknown_model_dataset_and_model_params_are_errors(write_spec):
    with pytest.raises(GraphdynError, match=r"models\[1\]\.name.*unknown model 'egnx'"):
        load_spec(write_spec(tiny(models=["pt_t", "egnx"])))
    with pytest.raises(GraphdynError, match="unknown dataset 'chargd'"):
        load_spec(write_spec(tiny(datasets={"c": {**TINY_CHARGED, "source": "chargd"}})))
    with pytest.raises(GraphdynError, match=r"charged / egnn / seed 1.*model\.params\.hiden"):
        load_spec(write_spec(tiny(models=[{"name": "egnn", "params": {"hiden": 8}}])))
    with pytest.raises(GraphdynError, match="listed twice"):
        load_spec(write_spec(tiny(models=["egnn", "egnn"])))


def test_unknown_spec_name_lists_the_builtin_ones():
    with pytest.raises(GraphdynError, match="built-in: .*quick"):
        resolve_spec_path("no_such_spec")


def test_cell_config_merges_base_spec_dataset_model_and_per_dataset_overrides(write_spec):
    spec = load_spec(write_spec({
        "base": "estag_md17",
        "seeds": [3],
        "config": {"training": {"epochs": 7}},
        "datasets": {"charged": {**TINY_CHARGED, "config": {"training": {"lr": 0.01}}}, "other": {**TINY_CHARGED, "T": 4}},
        "models": [
            {"name": "egnn", "key": "egnn_small", "params": {"hidden": 8}, "config": {"training": {"batch_size": 20}},
             "datasets": {"other": {"model": {"params": {"coord_weight": 3.0}}, "training": {"lr": 0.5}}}},
        ],
    }))
    cells = {c.dataset: c for c in spec.cells()}
    a, b = cells["charged"].config, cells["other"].config
    assert a["training"] == {**a["training"], "epochs": 7, "lr": 0.01, "batch_size": 20, "weight_decay": 1e-12, "val_every": 5}
    assert a["model"] == {"name": "egnn", "params": {"hidden": 8}}  # the base's ESTAG params are not inherited
    assert a["data"]["source"] == "charged" and a["data"]["options"] == TINY_CHARGED["options"]  # the base's molecule is gone
    assert b["model"]["params"] == {"hidden": 8, "coord_weight": 3.0} and b["training"]["lr"] == 0.5 and b["data"]["T"] == 4
    assert a["seed"] == 3 and str(cells["charged"].rel_dir) == "cells/charged/egnn_small/seed3"
    parse_config(b)  # every cell is a valid run config


def test_fingerprint_changes_with_the_run_config_only(write_spec):
    one = {(c.dataset, c.model, c.seed): c.fingerprint for c in load_spec(write_spec(tiny())).cells()}
    again = {(c.dataset, c.model, c.seed): c.fingerprint for c in load_spec(write_spec(tiny(description="same runs"))).cells()}
    other = {(c.dataset, c.model, c.seed): c.fingerprint for c in
             load_spec(write_spec(tiny(models=["pt_t", {"name": "egnn", "params": {"hidden": 8}}]))).cells()}
    assert one == again
    assert other[("charged", "pt_t", 1)] == one[("charged", "pt_t", 1)]
    assert other[("charged", "egnn", 1)] != one[("charged", "egnn", 1)]
    assert len(set(one.values())) == len(one)  # seeds differ


def test_only_restricts_a_model_to_some_datasets(write_spec):
    spec = load_spec(write_spec(tiny(datasets={"a": TINY_CHARGED, "b": TINY_CHARGED},
                                     models=["pt_t", {"name": "egnn", "only": ["b"]}])))
    assert sorted((c.dataset, c.model) for c in spec.cells() if c.seed == 1) == [("a", "pt_t"), ("b", "egnn"), ("b", "pt_t")]
    with pytest.raises(GraphdynError, match=r"models\[1\]\.only"):
        load_spec(write_spec(tiny(models=["pt_t", {"name": "egnn", "only": ["c"]}])))


def test_generate_step_points_the_dataset_at_the_generated_file(write_spec):
    ds = {"source": "md17", "options": {"skip": 200}, "generate": {"molecule": "ethanol", "steps": 100}}
    spec = load_spec(write_spec(tiny(datasets={"eth": ds})))
    options = spec.cells()[0].config["data"]["options"]
    assert options == {"skip": 200, "path": "{out}/data/eth.npz"}
    assert substitute(options, {"out": "/x"})["path"] == "/x/data/eth.npz"
    with pytest.raises(GraphdynError, match="exactly one of 'molecule'"):
        load_spec(write_spec(tiny(datasets={"eth": {**ds, "generate": {"steps": 100}}})))
    with pytest.raises(GraphdynError, match=r"datasets\.eth\.generate\.molecule.*unknown MD17 molecule 'ethanoll'"):
        load_spec(write_spec(tiny(datasets={"eth": {**ds, "generate": {"molecule": "ethanoll"}}})))


@pytest.mark.parametrize("name", builtin_specs())
def test_every_builtin_spec_parses_and_names_registered_models(name):
    spec = load_spec(name)
    registered = set(available_models())
    assert {m.name for m in spec.models} <= registered
    assert spec.cells()
    if spec.schema.published:
        table = published_table(spec.schema.published)
        mapped = [key for key, ds in spec.datasets.items() if (ds.published or key) in table.columns]
        assert mapped == (["ethanol"] if name == "quick" else list(spec.datasets))


def test_paper_md17_is_table_1_with_the_authors_recipe():
    spec = load_spec("paper_md17")
    table = published_table("md17")
    assert [m.row for m in spec.models] == list(table.labels)
    assert list(spec.datasets) == list(table.columns) and spec.seeds == [1, 2, 3]
    cfg = next(c for c in spec.cells() if c.model == "estag").config
    assert cfg["training"]["epochs"] == 500 and cfg["training"]["lr"] == 0.005 and cfg["training"]["batch_size"] == 100
    assert cfg["data"]["T"] == 10 and cfg["data"]["delta"] == 10 and cfg["training"]["val_every"] == 5


def test_paper_adk_has_table_2_rows_and_the_authors_learning_rate():
    spec = load_spec("paper_adk")
    assert [m.row for m in spec.models] == list(published_table("adk").labels)
    cfg = next(c for c in spec.cells() if c.model == "st_gmn").config
    assert cfg["training"]["lr"] == 5e-5 and cfg["data"]["delta"] == 5
