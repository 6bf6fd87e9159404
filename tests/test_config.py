"""Experiment configs: YAML -> frozen dataclasses, per-key errors, overrides, the config hash."""
import dataclasses
import hashlib
import json
from dataclasses import MISSING

import pytest
import yaml
from support.cli import call_main

from fairseg_bench.config import (
    PRESET_DIR,
    SECTIONS,
    ExperimentConfig,
    config_from_dict,
    config_hash,
    dump_config,
    load_config,
    preset_names,
    resolve_config_path,
)
from fairseg_bench.errors import UserError

PRESETS = sorted(PRESET_DIR.glob("*.yaml"))
# Run folders (reports/*/runs) and the CI baseline (reports/ci/baseline.json) are keyed by these
# hashes: a preset edit that changes one must be deliberate.
PRESET_HASHES = {
    "ade20k_dlv3p_r101": "8881441eddb88588d2d0040405ccd7cd4e479743891d8811075ed05e1e098b73",
    "camvid": "4de72997a0a9d1ea5572a36d2fdefbc32aaf543d0918cdf4318f5af053e47520",
    "ci": "1a6581cefe8789f22fc87296d9fbf88d507dd1a9113a3c3b15023326401d16ee",
    "cityscapes_dlv3p_r101": "b8f1a4deaea0191e03df881a47d7db6a1e0bcdc29a389778368cf9a1c3a811ed",
    "quick": "f77a132108e3c771af4fb47c2b99d13d451eb7ba8d5f6f2f22a62fd05f0e9bc0",
    "quick-long": "440a041c9553e503f3b8e11923562b6e90fe6e4f04d96bc64cd71fa69ccd480e",
    "trained": "ca46c35daf52c88f3ec471525730f81bbc1397d3947cd8b7a22913ef190b6453",
    "voc_dlv3p_r101": "a3e6532428df3b955f10ad68812d71957b6d7fb20dc5f396aca1dce8354b7d8e",
}


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
    assert (cfg.optim.name, cfg.optim.lr, cfg.train.batch_size, cfg.train.iters) == ("adam", 6e-3, 4, 3000)
    assert (cfg.model.name, cfg.train.amp) == ("unet_add", "auto")
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
    assert load_config(write(tmp_path, "", "empty.yaml")) == load_config("quick").override(name="empty")


def test_presets_keep_their_config_hashes():
    assert {name: config_hash(load_config(name)) for name in preset_names()} == PRESET_HASHES
    assert json.loads((PRESET_DIR.parents[1] / "reports" / "ci" / "baseline.json").read_text())["config_hash"] == \
        PRESET_HASHES["ci"]


def _defaulted(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.default is not MISSING or f.default_factory is not MISSING}


def test_the_quick_preset_is_the_one_source_of_the_experiments_defaults():
    """The dataclasses default only where and how runs go; every other key comes from the quick preset."""
    assert _defaulted(ExperimentConfig) == {"name", "out", "device", "quiet", "launcher"}
    assert all(not _defaulted(cls) for name, cls in SECTIONS.items() if name != "launcher")
    assert config_from_dict({}) == load_config("quick").override(name="experiment")
    raw = yaml.safe_load((PRESET_DIR / "quick.yaml").read_text())
    assert "base" not in raw and set(raw) == {"losses", "seeds", *SECTIONS} - {"launcher"}
    for name, section in raw.items():  # states every key, so nothing falls back to a second source
        if name in SECTIONS:
            assert set(section) == {f.name for f in dataclasses.fields(SECTIONS[name])}, name


def test_base_lays_a_file_over_a_preset(tmp_path):
    """Mappings merge key by key, lists and values replace; the name stays the file's own."""
    cfg = load_config(write(tmp_path, "base: ci\nlosses: [mcce]\ndata: {train_options: {num_images: 10}}\n"))
    ci = load_config("ci")
    assert cfg.name == "x" and cfg.losses == ("mcce",)
    assert cfg.data.train_options == {**ci.data.train_options, "num_images": 10}
    assert (cfg.train, cfg.optim, cfg.device) == (ci.train, ci.optim, "cpu")
    assert load_config(write(tmp_path, "base: ci\ndata:\n")) == ci.override(name="x")  # an empty section


def test_another_dataset_starts_its_options_from_none(tmp_path):
    cfg = load_config(write(tmp_path, "data: {dataset: cityscapes, train_options: {crop_size: [8, 8]}}\n"))
    assert cfg.data.train_options == {"crop_size": [8, 8]} and cfg.data.val_options == {}
    assert load_config("voc_dlv3p_r101").data.val_options == {}  # based on cityscapes, its options left behind


@pytest.mark.parametrize("text, message", [
    ("base: nope", "x.yaml: base nope: no such preset (presets: "),
    ("base: [ci]", "x.yaml: base must be a preset name, got ['ci']"),
])
def test_bad_base_is_one_line(tmp_path, text, message):
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert str(info.value).startswith(str(tmp_path / message)) and "\n" not in str(info.value)


def test_a_base_chain_that_comes_back_is_an_error(tmp_path, monkeypatch):
    import fairseg_bench.config as config

    write(tmp_path, "base: b\n", "a.yaml")
    write(tmp_path, "base: a\n", "b.yaml")
    write(tmp_path, (PRESET_DIR / "quick.yaml").read_text(), "quick.yaml")
    monkeypatch.setattr(config, "PRESETS", tmp_path)
    with pytest.raises(UserError, match=r"^preset a: base a -> b -> a comes back to itself$"):
        load_config("a")


def test_a_loss_list_means_the_same_as_yaml_string_yaml_list_and_option(tmp_path, capsys, monkeypatch):
    """One parser (loss_specs.split_loss_list): a key=value part without ':' stays with its spec."""
    specs = ("mcce", "tce:t=1,gamma=0.1", "focal")
    text = "mcce,tce:t=1,gamma=0.1,focal"
    assert load_config(write(tmp_path, f"losses: '{text}'\n")).losses == specs
    assert load_config(write(tmp_path, "losses: [mcce, 'tce:t=1,gamma=0.1', focal]\n")).losses == specs
    built, override = [], ExperimentConfig.override

    def stop_once_built(cfg, **options):  # the config `run --losses` builds, before any training
        built.append(override(cfg, **options))
        raise UserError("built")

    monkeypatch.setattr(ExperimentConfig, "override", stop_once_built)
    code, _, err = call_main(capsys, "run", "--losses", text, "--out", tmp_path / "runs")
    assert (code, err) == (2, "error: built\n") and built[0].losses == specs


def test_seeds_are_a_list_or_one_string_as_the_option_takes_them(tmp_path):
    assert load_config(write(tmp_path, "seeds: '0, 2,5'\n")).seeds == (0, 2, 5)
    assert load_config("quick").override(seeds="3,4").seeds == (3, 4)
    for bad in ("'0,0'", "'a'", "''", "'-1'"):
        with pytest.raises(UserError, match="seeds must be a non-empty list of distinct non-negative integers"):
            load_config(write(tmp_path, f"seeds: {bad}\n"))


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
