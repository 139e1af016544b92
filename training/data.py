"""Load the four original MNIST files, verified by sha256, from MNIST_DIR or a download cache."""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIRROR_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

# name: (bytes, sha256) of the published originals.
FILES = {
    "train-images-idx3-ubyte.gz": (
        9912422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train-labels-idx1-ubyte.gz": (
        28881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "t10k-images-idx3-ubyte.gz": (
        1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

_IDX_DTYPES = {0x08: np.uint8}


class MnistError(RuntimeError):
    """A missing, damaged or unparseable MNIST file, with what to do about it."""


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray  # uint8 [N, 28, 28], light digit on dark
    y_train: np.ndarray  # uint8 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # the folder the files came from
    sha256: dict[str, str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path) -> str:
    """Check one file against its published size and sha256; return the sha256."""
    size, expected = FILES[path.name]
    if not path.is_file():
        raise MnistError(
            f"MNIST file {path.name} is missing from {path.parent}. Copy the four MNIST files "
            "there, or unset MNIST_DIR to download them into the user cache."
        )
    actual_size = path.stat().st_size
    if actual_size < size:
        raise MnistError(
            f"MNIST file {path} is truncated ({actual_size} of {size} bytes). "
            "Delete it and fetch it again."
        )
    actual = sha256_of(path)
    if actual != expected:
        raise MnistError(
            f"MNIST file {path} has sha256 {actual}, expected {expected}: it is damaged or not "
            "the original. Delete it and fetch it again."
        )
    return actual


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse uncompressed IDX bytes (magic, dims, then the values, big-endian) into an array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise MnistError(f"{name} is not an IDX file (bad magic number)")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code not in _IDX_DTYPES:
        raise MnistError(f"{name} has IDX type 0x{dtype_code:02x}; only unsigned bytes are used")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistError(f"{name} ends inside its IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(raw) - header != count:
        raise MnistError(
            f"{name} holds {len(raw) - header} values but its header promises {count} {shape}"
        )
    return np.frombuffer(raw, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(shape)


def _download(cache_dir: Path) -> Path:
    """Fetch any missing file into cache_dir; pooch verifies and renames only complete files."""
    import pooch

    for name, (_, sha) in FILES.items():
        try:
            pooch.retrieve(
                MIRROR_URL + name, known_hash=f"sha256:{sha}", fname=name, path=cache_dir,
                progressbar=False,
            )
        except ValueError as err:  # pooch's word for a sha256 mismatch; it kept nothing
            raise MnistError(
                f"The download of {name} from {MIRROR_URL} is not the original MNIST file "
                f"({err}). Try again later, or set MNIST_DIR to a folder holding the four files."
            ) from err
        except Exception as err:  # network errors come in many types; all mean the same here
            raise MnistError(
                f"Could not download {name} from {MIRROR_URL} ({err}). Check the network, or "
                "set MNIST_DIR to a folder holding the four MNIST files."
            ) from err
    return cache_dir


def locate(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the verified MNIST folder: data_dir, else $MNIST_DIR, else the download cache."""
    chosen = data_dir or os.environ.get("MNIST_DIR")
    if chosen:
        folder = Path(chosen).expanduser()
    else:
        import pooch

        folder = _download(Path(pooch.os_cache("digitops")) / "mnist")
    for name in FILES:
        verify(folder / name)
    return folder


def load(data_dir: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST as uint8 arrays, after verifying every file."""
    folder = locate(data_dir)
    arrays = {}
    for name in FILES:
        with gzip.open(folder / name, "rb") as f:
            arrays[name] = parse_idx(f.read(), name)
    return Mnist(
        x_train=arrays["train-images-idx3-ubyte.gz"],
        y_train=arrays["train-labels-idx1-ubyte.gz"],
        x_test=arrays["t10k-images-idx3-ubyte.gz"],
        y_test=arrays["t10k-labels-idx1-ubyte.gz"],
        source=str(folder.resolve()),
        sha256={name: sha for name, (_, sha) in FILES.items()},
    )
