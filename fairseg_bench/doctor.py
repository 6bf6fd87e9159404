"""What this machine will do with fairseg-bench: CPU, precision, devices, and a short step benchmark.

:func:`diagnose` gathers it as one JSON-able dict (``fairseg-bench doctor --json``); the CLI
prints it as one screen. The step benchmark trains the default preset's model on a synthetic
batch in one thread (as ``make run``'s single-thread processes do), in float32 and in the
precision ``train.amp: auto`` picks here, and predicts ``make run``'s wall time from it.
"""
from __future__ import annotations

import os
import platform
import time
from importlib import metadata

import torch

from fairseg_bench import __version__
from fairseg_bench.config import list_presets, load_config
from fairseg_bench.precision import cpu_bf16_native, cpu_isa, resolve_precision

# make run: 3 losses, one single-thread process each (Makefile), plus what is not training:
# interpreter and torch start-up, synthetic data, evaluation, checkpoints and the report.
MAKE_RUN_LOSSES = 3
# measured: make run's wall time minus 3 x the steps x the step time / 2 cores, on 2 idle cores (36 s
# with ONEDNN_MAX_CPU_ISA=AVX2, 32 s with native bfloat16, at 3,000 steps; benchmarks/README.md): the
# start-up, the drawing of the data, evaluation and the report
MAKE_RUN_OVERHEAD_S = 35.0


def cpu_model() -> str:
    """The CPU's marketing name (display only), or the architecture when the OS does not say."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not on every OS
        return None


def devices() -> dict:
    """CUDA devices (name, bfloat16 support) and whether MPS is available."""
    cuda = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            cuda.append({"index": i, "name": torch.cuda.get_device_name(i),
                         "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))})
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {"cuda": cuda, "mps": mps, "torch_cuda_build": torch.version.cuda}


def preset_precisions() -> dict[str, dict]:
    """For each packaged preset: the device it would run on here and the precision it would train in."""
    out = {}
    for name in list_presets():
        cfg = load_config(name)
        device = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
        precision = resolve_precision(cfg.train.amp, device)
        out[name] = {"device": device.type, "amp": cfg.train.amp, "precision": precision.name,
                     "native": precision.native, "model": cfg.model.name, "steps": cfg.train.iters}
    return out


def training_step(dtype: torch.dtype | None, *, model_name: str, batch: int, size: tuple[int, int]):
    """One training step of ``model_name`` as ``run`` takes it, as a callable: channels_last, autocast
    ``dtype`` (None: float32), the library's MCCE, Adam, on a fixed synthetic batch."""
    from fairseg_bench import engine
    from fairseg_bench.data import build_dataset
    from fairseg_bench.loss_specs import build_loss
    from fairseg_bench.models import build_model

    ds = build_dataset("synthetic", split="train", num_images=batch, size=list(size), seed=0)
    images = torch.stack([ds[i][0] for i in range(batch)]).contiguous(memory_format=torch.channels_last)
    target = torch.stack([ds[i][1] for i in range(batch)])
    torch.manual_seed(0)
    model = engine.to_channels_last(build_model(model_name, num_classes=ds.num_classes))
    criterion = build_loss("mcce", num_classes=ds.num_classes, ignore_index=255, class_pixel_counts=None)
    optimizer = engine.build_optimizer(model, "adam", 1e-3)

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            logits = model(images)
        loss = criterion(engine.loss_input(logits, criterion), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_seconds(dtype: torch.dtype | None, *, model_name: str, batch: int, size: tuple[int, int],
                 steps: int = 5) -> float:
    """Mean seconds per :func:`training_step` (after 2 warm-up steps) in one thread."""
    step = training_step(dtype, model_name=model_name, batch=batch, size=size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(2):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - start) / steps
    finally:
        torch.set_num_threads(threads)


def step_benchmark(cores: int, steps: int = 5) -> dict:
    """The default preset's step in float32 and in ``auto``'s CPU precision; ``make run``'s predicted wall time."""
    cfg = load_config("quick")
    size = tuple(cfg.data.train_options.get("size", (64, 128)))
    chosen = resolve_precision("auto", torch.device("cpu"))
    common = {"model_name": cfg.model.name, "batch": cfg.train.batch_size, "size": size, "steps": steps}
    times = {"float32": step_seconds(None, **common)}
    if chosen.dtype is not None:
        times[chosen.name] = step_seconds(chosen.dtype, **common)
    per_run = cfg.train.iters * times[chosen.name]
    parallel = max(1, min(cores, MAKE_RUN_LOSSES))
    predicted = MAKE_RUN_LOSSES * per_run / parallel + MAKE_RUN_OVERHEAD_S
    return {"model": cfg.model.name, "batch": cfg.train.batch_size, "size": list(size), "threads": 1,
            "seconds_per_step": times, "chosen": chosen.name, "steps_per_run": cfg.train.iters,
            "make_run_seconds": predicted}


def diagnose(bench: bool = True) -> dict:
    """Everything ``fairseg-bench doctor`` shows, as a JSON-able dict."""
    cores = os.cpu_count() or 1
    isa = cpu_isa()
    info = {
        "fairseg_bench": __version__, "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": _package_version("torchvision"),
        "cpu": {"model": cpu_model(), "machine": platform.machine(), "cores": cores,
                "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), **isa,
                "bf16_native": cpu_bf16_native(), "load_average_1min": _load_average()},
        "devices": devices(),
        "presets": preset_precisions(),
    }
    if bench:
        info["step_benchmark"] = step_benchmark(cores)
    return info


_EMULATED = "emulated (~10x slower than float32): CPU runs train in float32"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render(info: dict) -> str:
    """One screen of text from :func:`diagnose`'s dict."""
    cpu, dev = info["cpu"], info["devices"]
    threads = f"torch uses {cpu['torch_threads']} thread(s)"
    if cpu["omp_num_threads"]:
        threads += f" (OMP_NUM_THREADS={cpu['omp_num_threads']})"
    cap = f", ONEDNN_MAX_CPU_ISA={cpu['onednn_max_cpu_isa']}" if cpu["onednn_max_cpu_isa"] else ""
    cuda = ", ".join(f"{d['index']}: {d['name']} (sm {d['capability']})" for d in dev["cuda"]) or "none"
    lines = [
        f"fairseg-bench {info['fairseg_bench']}, Python {info['python']}",
        f"CPU        {cpu['model']} ({cpu['machine']}), {cpu['cores']} cores; {threads}",
        f"ISA        AVX2 {_yes(cpu['avx2'])}, AVX512 {_yes(cpu['avx512'])}, AVX512-BF16 {_yes(cpu['avx512_bf16'])}, "
        f"AMX {_yes(cpu['amx'])}; ATen kernels {cpu['capability']}{cap}",
        f"bfloat16   {'native' if cpu['bf16_native'] else _EMULATED}",
        f"torch      {info['torch']} (CUDA build: {dev['torch_cuda_build'] or 'none'}), "
        f"torchvision {info['torchvision'] or 'not installed'}",
        f"devices    CUDA: {cuda}; MPS: {'available' if dev['mps'] else 'none'}",
        "presets    (train.amp -> the precision each trains in here)",
    ]
    width = max(map(len, info["presets"]), default=0)
    for name, p in info["presets"].items():
        native = "" if p["precision"] == "float32" else (" (native)" if p["native"] else " (emulated)")
        lines.append(f"  {name:<{width}}  {p['device']}, amp: {str(p['amp']).lower()} -> {p['precision']}{native}")
    bench = info.get("step_benchmark")
    load = cpu["load_average_1min"]
    busy = load is not None and load > 0.5
    if bench:
        times = ", ".join(f"{k} {v:.3f} s" for k, v in bench["seconds_per_step"].items())
        h, w = bench["size"]
        lines += [f"step       {bench['model']}, batch {bench['batch']} x {h}x{w}, one thread: {times} "
                  f"per step (auto picks {bench['chosen']})",
                  f"make run   ~{bench['make_run_seconds'] / 60:.1f} min predicted "
                  f"({MAKE_RUN_LOSSES} runs x {bench['steps_per_run']:,} steps, single-thread processes "
                  f"on {min(cpu['cores'], MAKE_RUN_LOSSES)} cores, idle)"]
        if busy:
            lines.append(f"           the machine is busy (load {load:.1f}): both figures are slower than idle")
    return "\n".join(lines)
