"""Packaged presets: ``-c NAME`` finds one, ``-c PATH`` a file, ``presets`` lists and shows them."""
import os
from pathlib import Path

import pytest
import yaml
from support.cli import call_main

from fairseg_bench.config import PRESET_DIR, list_presets, load_config, preset_description, preset_names, preset_text
from fairseg_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_presets_are_package_data_and_the_checkout_folder_links_to_them():
    assert PRESET_DIR == ROOT / "fairseg_bench" / "presets"
    assert preset_names() == sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    experiments = ROOT / "experiments"
    assert experiments.is_symlink() and os.readlink(experiments) == "fairseg_bench/presets"
    assert sorted(p.name for p in experiments.glob("*.yaml")) == sorted(p.name for p in PRESET_DIR.glob("*.yaml"))


def test_every_preset_has_a_one_line_description():
    described = list_presets()
    assert {"quick", "quick-long", "ci", "cityscapes_dlv3p_r101"} <= set(described)
    for name, description in described.items():
        assert description and "\n" not in description and len(description) <= 110, name


def test_description_is_the_first_line_of_the_leading_comment():
    assert preset_description("# One line.\n#\n# More.\nlosses: [mcce]\n") == "One line."
    assert preset_description("#\n#   Indented.\nseeds: [0]\n") == "Indented."
    assert preset_description("losses: [mcce]  # not leading\n") == ""
    assert preset_description("") == ""


def test_name_finds_the_preset_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no experiments/ folder here
    cfg = load_config("quick")
    assert cfg.name == "quick" and cfg == load_config(PRESET_DIR / "quick.yaml")


def test_path_finds_a_file_and_never_a_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("train: {iters: 3}\n")
    assert load_config("mine.yaml").train.iters == 3
    assert load_config(tmp_path / "mine.yaml").name == "mine"
    with pytest.raises(UserError, match=r"^quick\.yaml: no such config file \(presets: .*quick"):
        load_config("quick.yaml")  # a path: not the preset, even though one is named quick
    hint = r"; the packaged preset is '-c ci'$"
    with pytest.raises(UserError, match=r"^experiments/ci\.yaml: no such config file .*" + hint):
        load_config("experiments/ci.yaml")
    with pytest.raises(UserError, match=r"^mine/other\.yaml: no such config file \(presets: [^)]*\)$"):
        load_config("mine/other.yaml")


def test_unknown_name_lists_the_presets():
    with pytest.raises(UserError, match=r"^nope: no such config file or preset \(presets: .*quick-long"):
        load_config("nope")
    with pytest.raises(UserError, match=r"^nope: no such preset \(presets: .*quick"):
        preset_text("nope")


def test_preset_errors_name_the_preset(monkeypatch, tmp_path):
    import fairseg_bench.config as config

    (tmp_path / "broken.yaml").write_text("# Broken.\ntrain: {iters: 0}\n")
    (tmp_path / "quick.yaml").write_text(preset_text("quick"))  # every config's defaults
    monkeypatch.setattr(config, "PRESETS", tmp_path)
    with pytest.raises(UserError, match=r"^preset broken: train\.iters must be a positive integer"):
        load_config("broken")


def test_cli_lists_presets_with_descriptions(capsys):
    code, out, err = call_main(capsys, "presets")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    quick = next(line for line in lines if line.split()[0] == "quick")
    assert quick.endswith(list_presets()["quick"])


def test_cli_show_prints_the_yaml_to_copy(capsys, tmp_path):
    code, out, err = call_main(capsys, "presets", "show", "quick")
    assert code == 0, err
    assert out == preset_text("quick")
    copy = tmp_path / "edited.yaml"
    copy.write_text(out)
    assert load_config(copy) == load_config("quick").override(name="edited")
    assert yaml.safe_load(out)["losses"] == ["mcce", "focal", "tce"]


def test_cli_show_of_a_based_preset_runs_as_saved(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = call_main(capsys, "presets", "show", "ci")
    assert code == 0, err
    assert "base: quick" in out.splitlines()
    (tmp_path / "mine.yaml").write_text(out)
    assert load_config("mine.yaml") == load_config("ci").override(name="mine")


def _leaves(mapping: dict, path: tuple = ()):
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key), value


def _at(mapping: dict, path: tuple):
    for key in path:
        mapping = mapping.get(key, KeyError) if isinstance(mapping, dict) else KeyError
    return mapping


@pytest.mark.parametrize("name", [n for n in preset_names() if n != "quick"])
def test_each_preset_states_only_what_differs_from_its_base(name):
    """``base: NAME`` and the keys that differ from it (a new dataset's options start from none)."""
    raw = yaml.safe_load(preset_text(name))
    base = load_config(raw.pop("base")).resolved_dict()
    new_dataset = _at(raw, ("data", "dataset")) not in (KeyError, base["data"]["dataset"])
    for path, value in _leaves(raw):
        if new_dataset and path[:2] in {("data", "train_options"), ("data", "val_options")}:
            continue
        assert _at(base, path) != value, f"{name}: {'.'.join(path)} repeats its base's {value!r}"


def test_cli_show_unknown_preset_is_one_error_line(capsys):
    code, out, err = call_main(capsys, "presets", "show", "nope")
    assert code == 2 and out == ""
    assert err.startswith("error: nope: no such preset (presets: ") and len(err.strip().splitlines()) == 1
