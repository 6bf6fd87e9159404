"""Evaluating a prediction folder: ``evaluate --predictions`` against cityscapesScripts'
``evalPixelLevelSemanticLabeling``, as whole processes (start-up included) and in one process,
and against the decode limit, all on one generated folder, in one run.

The folder is a Cityscapes val split of 1024x2048 labelId PNGs, Cityscapes-shaped as in
``bench_confusion.py`` (32-px blocks of every labelId, the ignored ones included) with predictions
wrong in ~20 % of 16-px blocks, written once to a temporary folder. Five methods, alternating in
every round (the order rotates); the table gives the median over the rounds:

- ``fairseg-bench process``: ``python -m fairseg_bench evaluate --predictions ... --quiet`` (imports,
  matching, worker pool, decoding, counting, the metrics.json write, the printed tables);
- ``cityscapesScripts process``: ``python -c`` running the evaluator's own ``main()`` on
  ``$CITYSCAPES_DATASET``/``$CITYSCAPES_RESULTS`` (its CLI, without instance-level scores, for which
  the folder has no instanceIds files), which prints its tables and writes its JSON;
- ``fairseg-bench``: ``evaluate_predictions`` in this process (as above, less start-up and tables);
- ``cityscapesScripts``: ``evaluateImgLists`` in this process on the same lists (no instance-level
  scores, no JSON, quiet; it counts in one process, as it always does);
- ``decode limit``: a pool of ``--workers`` processes that only decodes both PNGs of every pair.

Both evaluators' per-class IoUs are compared after the first round (they must agree to 1e-9).

    python benchmarks/bench_predictions.py                 # 160 pairs, 3 rounds, all cores
    python benchmarks/bench_predictions.py --pairs 48 --rounds 5 --workers 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

H, W = 1024, 2048


def label_map(rng: np.random.Generator) -> np.ndarray:
    """Cityscapes-shaped labelIds, as ``bench_confusion.py`` makes them: 32-px blocks of every labelId 0..33."""
    return np.kron(rng.integers(0, 34, (H // 32, W // 32)), np.ones((32, 32), np.int64)).astype(np.uint8)


def prediction_of(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """The label, wrong (any labelId) in ~20 % of 16-px blocks."""
    wrong = np.kron(rng.random((H // 16, W // 16)) < 0.2, np.ones((16, 16), bool))
    other = np.kron(rng.integers(0, 34, (H // 16, W // 16)), np.ones((16, 16), np.int64)).astype(np.uint8)
    return np.where(wrong, other, label)


def make_folder(base: Path, pairs: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    data, preds = base / "data", base / "preds"
    for k in range(pairs):
        city = f"city{k % 3}"
        stem = f"{city}_{k:06d}_000019"
        label = label_map(rng)
        (data / "gtFine" / "val" / city).mkdir(parents=True, exist_ok=True)
        (preds / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(label).save(data / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(prediction_of(rng, label)).save(preds / city / f"{stem}_leftImg8bit.png")
    return data, preds


def _decode_pair(pair: tuple[str, str]) -> int:
    total = 0
    for path in pair:
        with Image.open(path) as img:
            total += np.asarray(img).shape[0]
    return total


def time_decode_limit(pairs: list[tuple[str, str]], workers: int) -> float:
    start = time.perf_counter()
    with mp.get_context("fork").Pool(workers) as pool:
        list(pool.imap(_decode_pair, pairs))  # one pair a task, as evaluate does
    return time.perf_counter() - start


def time_ours(data: Path, preds: Path, out: Path, workers: int) -> float:
    from fairseg_bench.predictions import evaluate_predictions

    start = time.perf_counter()
    evaluate_predictions(preds, dataset="cityscapes", root=data, out=out, workers=workers, quiet=True,
                         print_tables=False)
    return time.perf_counter() - start


def time_official(pairs: list[tuple[str, str]]) -> float:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    ev.args.evalInstLevelScore, ev.args.JSONOutput, ev.args.quiet = False, False, True
    start = time.perf_counter()
    ev.evaluateImgLists([p for _, p in pairs], [g for g, _ in pairs], ev.args)
    return time.perf_counter() - start


def _timed_process(cmd: list[str], env: dict) -> float:
    """Wall seconds of one command, its output discarded; a failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr}")
    return elapsed


def time_ours_process(data: Path, preds: Path, out: Path, workers: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return _timed_process([sys.executable, "-m", "fairseg_bench", "evaluate", "--predictions", str(preds),
                           "--dataset", "cityscapes", "--root", str(data), "--out", str(out),
                           "--workers", str(workers), "--quiet"], env)


# the evaluator's command line (main() finds the ground truth and the predictions itself), less the
# instance-level scores: the generated folder has no instanceIds files
OFFICIAL_MAIN = ("from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev; "
                 "ev.args.evalInstLevelScore = False; ev.main()")


def time_official_process(data: Path, preds: Path, export: Path) -> float:
    env = {**os.environ, "CITYSCAPES_DATASET": str(data), "CITYSCAPES_RESULTS": str(preds),
           "CITYSCAPES_EXPORT_DIR": str(export)}
    return _timed_process([sys.executable, "-c", OFFICIAL_MAIN], env)


def check_agreement(ours: Path, official: Path) -> float:
    """Largest per-class IoU difference between our metrics.json and the evaluator's JSON."""
    from fairseg_bench.data.label_sets import CITYSCAPES_CLASSES

    mine = json.loads(ours.read_text())["iou"]
    theirs = json.loads(official.read_text())["classScores"]
    diff = max(abs((a if a is not None else float("nan")) - theirs[c]) for c, a in zip(CITYSCAPES_CLASSES, mine))
    if not diff <= 1e-9:
        raise SystemExit(f"the two evaluators disagree: largest per-class IoU difference {diff}")
    return diff


def print_table(seconds: dict[str, list[float]], pairs: int, rounds: int) -> None:
    """Median wall seconds and pairs/s per method; processes are compared with processes."""
    med = {name: statistics.median(v) for name, v in seconds.items()}
    print(f"\n| method | seconds (median of {rounds}) | pairs/s | rounds (s) | vs cityscapesScripts |")
    print("|---|---:|---:|---|---:|")
    for name, value in med.items():
        peer = "cityscapesScripts process" if name.endswith("process") else "cityscapesScripts"
        print(f"| {name} | {value:.2f} | {pairs / value:.1f} | {', '.join(f'{v:.2f}' for v in seconds[name])} | "
              f"{med[peer] / value:.2f}x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    args = parser.parse_args(argv)
    from fairseg_bench.predictions import default_workers

    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="bench_predictions_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        data, preds = make_folder(tmp, args.pairs)
        gts = sorted((data / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
        pairs = [(str(g), str(preds / g.parent.name / g.name.replace("_gtFine_labelIds", "_leftImg8bit")))
                 for g in gts]
        size = np.mean([os.path.getsize(p) for pair in pairs for p in pair]) / 1024
        print(f"{args.pairs} pairs of {W}x{H} label PNGs (mean {size:.0f} KiB) written in "
              f"{time.perf_counter() - t0:.0f} s; {workers} workers; load average {os.getloadavg()[0]:.1f}")
        export = tmp / "official"
        export.mkdir()
        methods = {
            "fairseg-bench process": lambda: time_ours_process(data, preds, tmp / "proc" / "metrics.json", workers),
            "cityscapesScripts process": lambda: time_official_process(data, preds, export),
            "fairseg-bench": lambda: time_ours(data, preds, tmp / "out" / "metrics.json", workers),
            "cityscapesScripts": lambda: time_official(pairs),
            "decode limit": lambda: time_decode_limit(pairs, workers),
        }
        seconds: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every round
                seconds[name].append(methods[name]())
            if r == 0:
                diff = check_agreement(tmp / "proc" / "metrics.json", export / "resultPixelLevelSemanticLabeling.json")
                print(f"per-class IoU, fairseg-bench vs cityscapesScripts: largest difference {diff:.1e}")
        print_table(seconds, args.pairs, args.rounds)
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
