"""The precision rule of ``train.amp`` (``fairseg_bench.precision``) with the hardware mocked both ways,
its record in ``metrics.json``, and ``fairseg-bench doctor``."""
from __future__ import annotations

import json

import pytest
import torch

from fairseg_bench import precision as pr
from fairseg_bench.cli import main

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.fixture
def cpu_with(monkeypatch):
    """Mock the CPU: ``cpu_with(bf16_isa=True, onednn=True, cap=None, machine="x86_64")``."""
    def set_cpu(*, bf16_isa: bool, onednn: bool = True, amx: bool = False, cap: str | None = None,
                machine: str = "x86_64"):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_isa)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(pr.platform, "machine", lambda: machine)
        monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
        if cap is None:
            monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    return set_cpu


@pytest.fixture
def gpu_with(monkeypatch):
    """Mock a CUDA device with or without native bfloat16."""
    def set_gpu(*, bf16: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    return set_gpu


@pytest.mark.parametrize("kw, native", [
    ({"bf16_isa": True}, True),                        # AVX512-BF16 (Zen 4, Cooper Lake)
    ({"bf16_isa": False, "amx": True}, True),          # AMX (Sapphire Rapids)
    ({"bf16_isa": False, "onednn": False}, False),     # AVX2 only: oneDNN says no
    ({"bf16_isa": False, "onednn": True}, False),      # plain AVX512: oneDNN says yes but emulates it
    ({"bf16_isa": True, "onednn": False}, False),      # oneDNN capped (e.g. ONEDNN_MAX_CPU_ISA=AVX2)
    ({"bf16_isa": True, "cap": "AVX512_CORE"}, False),  # a cap below AVX512-BF16 emulates it
    ({"bf16_isa": True, "cap": "avx512_core_amx"}, True),
    ({"bf16_isa": False, "machine": "aarch64"}, True),  # Arm: oneDNN's check is the BF16 extension
    ({"bf16_isa": False, "onednn": False, "machine": "arm64"}, False),
])
def test_cpu_bf16_native_follows_torch_and_onednn(cpu_with, kw, native):
    cpu_with(**kw)
    assert pr.cpu_bf16_native() is native


@pytest.mark.parametrize("native, dtype", [(True, torch.bfloat16), (False, None)])
def test_auto_on_cpu_is_bf16_only_where_native(cpu_with, native, dtype):
    cpu_with(bf16_isa=native, onednn=native)
    p = pr.resolve_precision("auto", CPU)
    assert (p.dtype, p.native, p.grad_scaler) == (dtype, True, False)
    assert p.record() == {"amp": "auto", "autocast": "bfloat16" if native else "float32", "native": True,
                          "grad_scaler": False, "device": "cpu"}


@pytest.mark.parametrize("bf16, dtype, scaler", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_auto_on_cuda_is_bf16_where_supported_else_fp16_with_the_scaler(gpu_with, bf16, dtype, scaler):
    gpu_with(bf16=bf16)
    p = pr.resolve_precision("auto", CUDA)
    assert (p.dtype, p.native, p.grad_scaler) == (dtype, True, scaler)


def test_explicit_values(cpu_with, gpu_with):
    cpu_with(bf16_isa=False, onednn=False)
    gpu_with(bf16=False)
    assert pr.resolve_precision(False, CUDA).dtype is None
    assert pr.resolve_precision(True, CPU).dtype is None  # float16 on CPU is slow: float32
    assert pr.resolve_precision(True, CUDA).dtype == torch.float16
    assert pr.resolve_precision("auto", MPS).dtype is None
    emulated = pr.resolve_precision("bf16", CPU)
    assert (emulated.dtype, emulated.native) == (torch.bfloat16, False)
    assert pr.resolve_precision("bf16", CUDA).native is False  # a pre-Ampere GPU


def test_explicit_bf16_on_an_emulating_cpu_warns_once(cpu_with, monkeypatch):
    cpu_with(bf16_isa=False, onednn=False)
    monkeypatch.setattr(pr, "_warned", set())
    p = pr.resolve_precision("bf16", CPU)
    first = pr.emulation_warning(p)
    assert "emulated" in first and "auto would train in float32" in first
    assert pr.emulation_warning(p) is None
    cpu_with(bf16_isa=True)
    assert pr.emulation_warning(pr.resolve_precision("bf16", CPU)) is None


def test_run_warns_and_records_the_precision(tmp_path, cpu_with, capsys, monkeypatch):
    """An explicit bf16 on an emulating CPU trains, with one warning; metrics.json says what ran."""
    from fairseg_bench.config import config_from_dict, load_config
    from fairseg_bench.results import read_record
    from fairseg_bench.runner import parse_losses, prepare, run_one

    cpu_with(bf16_isa=False, onednn=False)
    monkeypatch.setattr(pr, "_warned", set())
    raw = load_config("ci").override(out=str(tmp_path), quiet=True, losses=["mcce"]).resolved_dict()
    raw["data"].update(train_options={"num_images": 16, "size": [32, 64], "seed": 0},
                       val_options={"num_images": 4, "size": [32, 64], "seed": 0})
    raw["train"].update(iters=2, batch_size=2, checkpoint_every=2, amp="bf16")
    raw["eval"].update(batch_size=4, samples=0)
    cfg = config_from_dict(raw)
    exp = prepare(cfg)
    run_one(exp, parse_losses(cfg)[0], 0)
    record = read_record(exp.folder / "mcce-s0")
    assert record["precision"] == {"amp": "bf16", "autocast": "bfloat16", "native": False,
                                   "grad_scaler": False, "device": "cpu"}
    err = capsys.readouterr().err
    assert err.count("warning: train.amp: bf16 runs bfloat16 (emulated") == 1


def test_doctor_json_and_screen(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["doctor", "--json", "--no-bench"])
    assert exit_.value.code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cpu"]["bf16_native"] == pr.cpu_bf16_native()
    assert info["cpu"]["cores"] >= 1 and info["torch"] == torch.__version__
    expected = "bfloat16" if pr.cpu_bf16_native() else "float32"
    assert info["presets"]["quick"]["precision"] == expected
    assert info["presets"]["ci"]["precision"] == "float32"  # the gate trains in float32 everywhere
    with pytest.raises(SystemExit):
        main(["doctor", "--no-bench"])
    screen = capsys.readouterr().out
    assert "AVX512-BF16" in screen and "quick" in screen and ("native" in screen or "emulated" in screen)


def test_doctor_benchmark_predicts_make_run(monkeypatch):
    from fairseg_bench import doctor

    monkeypatch.setattr(doctor, "step_seconds", lambda dtype, **kw: 0.1 if dtype is None else 0.05)
    bench = doctor.step_benchmark(cores=2)
    step = bench["seconds_per_step"][bench["chosen"]]
    assert bench["make_run_seconds"] == pytest.approx(3 * bench["steps_per_run"] * step / 2
                                                      + doctor.MAKE_RUN_OVERHEAD_S)
