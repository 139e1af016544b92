"""The MNIST loader: IDX parsing, and the messages for missing, truncated or damaged files."""

import shutil
import struct

import numpy as np
import pytest

from training import data


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


def test_parse_idx_reads_shape_and_values():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(images)), images)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x01\x02\x08\x01" + b"\0" * 8, "bad magic"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01" + b"\0" * 4, "IDX type 0x0d"),
        (b"\x00\x00\x08\x03\x00\x00", "ends inside its IDX header"),
        (idx_bytes(np.zeros((2, 2), np.uint8))[:-1], "holds 3 values but its header promises 4"),
    ],
)
def test_parse_idx_rejects_malformed_data(raw, message):
    with pytest.raises(data.MnistError, match=message):
        data.parse_idx(raw, "x.idx")


def test_real_files_load_with_published_counts(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                  974, 1009]
    assert mnist.x_train.mean() == pytest.approx(33.318, abs=1e-3)


@pytest.fixture
def mnist_copy(tmp_path, mnist_dir):
    for name in data.FILES:
        shutil.copy(mnist_dir / name, tmp_path / name)
    return tmp_path


def test_missing_file_names_it_and_says_what_to_do(mnist_copy):
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.MnistError, match="t10k-labels-idx1-ubyte.gz is missing.*MNIST_DIR"):
        data.load(mnist_copy)


def test_truncated_file_is_reported_as_truncated(mnist_copy):
    path = mnist_copy / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.MnistError, match=r"train-labels-idx1-ubyte.gz is truncated "
                                              r"\(1000 of 28881 bytes\).*fetch it again"):
        data.load(mnist_copy)


def test_damaged_file_fails_the_checksum(mnist_copy):
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(data.MnistError, match="t10k-labels-idx1-ubyte.gz has sha256 .* expected "
                                              "f7ae60f9"):
        data.load(mnist_copy)



@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A real HTTP mirror on loopback serving a folder; the download cache under tmp_path."""
    import functools
    import http.server
    import threading

    served = tmp_path / "mirror"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=served)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(data, "MIRROR_URL", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield served
    server.shutdown()


def test_download_fills_the_cache_and_verifies(mirror, mnist_dir, tmp_path):
    for name in data.FILES:
        shutil.copy(mnist_dir / name, mirror / name)
    folder = data.locate()
    assert folder.is_relative_to(tmp_path / "cache")
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.FILES)


def test_a_wrong_download_is_refused_and_not_kept(mirror, mnist_dir, tmp_path):
    for name in data.FILES:
        shutil.copy(mnist_dir / name, mirror / name)
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not mnist")
    with pytest.raises(data.MnistError, match="t10k-labels-idx1-ubyte.gz .* not the original"):
        data.locate()
    kept = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert kept == sorted(set(data.FILES) - {"t10k-labels-idx1-ubyte.gz"})


def test_no_mirror_says_what_to_do(mirror):
    with pytest.raises(data.MnistError, match="Could not download .* set MNIST_DIR"):
        data.locate()
