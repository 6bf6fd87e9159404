"""Experiment configs: YAML -> frozen dataclasses, per-key errors, overrides, the config hash."""
import dataclasses
import hashlib
import json

import pytest
import yaml

from fairseg_bench.config import (
    PRESET_DIR,
    ExperimentConfig,
    config_from_dict,
    config_hash,
    dump_config,
    load_config,
    resolve_config_path,
)
from fairseg_bench.errors import UserError

PRESETS = sorted(PRESET_DIR.glob("*.yaml"))


def write(tmp_path, text, name="x.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_presets_exist_and_load():
    names = {p.stem for p in PRESETS}
    assert {"quick", "quick-long", "cityscapes_dlv3p_r101", "ade20k_dlv3p_r101", "voc_dlv3p_r101"} <= names
    for path in PRESETS:
        cfg = load_config(path)
        assert cfg.name == path.stem
        assert load_config(path.stem) == cfg  # found by name too


def test_paper_recipe():
    """the paper: SGD 0.01, momentum 0.9, wd 5e-4, poly 0.9, batch 8, crop 512x1024, 80k steps."""
    cfg = load_config("cityscapes_dlv3p_r101")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.poly_power) == \
        ("sgd", 0.01, 0.9, 5e-4, 0.9)
    assert (cfg.train.batch_size, cfg.train.iters) == (8, 80_000)
    assert cfg.model.name == "deeplabv3plus_resnet101" and cfg.data.dataset == "cityscapes"
    opts = cfg.data.train_options
    assert list(opts["crop_size"]) == [512, 1024] and list(opts["scale_range"]) == [0.5, 2.0] and opts["hflip"]


def test_quick_is_the_default_benchmark():
    cfg = load_config("quick")
    assert cfg.data.dataset == "synthetic" and cfg.seeds == (0,)
    assert cfg.losses == ("mcce", "focal", "tce")
    assert (cfg.optim.name, cfg.optim.lr, cfg.train.batch_size, cfg.train.iters) == ("adam", 6e-3, 4, 2000)
    assert (cfg.model.name, cfg.train.amp) == ("unet_lite", "auto")
    assert len(load_config("quick-long").seeds) >= 3


def test_trained_is_the_papers_regime():
    cfg = load_config("trained")
    assert cfg.data.dataset == "synthetic" and len(cfg.seeds) >= 3
    assert {"mcce", "focal", "tce", "tce-online", "rcs"} <= set(cfg.losses)
    quick = load_config("quick")  # trained on more than twice as many images
    assert cfg.train.iters * cfg.train.batch_size > 2 * quick.train.iters * quick.train.batch_size


def test_round_trip_and_frozen(tmp_path):
    cfg = load_config("quick")
    again = load_config(write(tmp_path, dump_config(cfg)))
    assert again == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.iters = 3


def test_name_defaults_to_file_stem(tmp_path):
    assert load_config(write(tmp_path, "train: {iters: 5}\n", "my-exp.yaml")).name == "my-exp"
    assert load_config(write(tmp_path, "", "empty.yaml")) == ExperimentConfig(name="empty")


@pytest.mark.parametrize("text, message", [
    ("train: {iters: abc}", "x.yaml: train.iters must be a positive integer, got 'abc'"),
    ("train: {iters: 0}", "train.iters must be a positive integer, got 0"),
    ("train: {iters: 2.5}", "train.iters must be a positive integer, got 2.5"),
    ("train: {amp: 'yes'}", "train.amp must be auto, bf16, true or false, got 'yes'"),
    ("optim: {lr: -1}", "optim.lr must be a number > 0, got -1"),
    ("optim: {momentum: 1.5}", "optim.momentum must be a number >= 0 and <= 1, got 1.5"),
    ("optim: {name: rmsprop}", "optim.name must be one of sgd, adam, adamw, got 'rmsprop'"),
    ("train: {iterz: 5}", "unknown key train.iterz"),
    ("trian: {iters: 5}", "unknown key trian"),
    ("seeds: [0, 0]", "seeds must be a non-empty list of distinct non-negative integers"),
    ("seeds: [-1]", "seeds must be a non-empty list"),
    ("losses: []", "losses must be a non-empty list of strings"),
    ("device: tpu", "device must be one of auto, cpu, cuda"),
    ("data: [1, 2]", "data must be a mapping"),
    ("- 1\n- 2", "the file must be a mapping"),
    ("train: {iters: [}", "not valid YAML (line 1)"),
])
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "x.yaml"))


def test_missing_config_lists_presets():
    with pytest.raises(UserError, match="no such config file .*quick"):
        resolve_config_path("no-such-experiment")


def test_overrides():
    cfg = load_config("quick")
    new = cfg.override(losses=("mcce", "tce:t=0.1"), seeds=(1, 2), data_root="/data", out="o", device="cpu",
                       iters=7, batch_size=4, quiet=True)
    assert new.losses == ("mcce", "tce:t=0.1") and new.seeds == (1, 2)
    assert (new.data.root, new.out, new.device, new.train.iters, new.train.batch_size, new.quiet) == \
        ("/data", "o", "cpu", 7, 4, True)
    assert new.optim == cfg.optim and cfg.train.iters != 7  # the original is unchanged
    assert cfg.override(iters=None) == cfg  # None keeps the file's value
    with pytest.raises(UserError, match="command line: train.iters must be a positive integer"):
        cfg.override(iters=0)


def test_config_hash_ignores_run_selection_and_location():
    cfg = load_config("quick")
    same = cfg.override(losses=("focal",), seeds=(5,), out="elsewhere", device="cpu", quiet=True)
    assert config_hash(same) == config_hash(cfg)
    assert config_hash(cfg.override(iters=cfg.train.iters + 1)) != config_hash(cfg)
    assert config_hash(cfg.override(data_root="/x")) != config_hash(cfg)
    # independent reference: sha256 of the sorted-key compact JSON without the unhashed keys
    resolved = yaml.safe_load(dump_config(cfg))
    for key in ("losses", "seeds", "out", "device", "quiet", "launcher"):
        resolved.pop(key)
    expected = hashlib.sha256(json.dumps(resolved, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert config_hash(cfg) == expected


def test_resolved_dict_is_plain():
    d = config_from_dict({"losses": ["mcce"], "data": {"train_options": {"size": [32, 64]}}}).resolved_dict()
    assert d["losses"] == ["mcce"] and d["data"]["train_options"]["size"] == [32, 64]
    assert set(d) == {"name", "losses", "seeds", "out", "device", "quiet", "data", "model", "optim", "train", "eval",
                      "launcher"}
