"""Evaluate a folder of prediction PNGs against a dataset's labels; write a ``metrics.json`` like a run's.

How a pair is counted: both PNGs are decoded by Pillow (palette PNGs as indices) and their *raw*
values counted jointly with numpy as a 256 x 256 histogram (raw label value x raw predicted value,
:func:`joint_histogram`), with no lookup table applied to the maps (a lookup costs more than the
count). The histogram is then folded into the ``(K, K + 1)`` class matrix by the folder's lookup
tables (:mod:`fairseg_bench.data.prediction_folders`): ignored label values are dropped, void
predictions land in column ``K``, and a value outside the label set, in either file, is a one-line
error naming the file. From that matrix: the per-image TP/FP/FN kept for the bootstrap (as runs
keep them) and the dataset-level matrix. IoU is ``TP / (TP + FP + FN)`` with void predictions
counted as false negatives, which is cityscapesScripts' rule.

Pairs are counted in worker processes (``workers``, default all cores), in order, with a tqdm bar.
Nothing here imports torch: the command needs numpy and Pillow only, and starts in a fraction of a
second.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

from fairseg_bench.core.image_metrics import tp_fp_fn
from fairseg_bench.data.prediction_folders import PairList, decode_label_png, match_predictions
from fairseg_bench.errors import UserError

__all__ = ["count_pairs", "evaluate_predictions", "joint_histogram", "predictions_record", "PairCounter"]

_CHUNK = 1  # pairs per worker task: a pair takes tens of ms, so balance beats batching


def joint_histogram(label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(256, 256) int64 counts of (label value, prediction value) over the pixels of two uint8 maps.

    Pixels are counted by runs: label maps and predictions are coherent, so a pixel mostly has the
    (label, prediction) pair of its left neighbour, and one weighted ``bincount`` over the first
    pixel of every run replaces a per-pixel count (which stalls on incrementing one counter pixel
    after pixel, and needs the pair of every pixel built first). Maps with short runs (noise) take
    the per-pixel count.

    Shape:
        label, prediction: ``(H, W)`` uint8 -> ``(256, 256)`` int64 (rows label, columns prediction).
    """
    label, prediction = label.reshape(-1), prediction.reshape(-1)
    run_starts = np.empty(label.size, bool)
    run_starts[:1] = True
    np.not_equal(label[1:], label[:-1], out=run_starts[1:])
    run_starts[1:] |= prediction[1:] != prediction[:-1]
    if np.count_nonzero(run_starts) > label.size // 4:
        return np.bincount(label.astype(np.intp) << 8 | prediction, minlength=1 << 16).reshape(256, 256)
    starts = np.flatnonzero(run_starts)
    lengths = np.diff(starts, append=label.size)
    counts = np.bincount(label[starts].astype(np.intp) << 8 | prediction[starts], weights=lengths,
                         minlength=1 << 16)
    return counts.astype(np.int64).reshape(256, 256)  # exact: at most 2**53 pixels per image


def _class_map_lut(lut: np.ndarray) -> np.ndarray | None:
    """A raw value -> class id (255: ignored, void or invalid) uint8 table; None when it is the identity."""
    table = np.where(np.asarray(lut) < 0, 255, lut).astype(np.uint8)
    return None if np.array_equal(table, np.arange(256)) else table


def _code_table(lut: np.ndarray, num_classes: int) -> np.ndarray:
    """A raw value -> class code uint8 table: the class id in ``[0, K)``, ``K`` for everything else
    (ignored, void, invalid), as :func:`~fairseg_bench.core.boundary.boundary_counts_given_confusion` reads them."""
    table = np.asarray(lut)
    return np.where((table >= 0) & (table < num_classes), table, num_classes).astype(np.uint8)


def _raw_value_classes(label_codes: np.ndarray | None, prediction_codes: np.ndarray | None,
                       num_classes: int) -> np.ndarray | None:
    """The one code table of both maps' raw values when Boundary IoU can be counted on them, else None.

    That needs one raw value per class (Cityscapes' labelIds, trainIds, CamVid's ids) read alike in
    labels and predictions; otherwise the maps are looked up into class codes first.
    """
    from fairseg_bench.core.boundary import one_value_per_class

    if label_codes is None or prediction_codes is None:
        return None
    some_class = (label_codes < num_classes) | (prediction_codes < num_classes)
    agree = np.array_equal(label_codes[some_class], prediction_codes[some_class])
    return label_codes if agree and one_value_per_class(label_codes, num_classes) else None


def _lookup(values: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    """``table[values]`` of a uint8 map by Pillow's ``point`` (several times faster than numpy's indexing)."""
    if table is None:
        return values
    from PIL import Image

    return np.asarray(Image.fromarray(values).point(table.tolist()))


class PairCounter:
    """Counts one (label, prediction) pair into a ``(K, K + 1)`` int64 matrix (column K = void) and,
    with ``boundary``, its per-class Boundary IoU counts on the class-id maps."""

    def __init__(self, label_lut: np.ndarray, prediction_lut: np.ndarray, num_classes: int, boundary: bool = False):
        self.num_classes = K = int(num_classes)
        self.boundary = boundary
        if K < 255:  # class codes with one value for "no class" (the packed Boundary IoU path)
            self.label_codes, self.prediction_codes = _code_table(label_lut, K), _code_table(prediction_lut, K)
        else:
            self.label_codes = self.prediction_codes = None
        self.raw_classes = _raw_value_classes(self.label_codes, self.prediction_codes, K)
        self.label_classes, self.prediction_classes = _class_map_lut(label_lut), _class_map_lut(prediction_lut)
        gt = np.asarray(label_lut, np.int64)
        pred = np.asarray(prediction_lut, np.int64)
        self.bad_label = gt < 0
        self.bad_prediction = pred < 0
        pred_col = np.where(pred == 255, K, pred)
        row_ok = (gt >= 0) & (gt < K)
        col_ok = (pred_col >= 0) & (pred_col <= K)
        # cell of the (K, K + 1) matrix for every (raw label, raw prediction) pair; -1 = counts nowhere
        cell = gt[:, None] * (K + 1) + pred_col[None, :]
        self.cell = np.where(row_ok[:, None] & col_ok[None, :], cell, -1).reshape(-1)

    def count(self, label_path: Path, prediction_path: Path) -> np.ndarray:
        """The pair's ``(K, K + 1)`` matrix; a size mismatch or a value outside the label set is a UserError."""
        return self.count_maps(*self._decode(label_path, prediction_path), label_path, prediction_path)

    def count_pair(self, label_path: Path, prediction_path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """The pair's matrix and, with ``boundary``, its ``(2, K)`` Boundary IoU intersection and union."""
        label, prediction = self._decode(label_path, prediction_path)
        matrix = self.count_maps(label, prediction, label_path, prediction_path)  # checks the values first
        return matrix, self.boundary_counts(label, prediction, matrix) if self.boundary else None

    def boundary_counts(self, label: np.ndarray, prediction: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """``(2, K)`` Boundary IoU counts of raw maps, on their class ids (ignored, void: no class).

        ``matrix``: the pair's ``(K, K + 1)`` matrix, whose class totals the packed-bit path starts from.
        """
        from fairseg_bench.core.boundary import boundary_counts, boundary_counts_given_confusion

        if self.label_codes is None or self.prediction_codes is None:  # K >= 255: no uint8 codes
            label, prediction = _lookup(label, self.label_classes), _lookup(prediction, self.prediction_classes)
            return np.stack(boundary_counts(label, prediction, self.num_classes, ignore_index=255))
        if self.raw_classes is not None:  # no lookup of the whole maps
            return np.stack(boundary_counts_given_confusion(label, prediction, matrix, classes=self.raw_classes))
        codes = _lookup(label, self.label_codes), _lookup(prediction, self.prediction_codes)
        return np.stack(boundary_counts_given_confusion(*codes, matrix))

    @staticmethod
    def _decode(label_path: Path, prediction_path: Path) -> tuple[np.ndarray, np.ndarray]:
        label = decode_label_png(label_path, "label")
        prediction = decode_label_png(prediction_path, "prediction")
        if label.shape != prediction.shape:
            raise UserError(f"{prediction_path}: size {prediction.shape[1]}x{prediction.shape[0]} differs from its "
                            f"label {label_path.name} ({label.shape[1]}x{label.shape[0]})")
        return label, prediction

    def count_maps(self, label: np.ndarray, prediction: np.ndarray, label_path: Path,
                   prediction_path: Path) -> np.ndarray:
        """The ``(K, K + 1)`` matrix of two decoded raw maps (the paths name them in errors)."""
        raw = joint_histogram(label, prediction)
        self._check_values(raw.sum(1), self.bad_label, label_path, "label")
        self._check_values(raw.sum(0), self.bad_prediction, prediction_path, "prediction")
        flat = raw.reshape(-1)
        nonzero = np.flatnonzero(flat)
        cells = self.cell[nonzero]
        keep = cells >= 0
        K = self.num_classes
        counts = np.bincount(cells[keep], weights=flat[nonzero[keep]], minlength=K * (K + 1))
        return counts.astype(np.int64).reshape(K, K + 1)  # exact: at most 2**53 pixels per image

    @staticmethod
    def _check_values(counts: np.ndarray, bad: np.ndarray, path: Path, what: str) -> None:
        values = np.flatnonzero((counts > 0) & bad)
        if values.size:
            shown = ", ".join(map(str, values[:5].tolist())) + (", ..." if values.size > 5 else "")
            raise UserError(f"{path}: {what} values {shown} are outside the label set of this dataset")


# ----------------------------------------------------------------------------- workers
_worker_counter: PairCounter | None = None


def _init_worker(label_lut, prediction_lut, num_classes, boundary: bool = True, in_worker: bool = True) -> None:
    global _worker_counter
    if in_worker:  # the in-process path leaves the caller's signal handlers alone
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the pool, one message
    _worker_counter = PairCounter(label_lut, prediction_lut, num_classes, boundary=boundary)


def _count_chunk(chunk: list[tuple[Path, Path]]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-image (n, 3, K) statistics, the summed (K, K + 1) matrix and (n, 2, K) Boundary IoU counts (or None)."""
    assert _worker_counter is not None
    stats, edges, total = [], [], None
    for label, prediction in chunk:
        matrix, boundary = _worker_counter.count_pair(label, prediction)
        stats.append(tp_fp_fn(matrix))
        edges.append(boundary)
        total = matrix if total is None else total + matrix
    return np.stack(stats), total, None if edges[0] is None else np.stack(edges)  # type: ignore[arg-type]


def _context():
    # fork shares the imported modules, so a worker starts at once
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def count_pairs(pairs: PairList, *, workers: int | None = None, progress: bool = True, boundary: bool = True):
    """Count every pair. Returns the ``(K, K + 1)`` matrix, ``(N, 3, K)`` per-image statistics and the
    ``(N, 2, K)`` per-image Boundary IoU intersection and union (None without ``boundary``)."""
    from tqdm import tqdm

    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise UserError(f"--workers {workers}: expected 0 (in this process) or more")
    items = list(zip(pairs.labels, pairs.predictions, strict=True))
    chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    init = (pairs.label_lut, pairs.prediction_lut, len(pairs.classes), boundary)
    bar = tqdm(total=len(items), desc="evaluate", unit="pair", dynamic_ncols=True,
               disable=not progress or not sys.stderr.isatty())
    results = []
    try:
        if workers <= 1 or len(chunks) == 1:
            _init_worker(*init, in_worker=False)
            for chunk in chunks:
                results.append(_count_chunk(chunk))
                bar.update(len(chunk))
        else:
            with _context().Pool(min(workers, len(chunks)), _init_worker, init) as pool:
                for result in pool.imap(_count_chunk, chunks):
                    results.append(result)
                    bar.update(len(result[0]))
    finally:
        bar.close()
    stats = np.concatenate([r[0] for r in results])
    matrix = sum(r[1] for r in results)
    edges = np.concatenate([r[2] for r in results]) if boundary else None
    return matrix, stats, edges


# ----------------------------------------------------------------------------- results
def evaluation_hash(pairs: PairList, options: dict) -> str:
    """What makes two evaluations comparable: dataset, split, value conventions, classes and image names.

    Paths are left out, so the same split evaluated on another machine has the same hash; models
    evaluated on the same images share it (``check`` and ``report`` compare them as one experiment).
    """
    import hashlib
    import json

    key = {k: options.get(k) for k in ("dataset", "split", "ids", "reduce_zero_label", "ignore_index")}
    key.update(classes=list(pairs.classes), images=list(pairs.names))
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def image_attributes(dataset: str, names: list[str]) -> dict[str, list[str]]:
    """The dataset's built-in image groups read off the names, as runs record them (no torch):
    CamVid's capture ``sequence``, Cityscapes' ``city`` (the name up to the first ``_``); {} otherwise."""
    if dataset == "camvid":
        from fairseg_bench.data.camvid import sequence_of

        return {"sequence": [sequence_of(n) for n in names]}
    if dataset == "cityscapes":
        return {"city": [n.split("_", 1)[0] for n in names]}
    return {}


def predictions_record(pairs: PairList, matrix: np.ndarray, stats: np.ndarray, *, method: str,
                       source: Path, options: dict, wall_time_s: float, boundary: np.ndarray | None = None) -> dict:
    """The ``metrics.json`` content of an evaluated prediction folder, by the runs' builder
    (:func:`fairseg_bench.results.record.build_record`).

    Its own keys: ``void_predictions`` (column K of ``matrix``), ``source`` (``{"kind": "predictions",
    "path", "options"}``) and ``files`` (counts of ground-truth images, matched predictions and
    unmatched prediction files).

    Shape:
        matrix ``(K, K + 1)``; stats ``(N, 3, K)`` per-image TP, FP, FN; boundary ``(N, 2, K)``
        per-image Boundary IoU intersection and union, or None.
    """
    from fairseg_bench.results.environment import environment
    from fairseg_bench.results.record import Counts, build_record

    K = len(pairs.classes)
    names = list(pairs.names)
    identity = {"experiment": f"predictions-{pairs.dataset}", "method": method, "loss_spec": None, "seed": 0,
                "config_hash": evaluation_hash(pairs, options), "config": {"evaluate": options},
                "dataset": pairs.dataset, "split": pairs.split, "steps": None, "classes": list(pairs.classes),
                "ignore_index": 255, "palette": pairs.palette}
    counts = Counts(matrix[:, :K], {"tp": stats[:, 0], "fp": stats[:, 1], "fn": stats[:, 2]}, void=matrix[:, K],
                    boundary=None if boundary is None else (boundary[:, 0], boundary[:, 1]),
                    image_names=names, image_attributes=image_attributes(pairs.dataset, names))
    timing = {"wall_time_s": wall_time_s, "train_images_per_s": None,
              "eval_images_per_s": len(pairs) / wall_time_s if wall_time_s > 0 else None}
    files = {"ground_truth": len(pairs), "predictions": len(pairs), "unmatched_predictions": len(pairs.unmatched)}
    return build_record(identity, counts, sampler=None, timing=timing, environment=environment("cpu"),
                        extra={"source": {"kind": "predictions", "path": str(source), "options": options},
                               "files": files})


def _safe_label(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.+" else "-" for c in name).strip(".-")
    return safe or "predictions"


def default_output(dataset: str, method: str) -> Path:
    """``runs/predictions-<dataset>/<method>/metrics.json``: beside runs, so report/check read it alike."""
    return Path("runs") / f"predictions-{dataset}" / _safe_label(method) / "metrics.json"


def output_path(out, dataset: str, method: str) -> Path:
    """``out`` if it names a .json file, ``out/metrics.json`` for a folder, else :func:`default_output`."""
    if not out:
        return default_output(dataset, method)
    out = Path(out)
    return out if out.suffix == ".json" else out / "metrics.json"


def evaluate_predictions(predictions, *, dataset: str | None = None, root=None, split: str = "val",
                         name: str | None = None, out=None, workers: int | None = None, ids: str = "label",
                         reduce_zero_label: bool = False, labels=None, classes=None, ignore_index: int = 255,
                         quiet: bool = False, print_tables: bool = True, boundary: bool = False,
                         groups=None) -> Path:
    """Evaluate a prediction folder; write its ``metrics.json`` and print the tables. Returns the file.

    ``boundary``: also count Boundary IoU (``--boundary``; off by default: at Cityscapes size it
    makes the evaluation ~1.3x as long, see benchmarks/README.md); ``groups``: a parsed
    ``--groups`` grouping for the printed group tables.
    """
    from fairseg_bench.results import write_json_atomic

    pred_dir = Path(predictions).expanduser()
    pairs = match_predictions(pred_dir, dataset=dataset, root=root, split=split, ids=ids,
                              reduce_zero_label=reduce_zero_label, labels=labels, classes=classes,
                              ignore_index=ignore_index)
    method = name or pred_dir.resolve().name
    target = output_path(out, pairs.dataset, method)
    if pairs.unmatched:
        shown = ", ".join(p.name for p in pairs.unmatched[:3]) + (", ..." if len(pairs.unmatched) > 3 else "")
        print(f"warning: {len(pairs.unmatched)} prediction files match no ground-truth image and are skipped "
              f"({shown})", file=sys.stderr)
    start = time.perf_counter()
    matrix, stats, edges = count_pairs(pairs, workers=workers, progress=not quiet, boundary=boundary)
    elapsed = time.perf_counter() - start
    options = {"dataset": pairs.dataset, "root": None if root is None else str(root), "split": split,
               "ids": ids, "reduce_zero_label": reduce_zero_label,
               "labels": None if labels is None else str(labels), "classes": None if classes is None else str(classes),
               "ignore_index": ignore_index}
    record = predictions_record(pairs, matrix, stats, method=method, source=pred_dir, options=options,
                                wall_time_s=elapsed, boundary=edges)
    write_json_atomic(target, record)
    if not quiet:
        print(f"evaluated {len(pairs)} pairs in {elapsed:.1f} s ({len(pairs) / max(elapsed, 1e-9):.1f} pairs/s); "
              f"wrote {target}", file=sys.stderr)
    if print_tables:
        _print_tables(target, record, groups)
    return target


def _print_tables(target: Path, record: dict, groups=None) -> None:
    """The per-class, fairness and image-level tables (and the group tables), as ``run`` prints them."""
    from fairseg_bench.report import print_tables

    print_tables([target], reference=record["method"], groups=groups)
