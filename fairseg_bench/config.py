"""Experiment configs: frozen dataclasses read from YAML, checked key by key, overridable.

A config file has the sections ``data``, ``model``, ``optim``, ``train``, ``eval`` and
``launcher`` (where the runs go: this machine or a Slurm cluster; not hashed) and the
top-level keys ``name``, ``losses``, ``seeds``, ``out``, ``device`` and ``quiet``. An unknown key
or a bad value is a ``UserError`` naming the file and the key. Command-line options override the
file through :meth:`ExperimentConfig.override`; the resolved config is saved beside every run.

Defaults have one source each. What an experiment trains and measures (losses, seeds, data,
model, optim, train, eval) comes from the packaged ``quick`` preset, the default benchmark:
every config is laid over it, or over the preset its ``base: NAME`` key names (a preset may name
another in turn). Laying merges mappings key by key and replaces everything else, lists included;
the file's ``name`` is its own, and a dataset's options belong to it, so a config naming another
dataset starts its ``train_options`` and ``val_options`` from none. Where and how the runs go
(``name``, ``out``, ``device``, ``quiet``, ``launcher``) has its defaults in the dataclasses below.

Presets ship inside the package (``fairseg_bench/presets/*.yaml``, read through
``importlib.resources`` so they work from an installed wheel; a checkout also shows them as
``experiments/``, a link to that folder). A preset's description is the first line of its leading
comment.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import MISSING, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from fairseg_bench.errors import UserError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

# The packaged presets: read through importlib.resources; PRESET_DIR is the same folder on disk.
PRESETS: Traversable = resources.files("fairseg_bench").joinpath("presets")
PRESET_DIR = Path(__file__).resolve().parent / "presets"
# Keys that vary between the runs of one experiment or only say where/how to run: not hashed.
UNHASHED_KEYS = ("losses", "seeds", "out", "device", "quiet", "launcher")
# The preset every config without a ``base`` is laid over: the default benchmark.
DEFAULTS = "quick"
# The keyword arguments of one dataset's builder: they never carry over to another dataset.
DATASET_OPTIONS = ("train_options", "val_options")


# ----------------------------------------------------------------------------- value checks
# Each check returns the (normalised) value, or a Bad naming what was expected.
class Bad(str):
    """What a value should have been (returned by a check instead of the value)."""


def _positive_int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else Bad("a positive integer")


def _non_negative_int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else Bad("a non-negative integer")


def _number_within(lo=None, hi=None, lo_open=False):
    def check(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        ok = ok and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or v <= hi)
        bounds = f" {'>' if lo_open else '>='} {lo}" if lo is not None else ""
        bounds += f" and <= {hi}" if hi is not None else ""
        return float(v) if ok else Bad(f"a number{bounds}")
    return check


def _bool(v):
    return v if isinstance(v, bool) else Bad("true or false")


def _amp(v):
    return v if isinstance(v, bool) or v in ("auto", "bf16") else Bad("auto, bf16, true or false")


def _string(v):
    return v if isinstance(v, str) and v.strip() else Bad("a non-empty string")


def _optional_string(v):
    return v if v is None or (isinstance(v, str) and v.strip()) else Bad("a path or null")


def _choice(*choices):
    return lambda v: v if v in choices else Bad(f"one of {', '.join(choices)}")


def _optional_positive_int(v):
    return v if v is None else _positive_int(v)


def _optional_positive_number(v):
    ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)
    return v if ok else Bad("a positive number or null")


def _mapping(v):
    return dict(v) if isinstance(v, dict) else Bad("a mapping of options")


def _loss_list(v):
    """Loss specs: a YAML list or one string, each item read as ``--losses`` is (``"tce:t=1,gamma=0.1"``
    is one spec)."""
    from fairseg_bench.loss_specs import split_loss_list

    items = [v] if isinstance(v, str) else v
    ok = isinstance(items, (list, tuple)) and all(isinstance(s, str) for s in items)
    specs = tuple(spec for item in items for spec in split_loss_list(item)) if ok else ()
    return specs or Bad("a non-empty list of strings")


def _seed_list(v):
    """Seeds: a YAML list, or one string as ``--seeds`` takes it (``"0,1,2"``); a Bad if not distinct and >= 0."""
    if isinstance(v, str):
        parts = [s.strip() for s in v.split(",") if s.strip()]
        v = [int(s) for s in parts] if all(s.isdigit() for s in parts) else None
    ok = isinstance(v, (list, tuple)) and v and all(_non_negative_int(s) == s for s in v)
    return tuple(v) if ok and len(set(v)) == len(v) else Bad("a non-empty list of distinct non-negative integers")


def _checked(check, default=MISSING):
    """A dataclass field carrying its value check; without a default, the ``quick`` preset gives it."""
    return field(metadata={"check": check}, default=default)


# ----------------------------------------------------------------------------- sections
# Fields without a default take the quick preset's value (DEFAULTS); kw_only lets them follow those with one.
@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Which dataset, where, and the options ``build_dataset`` gets for each split."""

    dataset: str = _checked(_string)
    root: str | None = _checked(_optional_string)
    train_options: dict = _checked(_mapping)
    val_options: dict = _checked(_mapping)
    eval_split: str = _checked(_string)  # the split a run is evaluated on at the end (val_options apply)
    num_workers: int = _checked(_non_negative_int)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Model builder name and whether to load pretrained backbone weights."""

    name: str = _checked(_string)
    pretrained: bool = _checked(_bool)


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """Optimizer and poly learning-rate schedule."""

    name: str = _checked(_choice("sgd", "adam", "adamw"))
    lr: float = _checked(_number_within(0, lo_open=True))
    momentum: float = _checked(_number_within(0, 1))
    weight_decay: float = _checked(_number_within(0))
    poly_power: float = _checked(_number_within(0))


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training budget: iterations, total batch size (over all ranks), checkpoints, precision."""

    iters: int = _checked(_positive_int)
    batch_size: int = _checked(_positive_int)
    checkpoint_every: int = _checked(_positive_int)
    # auto: what the hardware runs natively (bfloat16 on CPUs with AVX512-BF16/AMX and on GPUs that
    # have it, float16 + GradScaler on older GPUs, float32 elsewhere; fairseg_bench.precision);
    # bf16: bfloat16 on every device; true: float16 + GradScaler on CUDA, float32 on CPU; false: float32
    amp: bool | str = _checked(_amp)
    channels_last: bool = _checked(_bool)  # training on every device; CPU evaluation stays NCHW


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Evaluation batch size and how many validation images to keep for figures."""

    batch_size: int = _checked(_positive_int)
    samples: int = _checked(_non_negative_int)


@dataclass(frozen=True)
class LauncherConfig:
    """Where the runs of a sweep go (``fairseg_bench.launch``); the ``run`` options override it.

    ``name``: ``process`` (this machine: ``jobs`` processes, one run each, in-process when 1),
    ``local`` (submitit's local executor) or ``slurm`` (one submitit job array per sweep).
    ``jobs``: runs at once (default: the number of GPUs, or 1 on CPU; on Slurm, the array's
    parallelism). The rest are Slurm resources per run: ``time`` in minutes, ``mem`` in GB.
    """

    name: str = _checked(_choice("process", "local", "slurm"), "process")
    jobs: int | None = _checked(_optional_positive_int, None)
    partition: str | None = _checked(_optional_string, None)
    account: str | None = _checked(_optional_string, None)
    gpus_per_run: int = _checked(_non_negative_int, 1)
    nodes: int = _checked(_positive_int, 1)
    cpus_per_run: int | None = _checked(_optional_positive_int, None)
    time: float = _checked(_number_within(0, lo_open=True), 24 * 60)
    mem: float | None = _checked(_optional_positive_number, None)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "train": TrainConfig, "eval": EvalConfig,
            "launcher": LauncherConfig}


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """One experiment: every loss × seed trained with the same data, model and budget."""

    name: str = _checked(_string, "experiment")
    losses: tuple = _checked(_loss_list)
    seeds: tuple = _checked(_seed_list)
    out: str = _checked(_string, "runs")
    device: str = _checked(_choice("auto", "cpu", "cuda"), "auto")
    quiet: bool = _checked(_bool, False)
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    train: TrainConfig
    eval: EvalConfig
    launcher: LauncherConfig = field(default_factory=LauncherConfig)

    def override(self, **options) -> ExperimentConfig:
        """Apply command-line overrides (None = keep): losses, seeds, data_root, out, device,
        iters, batch_size, quiet, and ``launcher`` (a mapping merged into that section)."""
        options = {k: v for k, v in options.items() if v is not None}
        top = {k: options.pop(k) for k in ("losses", "seeds", "out", "device", "quiet", "name") if k in options}
        raw = self.resolved_dict()
        raw.update(top)
        raw["launcher"].update({k: v for k, v in options.pop("launcher", {}).items() if v is not None})
        for key, (section, name) in {"data_root": ("data", "root"), "iters": ("train", "iters"),
                                     "batch_size": ("train", "batch_size")}.items():
            if key in options:
                raw[section][name] = options.pop(key)
        if options:
            raise UserError(f"unknown override(s): {', '.join(sorted(options))}")
        return config_from_dict(raw, source="command line")

    def resolved_dict(self) -> dict:
        """The full config as plain YAML/JSON types (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# ----------------------------------------------------------------------------- loading
def _build(cls, raw, source: str, prefix: str = ""):
    """Instantiate ``cls`` from a mapping, checking every key and value."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise UserError(f"{source}: unknown key {prefix}{unknown[0]} (valid: {', '.join(fields)})")
    missing = [name for name, f in fields.items() if name not in raw and f.default is f.default_factory is MISSING]
    if missing:  # only a defaults preset that lacks a key gets here
        raise UserError(f"{source}: missing key {prefix}{missing[0]}")
    values = {}
    for name, value in raw.items():
        if name in SECTIONS and cls is ExperimentConfig:
            values[name] = _build(SECTIONS[name], value or {}, source, f"{name}.")
            continue
        checked = fields[name].metadata["check"](value)
        if isinstance(checked, Bad):
            raise UserError(f"{source}: {prefix}{name} must be {checked}, got {value!r}")
        values[name] = checked
    return cls(**values)


def _merged(under: dict, over: dict) -> dict:
    """``over`` laid on ``under``: mappings merged key by key, anything else (a list too) replaced."""
    merged = dict(under)
    for key, value in over.items():
        if value is None and isinstance(merged.get(key), dict):
            continue  # an empty section ("data:" and nothing under it) lays nothing
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_mappings else value
    return merged


def _without_other_dataset_options(under: dict, over: dict) -> dict:
    """``under`` with empty dataset options when ``over`` names another dataset (options belong to theirs)."""
    data, under_data = over.get("data"), under.get("data")
    if not isinstance(data, dict) or not isinstance(under_data, dict):
        return under
    if data.get("dataset", under_data.get("dataset")) == under_data.get("dataset"):
        return under
    return {**under, "data": {**under_data, **dict.fromkeys(DATASET_OPTIONS, {})}}


def _parsed(text: str, source: str) -> dict:
    """The mapping a YAML text holds ({} when empty); bad YAML or another type is a ``UserError``."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise UserError(f"{source}: not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{source}: the file must be a mapping, got {raw!r}")
    return raw


def _base_preset(name, source: str, chain: tuple[str, ...]) -> dict:
    """The mapping of the preset a ``base`` key names, laid over its own base in turn."""
    if isinstance(_string(name), Bad):
        raise UserError(f"{source}: base must be a preset name, got {name!r}")
    if name in chain:
        raise UserError(f"{source}: base {' -> '.join((*chain, name))} comes back to itself")
    if name not in preset_names():
        raise UserError(f"{source}: base {name}: no such preset (presets: {', '.join(preset_names())})")
    return _layered(_parsed(preset_text(name), f"preset {name}"), source, (*chain, name))


def _layered(raw: dict, source: str, chain: tuple[str, ...] = ()) -> dict:
    """``raw`` laid over its ``base`` preset, or over the defaults (the quick preset as written).

    ``source`` is the file errors name; ``chain`` the presets laid so far (a preset's own name first).
    """
    raw = dict(raw)
    base = raw.pop("base", None)
    if base is None:
        under = _parsed(preset_text(DEFAULTS), f"preset {DEFAULTS}")
    else:
        under = _base_preset(base, source, chain)
    under.pop("name", None)  # a config's name is its own
    return _merged(_without_other_dataset_options(under, raw), raw)


def config_from_dict(raw: dict, source: str = "config") -> ExperimentConfig:
    """Build and check a config from a parsed mapping, laid over its base (default: the quick preset)."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: the file must be a mapping, got {raw!r}")
    return _build(ExperimentConfig, _layered(raw, source), source)


def preset_names() -> list[str]:
    """The names of the packaged presets, sorted (``quick``, ``ci``, ...)."""
    return sorted(p.name[: -len(".yaml")] for p in PRESETS.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of a packaged preset; an unknown name is a ``UserError`` listing the presets."""
    preset = PRESETS.joinpath(f"{name}.yaml")
    if not preset.is_file():
        raise UserError(f"{name}: no such preset (presets: {', '.join(preset_names()) or 'none found'})")
    return preset.read_text(encoding="utf-8")


def preset_description(text: str) -> str:
    """The first line of a YAML file's leading comment ('' when it has none)."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("#"):
            return ""
        if line.lstrip("#").strip():
            return line.lstrip("#").strip()
    return ""


def list_presets() -> dict[str, str]:
    """Every packaged preset's name with its one-line description."""
    return {name: preset_description(preset_text(name)) for name in preset_names()}


def _is_path(path_or_name: str | Path) -> bool:
    """A path (a folder part or a .yaml/.yml suffix, or an existing file), not a preset name."""
    text = str(path_or_name)
    return isinstance(path_or_name, Path) or "/" in text or "\\" in text or \
        text.endswith((".yaml", ".yml")) or Path(text).is_file()


def resolve_config_path(path_or_name: str | Path) -> Path:
    """A config file path (``-c PATH``); a missing one is a ``UserError`` listing the presets."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    names = preset_names()
    hint = f"; the packaged preset is '-c {path.stem}'" if path.stem in names else ""
    raise UserError(f"{path_or_name}: no such config file (presets: {', '.join(names) or 'none found'}){hint}")


def _read_config(path_or_name: str | Path) -> tuple[str, str, str]:
    """(YAML text, source named in errors, default experiment name) of a file or a preset."""
    if not _is_path(path_or_name):
        name = str(path_or_name)
        if name not in preset_names():
            raise UserError(f"{name}: no such config file or preset (presets: {', '.join(preset_names())})")
        return preset_text(name), f"preset {name}", name
    path = resolve_config_path(path_or_name)
    return path.read_text(encoding="utf-8"), str(path), path.stem


def load_config(path_or_name: str | Path) -> ExperimentConfig:
    """Read a YAML config file (``-c PATH``) or a packaged preset (``-c NAME``).

    The experiment name defaults to the file's stem (the preset's name).
    """
    text, source, stem = _read_config(path_or_name)
    raw = _parsed(text, source)
    raw.setdefault("name", stem)
    chain = () if _is_path(path_or_name) else (stem,)
    return _build(ExperimentConfig, _layered(raw, source, chain), source)


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML text (loadable again with ``load_config``)."""
    return yaml.safe_dump(cfg.resolved_dict(), sort_keys=False)


def config_hash(cfg: ExperimentConfig) -> str:
    """sha256 of the canonical JSON of the resolved config without losses, seeds, out, device, quiet."""
    resolved = {k: v for k, v in cfg.resolved_dict().items() if k not in UNHASHED_KEYS}
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
