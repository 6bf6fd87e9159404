"""Build the class index (per-image class pixel counts) in one pass, and cache it on disk.

The cache file is ``<cache_dir>/class_index-<dataset>-<split>-<key>.npz`` where ``key`` is a
sha256 of the dataset's fingerprint (its file list with sizes and modification times, or the
synthetic generator's settings), the number of classes, the ignore index and ``INDEX_VERSION``.
Changing any of them (new files, an edited label, another seed) gives a new key and a rebuild;
an unchanged dataset reuses the file.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from functools import partial
from pathlib import Path

import numpy as np

from fairseg_bench.core.class_index import ClassIndex, label_pixel_counts
from fairseg_bench.errors import UserError

INDEX_VERSION = 1


def cache_key(dataset) -> str:
    """sha256 over what determines the counts: dataset name, fingerprint, K, ignore index, version."""
    payload = {
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "num_classes": int(dataset.num_classes),
        "ignore_index": int(dataset.ignore_index),
        "index_version": INDEX_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_path(dataset, cache_dir, key: str | None = None) -> Path:
    """Where the class index of ``dataset`` is cached under ``cache_dir``."""
    key = key or cache_key(dataset)
    split = getattr(dataset, "split", "train")
    return Path(cache_dir) / f"class_index-{dataset.name}-{split}-{key[:16]}.npz"


def _count_rows(dataset, indices) -> np.ndarray:
    """Pixel counts of the given images. Shape ``(len(indices), K)``."""
    rows = np.zeros((len(indices), dataset.num_classes), np.int64)
    for row, index in enumerate(indices):
        try:
            rows[row] = label_pixel_counts(dataset.label(index), dataset.num_classes, dataset.ignore_index)
        except UserError:
            raise
        except ValueError as exc:
            raise UserError(f"{dataset.name} image {index}: {exc}") from exc
    return rows


def _chunks(n: int, parts: int) -> list[np.ndarray]:
    return [chunk for chunk in np.array_split(np.arange(n), parts) if chunk.size]


def count_pixels(dataset, workers: int = 0, progress: bool = False) -> np.ndarray:
    """One pass over ``dataset.label(i)`` for every i: here when ``workers`` is 0, else in ``workers``
    forked processes (``cpu_process.fork_map``: here too with one, or where the platform cannot fork).

    Returns:
        int64 ``(N, K)`` counts, rows in dataset order.
    """
    n = len(dataset)
    if workers <= 0 or n < 2:
        chunks = _chunks(n, max(1, n // 64))
        results = []
        iterator = chunks
        if progress:
            from tqdm import tqdm
            iterator = tqdm(chunks, desc=f"indexing {dataset.name}", unit="chunk")
        for chunk in iterator:
            results.append(_count_rows(dataset, chunk))
        return np.concatenate(results) if results else np.zeros((0, dataset.num_classes), np.int64)
    from fairseg_bench.cpu_process import fork_map

    # the fork shares the dataset without pickling it; the workers use numpy/PIL only
    return np.concatenate(fork_map(partial(_count_rows, dataset), _chunks(n, workers * 4), workers))


def build_class_index(dataset, cache_dir=None, workers: int = 0, progress: bool = False) -> ClassIndex:
    """The class index of ``dataset``, read from ``cache_dir`` when it matches, else built and saved.

    Args:
        dataset: any dataset of the registry (needs ``label(i)``, ``fingerprint()``, ``name``,
            ``num_classes``, ``ignore_index``).
        cache_dir: folder for the ``.npz`` cache; None builds without caching.
        workers: processes for the pass over the labels (0 = in this process).
        progress: show a tqdm bar (single-process pass only).
    """
    key = cache_key(dataset)
    path = cache_path(dataset, cache_dir, key) if cache_dir is not None else None
    if path is not None and path.is_file():
        cached = _read_cache(path, key, len(dataset), dataset.num_classes)
        if cached is not None:
            return ClassIndex(cached)
    counts = count_pixels(dataset, workers=workers, progress=progress)
    if path is not None:
        _write_cache(path, key, counts)
    return ClassIndex(counts)


def _read_cache(path: Path, key: str, num_images: int, num_classes: int) -> np.ndarray | None:
    """The cached counts, or None when the file is unreadable or does not match (then it is rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            counts = data["pixel_counts"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # missing, truncated, corrupt
        return None
    if counts.shape != (num_images, num_classes):
        return None
    return counts


def _write_cache(path: Path, key: str, counts: np.ndarray) -> None:
    """Temp file + rename, so a concurrent reader (another rank, another run) never sees half a file."""
    from fairseg_bench.atomic import write_atomic

    buffer = io.BytesIO()
    np.savez_compressed(buffer, pixel_counts=counts, key=np.array(key))
    write_atomic(path, buffer.getvalue(), durable=False)


def default_cache_dir() -> Path:
    """``$FAIRSEG_BENCH_CACHE`` or ``.cache/fairseg-bench`` in the working directory."""
    return Path(os.environ.get("FAIRSEG_BENCH_CACHE", Path(".cache") / "fairseg-bench"))
