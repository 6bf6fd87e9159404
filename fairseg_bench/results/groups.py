"""Groups of images: a ``--groups`` CSV or the records' own ``image_attributes``, matched to the results.

A groups CSV has a header ``image,<attribute>[,<attribute>...]`` (e.g. ``image,group`` or
``image,weather,time``) and one row per image: ``image`` is the file stem of the image or its
label (an extension is dropped), matched against the records' ``image_names``. Without a CSV the
records' ``image_attributes`` are the groups (CamVid's capture ``sequence``, Cityscapes' ``city``).

Matching says what it leaves out: CSV names absent from the results and result images absent from
the CSV are warnings naming a few; nothing in common is an error. The maths is in
:mod:`fairseg_bench.core.groups`; :mod:`fairseg_bench.results.summary` computes the numbers.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from fairseg_bench.errors import UserError
from fairseg_bench.results.read import Result, Results

__all__ = ["Grouping", "Alignment", "read_groups", "builtin_groups", "align"]


@dataclass(frozen=True)
class Grouping:
    """Image groups: per attribute, the group of each image name."""

    attributes: dict[str, dict[str, str]]  # attribute -> {image name: group}
    source: str  # where they came from, said in notes
    explicit: bool = True  # asked for (--groups): a result without per-image statistics is an error


@dataclass(frozen=True)
class Alignment:
    """One attribute's groups over the images every compared result has, in one order."""

    attribute: str
    images: list[str]  # N names, the order of the rows below
    groups: list[str]  # G group names
    codes: np.ndarray  # (N,) index into groups
    rows: dict[int, np.ndarray] = field(default_factory=dict)  # id(result) -> (N,) its per_image rows
    warnings: list[str] = field(default_factory=list)


def _few(names) -> str:
    names = list(names)
    return ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")


def read_groups(path) -> Grouping:
    """Parse a groups CSV; a malformed file is a one-line ``UserError`` naming it."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [[cell.strip() for cell in row] for row in csv.reader(f) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"--groups {path}: cannot read it as a CSV file ({exc})") from None
    if not rows:
        raise UserError(f"--groups {path}: empty file (expected a header 'image,group' and one row per image)")
    header = rows[0]
    if not header or header[0].lower() != "image" or len(header) < 2:
        raise UserError(f"--groups {path}: the header must be 'image,<attribute>[,...]' (e.g. image,group), "
                        f"not {','.join(header)!r}")
    if any(not name for name in header[1:]) or len(set(header[1:])) != len(header) - 1:
        raise UserError(f"--groups {path}: attribute columns need distinct, non-empty names")
    if len(rows) < 2:
        raise UserError(f"--groups {path}: no rows below the header")
    attributes: dict[str, dict[str, str]] = {name: {} for name in header[1:]}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header) or not all(row):
            what = "an empty cell" if len(row) == len(header) else f"{len(row)} cells"
            raise UserError(f"--groups {path}: row {number} has {what}; expected {len(header)} non-empty cells")
        image = PurePath(row[0]).stem if PurePath(row[0]).suffix.lower() in (".png", ".jpg", ".jpeg") else row[0]
        if image in attributes[header[1]]:
            raise UserError(f"--groups {path}: image {image!r} appears twice (row {number})")
        for name, value in zip(header[1:], row[1:]):
            attributes[name][image] = value
    return Grouping(attributes, f"--groups {path.name}")


def builtin_groups(results: Results) -> Grouping | None:
    """The records' ``image_attributes`` as a grouping (None when no result has any)."""
    attributes: dict[str, dict[str, str]] = {}
    for r in results.runs:
        for name, values in (r.image_attributes or {}).items():
            attributes.setdefault(name, {}).update(zip(r.image_names or (), values))
    return Grouping(attributes, "the records' image_attributes", explicit=False) if attributes else None


def _usable(results: Results, grouping: Grouping) -> list[Result]:
    """The results with per-image statistics and names; without them an explicit grouping is an error."""
    usable = [r for r in results.runs if r.per_image is not None and r.image_names is not None]
    kept = {id(r) for r in usable}
    lacking = [r for r in results.runs if id(r) not in kept]
    if lacking and grouping.explicit:
        r = lacking[0]
        raise UserError(f"{r.source}: {r.method} has no per-image statistics with image names, which groups need "
                        "(run records and evaluated prediction folders have them; tables of IoUs do not)")
    return usable


def align(results: Results, grouping: Grouping, attribute: str) -> Alignment | None:
    """The images of ``attribute`` that the results share, their groups, and each result's rows.

    None (with nothing to show) when no result can be grouped; an explicit grouping that matches no
    image is a ``UserError``.
    """
    usable = _usable(results, grouping)
    if not usable:
        return None
    mapping = grouping.attributes[attribute]
    first = usable[0].image_names or ()
    images = [n for n in first if n in mapping]
    warnings = []
    if not images:
        if grouping.explicit:
            raise UserError(f"{grouping.source}: no image name matches the results' images (e.g. {_few(first)}); "
                            "the 'image' column holds file stems")
        return None
    outside = [n for n in first if n not in mapping]
    if outside:
        warnings.append(f"{len(outside)} image(s) of the results have no {attribute!r} in {grouping.source} and are "
                        f"left out of the groups: {_few(outside)}")
    absent = sorted(set(mapping) - set(first))
    if absent and grouping.explicit:
        warnings.append(f"{len(absent)} image(s) of {grouping.source} are not in the results: {_few(absent)}")
    rows = {}
    for r in usable:
        index = {n: i for i, n in enumerate(r.image_names or ())}
        missing = [n for n in images if n not in index]
        if missing:
            raise UserError(f"{r.source}: {r.method} was evaluated on other images (lacks {_few(missing)}); "
                            "groups compare results on the same images")
        rows[id(r)] = np.array([index[n] for n in images], dtype=np.int64)
    from fairseg_bench.core.groups import group_codes

    groups, codes = group_codes([mapping[n] for n in images])
    return Alignment(attribute, images, groups, codes, rows, warnings)
