"""Fitted stages as data: JSON parameters and ``.npy`` arrays, written atomically, read back
without unpickling anything and validated on the way in.

A stage offers ``get_state() -> (params, arrays)`` and ``from_state(params, arrays)``;
:func:`save_stage` writes its arrays as ``<name>.<array>.npy`` and returns the JSON entry
(parameters plus each array's file, dtype and shape) that the model file keeps;
:func:`load_stage` reads them back and checks them against that entry. Any damage (a missing
or truncated file, an array that is not plain numbers, a wrong shape) is a one-line
:class:`~segmenter.errors.SegmenterError` naming the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from segmenter import __version__, io
from segmenter.errors import SegmenterError

#: the model folder's main file
MODEL_FILE = "segmenter.json"
#: version of the model folder's layout; format 1 (pickled stages.joblib) is refused
FORMAT = 2
#: dtypes a stage may store: plain numbers only (never ``object``, which would need pickle)
DTYPES = ("float32", "float64", "int32", "int64", "bool")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class Stage(Protocol):
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...


StageT = TypeVar("StageT")


def save_stage(folder: Path, name: str, stage: Stage) -> dict[str, Any]:
    """Write ``stage``'s arrays into ``folder``; return its JSON entry for the model file."""
    params, arrays = stage.get_state()
    manifest: dict[str, Any] = {}
    for key, array in arrays.items():
        value = np.ascontiguousarray(array)
        if not _NAME.match(key) or value.dtype.name not in DTYPES:
            raise TypeError(f"stage {name}: array {key!r} of dtype {value.dtype} cannot be saved")
        file = f"{name}.{key}.npy"
        with io.atomic_path(folder / file) as tmp, open(tmp, "wb") as handle:
            np.save(handle, value, allow_pickle=False)
        manifest[key] = {"file": file, "dtype": value.dtype.name, "shape": list(value.shape)}
    return {"params": params, "arrays": manifest}


def load_stage(folder: Path, name: str, entry: Any, cls: Any) -> Any:
    """Rebuild a stage with ``cls.from_state`` from its ``entry`` in the model file."""
    where = f"--model: '{folder}'"
    if not isinstance(entry, dict) or not isinstance(entry.get("arrays"), dict):
        raise SegmenterError(f"{where}: stage '{name}' is missing or damaged in the model file")
    arrays = {key: read_array(folder, name, spec) for key, spec in entry["arrays"].items()}
    try:
        return cls.from_state(entry.get("params") or {}, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SegmenterError(
            f"{where}: stage '{name}' does not load ({type(exc).__name__}: {exc}); re-fit the model"
        ) from None


def read_array(folder: Path, stage: str, spec: Any) -> np.ndarray:
    """One ``.npy`` file of a stage, checked against its ``{file, dtype, shape}`` entry."""
    if not isinstance(spec, dict) or not {"file", "dtype", "shape"} <= spec.keys():
        raise SegmenterError(f"--model: '{folder}': stage '{stage}' lists a damaged array entry")
    file = str(spec["file"])
    path = folder / file
    if Path(file).name != file or not file.endswith(".npy"):
        raise SegmenterError(f"--model: array file '{file}' should be a .npy name inside the model")
    if not path.is_file():
        raise SegmenterError(f"--model: '{path}' is missing; the model folder is incomplete")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version not in _HEADERS:
                raise ValueError(f"npy format version {version} (expected 1.0 or 2.0)")
            shape, _, dtype = _HEADERS[version](handle)
            if dtype.name != spec["dtype"] or dtype.name not in DTYPES:
                raise ValueError(f"dtype {dtype} (expected {spec['dtype']})")
            if list(shape) != list(spec["shape"]):
                raise ValueError(f"shape {list(shape)} (expected {spec['shape']})")
            handle.seek(0)
            array = np.lib.format.read_array(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SegmenterError(f"--model: '{path}' is damaged or truncated: {exc}") from None
    return np.asarray(array)


def read_json(path: Path) -> Any:
    """Parse a JSON file, or a one-line error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegmenterError(f"--model: '{path}' is not valid JSON: {exc}") from None


def read_model_file(folder: Path) -> dict[str, Any]:
    """``segmenter.json`` of a format-:data:`FORMAT` model folder, or a one-line error."""
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise SegmenterError(f"--model: '{folder}' is not a segmenter model (no {MODEL_FILE})")
    state = read_json(model_file)
    version = state.get("format") if isinstance(state, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise SegmenterError(
            f"--model: '{model_file}' is not a segmenter model file (no integer 'format')"
        )
    if version == 1 or (folder / "stages.joblib").exists():
        raise SegmenterError(
            f"--model: '{folder}' is a format-1 model (pickled stages.joblib), which is no "
            f"longer loaded because unpickling can run code; re-fit it with "
            f"python -m pipelines.discover (this version writes format {FORMAT})"
        )
    if version != FORMAT:
        raise SegmenterError(
            f"--model: '{model_file}' has format {version}; this segmenter {__version__} reads "
            f"format {FORMAT}: upgrade segmenter or re-fit the model"
        )
    return state
