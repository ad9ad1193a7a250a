"""Snapshots of learned state: plain numpy arrays plus JSON, written atomically, refused when stale.

A detector keeps its learned state in numpy arrays and small scalars, inside
its own attributes and those of helper objects (windows, calibrators, member
detectors).  :func:`flatten` walks that object graph and records every array
by its attribute path (``detectors_.4.window_.buffer``), every scalar in a
JSON-ready dict, and the shape of the graph itself (class names, list
lengths, array dtypes and shapes) as its *structure*.  :func:`restore_into`
walks a freshly built twin the same way and copies the saved values in, but
only when the twin's structure is the saved one and its parameters (scalars
of attributes not ending in ``_``) are equal: a snapshot written by other code
or other settings raises :class:`SnapshotMismatch` instead of loading state
that would mean something else.  One difference is let through: learned
state that a class added after its snapshots were first written, which it
names in ``snapshot_added``; a snapshot without it is restored, and the
added attributes keep the values ``reset`` gave them.  And one is ignored:
a parameter that a class names in ``snapshot_tunable`` steers how its
learned state is used from now on, not what that state means (how long an
episode lasts, how young a record still counts in part), so the running
value is kept and the saved one dropped: a new default for it, or a setting
changed between two runs, does not throw the learned state away.

On disk a snapshot is one ``.npz`` file (``numpy.savez``, no pickled objects:
it is read with ``allow_pickle=False``) holding the arrays and a ``meta``
entry, a JSON document stored as bytes.  :func:`write_snapshot` writes to a
temporary file beside the target, fsyncs it, renames it over the target and
fsyncs the folder, so a crash leaves either the old snapshot or the new one.

>>> from detectors.zscore import ZScoreDetector
>>> det = ZScoreDetector(warmup=5).reset(2)
>>> for v in range(20):
...     _ = det.step([[float(v % 3)], [float(v)]])
>>> structure, scalars, arrays = flatten(det)
>>> twin = ZScoreDetector(warmup=5).reset(2)
>>> restore_into(twin, structure, scalars, arrays)
>>> bool((twin.step([[9.0], [20.0]]) == det.step([[9.0], [20.0]])).all())
True
>>> restore_into(ZScoreDetector(warmup=6).reset(2), structure, scalars, arrays)
Traceback (most recent call last):
...
detectors.snapshot.SnapshotMismatch: parameter warmup is 6 here, 5 in the snapshot
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "SnapshotError", "SnapshotMismatch", "flatten",
           "read_snapshot", "restore_built", "restore_into", "write_snapshot"]

#: Written into every snapshot; a file with another format name or version is refused.
FORMAT = "anomaly-state-snapshot"
FORMAT_VERSION = 1
#: Attributes never saved: per-tick caches, recomputed from the state on the next tick.
_SKIPPED = frozenset({"_cache_"})
_SCALARS = (bool, int, float, str, type(None))


class SnapshotError(ValueError):
    """A snapshot cannot be written or read (unsupported object, damaged or foreign file)."""


class SnapshotMismatch(SnapshotError):
    """A snapshot was written by other code or with other parameters than the running ones."""


# -- the object graph ----------------------------------------------------------------------
def flatten(obj, copy: bool = True) -> tuple[dict, dict, dict]:
    """Return ``(structure, scalars, arrays)`` of ``obj``'s state, each keyed by attribute path.

    ``structure`` and ``scalars`` are JSON-ready; ``arrays`` holds copies
    (unless ``copy`` is False), so the object may go on changing while they
    are written out.
    """
    structure: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    _walk(obj, "", structure, scalars, arrays, set(), copy)
    return structure, scalars, arrays


def restore_into(obj, structure: dict, scalars: dict, arrays: dict) -> None:
    """Copy saved state into ``obj``, a freshly built twin; raise :class:`SnapshotMismatch` if it differs.

    Nothing is changed unless everything matches.
    """
    _restore(obj, _describe(obj), structure, scalars, arrays)


def restore_built(build: Callable[[int], Any], rows: int, structure: dict, scalars: dict, arrays: dict):
    """Return a twin ``build(rows)`` would give, with the saved state in, without filling ``rows`` rows.

    Building a twin of ``rows`` rows allocates and fills all of its state
    only for the saved arrays to replace it (hundreds of MB at 10,000
    streams).  Twins of one and of two rows show which array dimensions grow
    with the rows and by how much, so the layout of a ``rows`` twin is known
    without building it; when it is the saved one, the one-row twin takes the
    saved state (every array is replaced, so nothing of its one row is left).
    Anything else (a layout or parameter that does not grow row by row, a
    snapshot without state named in ``snapshot_added``, which keeps the
    values ``reset`` gives all ``rows`` rows, or a snapshot that differs)
    builds the full twin and restores it with :func:`restore_into`.
    """
    one = build(1)
    own = _describe(one)
    if rows != 1:
        grown = _grown_layout(own, _describe(build(2)), rows)
        if grown != structure:  # also when it lacks ``snapshot_added`` state: that keeps its reset rows
            twin = build(rows)
            restore_into(twin, structure, scalars, arrays)
            return twin
        own = (grown, *own[1:])
    _restore(one, own, structure, scalars, arrays)
    return one


def _describe(obj) -> tuple[dict, dict, dict, frozenset]:
    """``(structure, scalars, added, tunable)`` of a twin: its layout, its scalars, its classes'
    ``snapshot_added``, and the paths of the parameters they name in ``snapshot_tunable``."""
    structure, scalars, added, tunable = {}, {}, {}, set()
    _walk(obj, "", structure, scalars, {}, set(), False, added, tunable)
    return structure, scalars, added, frozenset(tunable)


def _grown_layout(one: tuple, two: tuple, rows: int) -> dict | None:
    """The structure of a ``rows``-row twin from those of one- and two-row twins; None unless only shapes grow."""
    if one[0].keys() != two[0].keys() or one[2:] != two[2:]:
        return None
    if any(not _is_state(p) and v != two[1].get(p) for p, v in one[1].items()):
        return None  # a parameter depends on the rows: only the full twin tells its value
    grown = {}
    for path, small in one[0].items():
        large = two[0][path]
        if small == large:
            grown[path] = small
        elif small[0] == large[0] == "array" and small[1] == large[1] and len(small[2]) == len(large[2]):
            grown[path] = ["array", small[1], [a + (b - a) * (rows - 1) for a, b in zip(small[2], large[2])]]
        else:
            return None
    return grown


def _restore(obj, own: tuple, structure: dict, scalars: dict, arrays: dict) -> None:
    """Check ``own`` (:func:`_describe` of ``obj``) against the saved state, then put that state in."""
    own_structure, own_scalars, added, tunable = own
    own_structure = _without_added(own_structure, structure, added)
    if own_structure != structure:
        raise SnapshotMismatch(f"state layout differs at {_first_difference(own_structure, structure)}")
    for path, value in own_scalars.items():
        # A parameter the saved layout lacks passed the layout check as ``snapshot_added``: it came later.
        if not _is_state(path) and path not in tunable and path in structure and value != scalars.get(path):
            raise SnapshotMismatch(f"parameter {path} is {value!r} here, "
                                   f"{scalars.get(path)!r} in the snapshot")
    missing = [p for p, kind in structure.items() if kind[0] == "array" and p not in arrays]
    if missing:
        raise SnapshotMismatch(f"snapshot lacks the array {missing[0]}")
    # A tunable parameter keeps its running value: the saved one is dropped.
    kept = {path: own_scalars[path] for path in tunable if path in own_scalars and path in structure}
    _assign(obj, "", structure, {**scalars, **kept}, arrays)


def _is_state(path: str) -> bool:
    """Whether a scalar is learned state: the last attribute name on its path ends in ``_``."""
    names = [part for part in path.split(".") if not part.isdigit()]
    return bool(names) and names[-1].endswith("_")


def _without_added(own: dict, saved: dict, added: dict[str, frozenset]) -> dict:
    """``own`` structure less the attributes added to a class (``snapshot_added``) that ``saved`` lacks."""
    reduced = dict(own)
    for path, names in added.items():
        ours, theirs = own.get(path), saved.get(path)
        if ours is None or theirs is None or theirs[0] != "object" or theirs[1] != ours[1]:
            continue
        missing = {n for n in names if n in ours[2] and n not in theirs[2]}
        if not missing:
            continue
        reduced[path] = [ours[0], ours[1], [a for a in ours[2] if a not in missing]]
        for name in missing:
            root = _join(path, name)
            for p in [p for p in reduced if p == root or p.startswith(root + ".")]:
                del reduced[p]
    return reduced


def _walk(value, path: str, structure, scalars, arrays, seen: set, copy: bool, added=None, tunable=None) -> None:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise SnapshotError(f"{path}: arrays of Python objects are not saved")
        structure[path] = ["array", value.dtype.str, list(value.shape)]
        arrays[path] = np.array(value, copy=True) if copy else value
    elif isinstance(value, _SCALARS):
        structure[path] = ["scalar"]
        scalars[path] = value
    elif isinstance(value, np.generic):
        structure[path] = ["scalar", value.dtype.str]
        scalars[path] = value.item()
    elif isinstance(value, (list, tuple)):
        structure[path] = [type(value).__name__, len(value)]
        for i, item in enumerate(value):
            _walk(item, _join(path, str(i)), structure, scalars, arrays, seen, copy, added, tunable)
    elif isinstance(value, dict):
        if not all(isinstance(k, str) and k and not k.isdigit() and "." not in k for k in value):
            raise SnapshotError(f"{path}: only dicts with plain string keys are saved")
        structure[path] = ["dict", sorted(value)]
        for key in sorted(value):
            _walk(value[key], _join(path, key), structure, scalars, arrays, seen, copy, added, tunable)
    elif hasattr(value, "__dict__") and not isinstance(value, type) and not callable(value):
        if id(value) in seen:
            raise SnapshotError(f"{path}: an object reachable twice is not saved")
        seen.add(id(value))
        attributes = sorted(k for k in vars(value) if k not in _SKIPPED)
        structure[path] = ["object", f"{type(value).__module__}.{type(value).__qualname__}", attributes]
        if added is not None and getattr(value, "snapshot_added", None):
            added[path] = frozenset(value.snapshot_added)
        if tunable is not None:
            tunable.update(_join(path, name) for name in getattr(value, "snapshot_tunable", ()))
        for key in attributes:
            _walk(getattr(value, key), _join(path, key), structure, scalars, arrays, seen, copy, added, tunable)
    else:
        raise SnapshotError(f"{path or 'the object'}: a {type(value).__name__} is not saved")


def _assign(value, path: str, structure, scalars, arrays):
    """Return ``value`` with the saved state put in (objects in place; arrays and scalars replaced)."""
    kind = structure[path]
    if kind[0] == "array":
        return np.ascontiguousarray(arrays[path], dtype=np.dtype(kind[1]))
    if kind[0] == "scalar":
        saved = scalars[path]
        return np.dtype(kind[1]).type(saved) if len(kind) > 1 else saved
    if kind[0] in ("list", "tuple"):
        items = [_assign(item, _join(path, str(i)), structure, scalars, arrays)
                 for i, item in enumerate(value)]
        return tuple(items) if kind[0] == "tuple" else items
    if kind[0] == "dict":
        for key in kind[1]:
            value[key] = _assign(value[key], _join(path, key), structure, scalars, arrays)
        return value
    for key in kind[2]:
        setattr(value, key, _assign(getattr(value, key), _join(path, key), structure, scalars, arrays))
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _first_difference(ours: dict, saved: dict) -> str:
    for path in sorted(set(ours) | set(saved)):
        if ours.get(path) != saved.get(path):
            return f"{path or 'the top'} (here {ours.get(path)}, in the snapshot {saved.get(path)})"
    return "?"


# -- the file --------------------------------------------------------------------------------
def write_snapshot(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> int:
    """Write ``meta`` (JSON-ready) and ``arrays`` to ``path`` atomically; return the file's size in bytes."""
    path = Path(path)
    document = {"format": FORMAT, "version": FORMAT_VERSION, **meta}
    encoded = np.frombuffer(json.dumps(document, allow_nan=True).encode(), dtype=np.uint8)
    if "meta" in arrays:
        raise SnapshotError("'meta' is reserved for the snapshot's JSON document")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, meta=encoded, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut only once its folder is synced
    finally:
        os.close(folder)
    return path.stat().st_size


def read_snapshot(path: Path, mapped: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """Return ``(meta, arrays)`` from a snapshot file; :class:`SnapshotError` if damaged or foreign.

    With ``mapped`` the arrays are views into one copy-on-write memory map
    of the file (``np.savez`` stores each ``.npy`` uncompressed): a restart
    reads no state up front, the first tick pages it in, and writes stay
    private.  The file may be replaced meanwhile: the map keeps the old one.
    """
    try:
        arrays = _map_arrays(Path(path)) if mapped else None
        if arrays is None:
            with np.load(Path(path), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc}") from exc
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (KeyError, ValueError) as exc:
        raise SnapshotError(f"snapshot {path} has no readable meta document") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a {FORMAT} file")
    if meta.get("version") != FORMAT_VERSION:
        raise SnapshotMismatch(f"snapshot format version {meta.get('version')!r}; "
                               f"this code reads version {FORMAT_VERSION}")
    return meta, arrays


def _map_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """Views into one copy-on-write map of an uncompressed ``.npz``, one per ``.npy`` member; None if any is compressed.

    One mapping for the whole file: a snapshot holds hundreds of arrays, and
    opening and mapping the file once per array cost a restart ~0.1 s.
    """
    arrays, placed = {}, []
    with open(path, "rb") as raw, zipfile.ZipFile(raw) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                return None
            raw.seek(info.header_offset)
            local = raw.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"damaged entry {info.filename}")
            name_length = int.from_bytes(local[26:28], "little")
            extra_length = int.from_bytes(local[28:30], "little")
            raw.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(raw)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
            else:
                return None  # a newer .npy version: np.load reads it
            if dtype.hasobject:
                raise ValueError(f"{info.filename} holds Python objects")
            order = "F" if fortran else "C"
            name = info.filename[:-len(".npy")]
            if int(np.prod(shape)) == 0:
                arrays[name] = np.zeros(shape, dtype=dtype, order=order)
            else:
                placed.append((name, raw.tell(), shape, dtype, order))
        size = os.fstat(raw.fileno()).st_size
        if not placed:
            return arrays
        whole = np.memmap(raw, dtype=np.uint8, mode="c", shape=(size,))
    for name, offset, shape, dtype, order in placed:
        if offset + int(np.prod(shape)) * dtype.itemsize > size:
            raise ValueError(f"{name} runs past the end of the file")
        arrays[name] = np.ndarray(shape, dtype=dtype, buffer=whole, offset=offset, order=order)
    return arrays
