"""Read a PyTorch state dict (``.pth``/``.pt``) into NumPy arrays, without torch and without running code.

    >>> from cvapps.core.torch_weights import read_state_dict
    >>> state = read_state_dict("efficientnet-lite0-57934424.pth")      # doctest: +SKIP
    >>> state["_conv_stem.weight"].shape, state["_conv_stem.weight"].dtype  # doctest: +SKIP
    ((32, 3, 3, 3), dtype('float32'))

A ``.pth`` is a pickle, and unpickling runs whatever callables the file names. This reader
unpickles with an allow-list of the few globals a state dict needs (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and the ``torch.*Storage`` types), each replaced by our own
NumPy code; any other global (``os.system``, a model class, ...) is refused with a ValueError
before anything is called. Both layouts ``torch.save`` writes are read:

- the legacy stream (torch < 1.6, or ``_use_new_zipfile_serialization=False``): five pickles
  (magic number, protocol version, system info, the state dict whose tensors are persistent ids
  ``("storage", type, key, location, numel)``, the list of storage keys), then each storage in
  that order as an int64 element count followed by its raw little-endian bytes;
- the zip archive (torch >= 1.6): ``<name>/data.pkl`` with the same persistent ids and one
  ``<name>/data/<key>`` entry of raw bytes per storage.

A tensor is rebuilt as ``as_strided(storage[offset:], size, stride)`` and copied, so every array
owns its memory.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage type name -> NumPy dtype (little-endian, as torch writes on every machine we support).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",  # raw bits; widened to float32 in _rebuild
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

_ALLOWED = "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_tensor, " + ", ".join(
    f"torch.{name}" for name in STORAGE_DTYPES
)


class _StorageType:
    """Stands for ``torch.FloatStorage`` and friends inside the pickle: only its dtype is used."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """A storage named by a persistent id; its bytes arrive after the pickle (legacy) or from the zip."""

    def __init__(self, storage_type: _StorageType, key: str, numel: int) -> None:
        self.type, self.key, self.numel = storage_type, key, numel
        self.array: np.ndarray | None = None


class _LazyTensor:
    """``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` recorded until the bytes are read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise ValueError(
                f"storage {self.storage.key!r} has no data in the file; the file is truncated or not a state dict."
            )
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1 if all(self.size) else 0
        if needed > flat.size:
            raise ValueError(
                f"a tensor of shape {self.size} reads past the end of storage {self.storage.key!r} "
                f"({needed} > {flat.size} elements); the file is corrupt."
            )
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], self.size, tuple(s * item for s in self.stride), writeable=False
        )
        array = np.array(view)  # a copy that owns its memory
        if self.storage.type.name == "BFloat16Storage":  # bfloat16 = the top 16 bits of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise ValueError("a tensor in the file is not built on a storage; this is not a plain state dict.")
    return _LazyTensor(storage, int(storage_offset), size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a state dict, to our own stand-ins."""

    def __init__(self, file, storages: dict, path: str) -> None:
        super().__init__(file)
        self.storages = storages
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise ValueError(
            f"{self.path}: the pickle names the global {module}.{name}, which a state dict does not need; "
            f"refusing to unpickle it (unpickling runs the code a file names). Allowed: {_ALLOWED}. "
            "Save the weights with torch.save(model.state_dict(), path)."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise ValueError(f"{self.path}: unexpected persistent id {str(pid)[:80]!r}; this is not a state dict.")
        _, storage_type, key, _location, numel = pid[:5]
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, key, int(numel))
        return self.storages[key]


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A ``torch.save``d state dict -> ``{name: array}`` in the file's order, read without torch.

    Args:
        path: a ``.pth``/``.pt`` file written by ``torch.save(state_dict, path)`` (legacy or zip layout).

    Returns:
        dict of parameter name -> NumPy array (PyTorch's layout: conv weights are OIHW).

    Raises:
        ValueError: the file is missing, is not a state dict, names a global outside the
            allow-list (the message names it), or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass a .pth state dict written by torch.save.")
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        state, storages = _read_zip(data, str(path))
    else:
        state, storages = _read_legacy(data, str(path))
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the pickle holds a {type(state).__name__}, not a state dict of tensors.")
    arrays = {}
    for name, value in state.items():
        if isinstance(value, _LazyTensor):
            arrays[str(name)] = value.materialise()
    if not arrays:
        raise ValueError(f"{path}: the state dict holds no tensors.")
    return arrays


def _unpickle(file, storages, path):
    try:
        return _StateDictUnpickler(file, storages, path).load()
    except ValueError:
        raise
    except Exception as error:  # pickle raises many types for a damaged stream
        raise ValueError(f"{path}: not a readable state dict ({type(error).__name__}: {error}).") from None


def _read_legacy(data: bytes, path: str):
    stream = io.BytesIO(data)
    storages: dict = {}
    magic = _unpickle(stream, storages, path)
    if magic != LEGACY_MAGIC:
        raise ValueError(f"{path}: not a torch.save file (no legacy magic number and not a zip archive).")
    _unpickle(stream, storages, path)  # protocol version
    _unpickle(stream, storages, path)  # system info (endianness, type sizes)
    state = _unpickle(stream, storages, path)
    keys = _unpickle(stream, storages, path)
    if not isinstance(keys, list):
        raise ValueError(f"{path}: the storage key list is missing; the file is truncated or not a state dict.")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise ValueError(f"{path}: storage {key!r} is listed but no tensor uses it; the file is corrupt.")
        header = stream.read(8)
        if len(header) < 8:
            raise ValueError(f"{path}: the file ends before storage {key!r}; it is truncated.")
        (count,) = struct.unpack("<q", header)
        nbytes = count * storage.type.dtype.itemsize
        raw = stream.read(nbytes)
        if count != storage.numel or len(raw) < nbytes:
            raise ValueError(
                f"{path}: storage {key!r} is truncated or its size does not match ({count} vs {storage.numel})."
            )
        storage.array = np.frombuffer(raw, storage.type.dtype)
    return state, storages


def _read_zip(data: bytes, path: str):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: a damaged zip archive ({error}).") from None
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise ValueError(f"{path}: a zip without one data.pkl; this is not a torch.save file.")
    prefix = pickles[0][: -len("data.pkl")]
    storages: dict = {}
    state = _unpickle(io.BytesIO(archive.read(pickles[0])), storages, path)
    for key, storage in storages.items():
        entry = f"{prefix}data/{key}"
        if entry not in names:
            raise ValueError(f"{path}: storage {key!r} has no {entry} entry; the archive is incomplete.")
        raw = archive.read(entry)
        storage.array = np.frombuffer(raw, storage.type.dtype)
    return state, storages
