"""USPS and Semeion: loaded from the shared files or a download, verified, drawn as the page."""

import functools
import gzip
import http.server
import io
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from contract import CANVAS_EXPORT_SIDE
from training import real_writers
from training.real_writers import FILES, RealWritersError


def test_shared_files_load_with_published_counts_and_digests(writers):
    counts = {"usps-train": [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644],
              "usps-test": [359, 264, 198, 166, 200, 160, 170, 147, 166, 177],
              "semeion": [161, 162, 159, 159, 161, 159, 161, 158, 155, 158]}
    for digits in (writers.usps_train, writers.usps_test, writers.semeion):
        assert digits.x.shape == (len(digits), 16, 16) and digits.x.dtype == np.uint8
        assert np.bincount(digits.y).tolist() == counts[digits.name]
        assert digits.x.max() == 255 and 0.1 < (digits.x > 127).mean() < 0.5  # ink, not paper
    assert writers.digests == {
        "usps-train": FILES["usps-zip.train.gz"][2], "usps-test": FILES["usps-zip.test.gz"][2],
        "semeion": FILES["semeion.data"][2]}
    users, held_out = writers.semeion_users, writers.semeion_eval
    assert len(users) == real_writers.SEMEION_USERS_ROWS == 800
    assert len(held_out) == 793
    np.testing.assert_array_equal(held_out.x[0], writers.semeion.x[800])


@pytest.fixture
def copy(tmp_path, writers):
    """A folder holding a copy of the three files, to damage."""
    for name in FILES:
        shutil.copy(writers.folder / name, tmp_path / name)
    return tmp_path


def test_semeion_in_another_copys_number_format_verifies(copy, writers):
    """UCI's copies write 1.0000 or 1, with spaces or commas: the arrays are the same."""
    rows = np.loadtxt(copy / "semeion.data")
    (copy / "semeion.data").write_text(
        "\n".join(",".join(f"{v:.4f}" for v in row) for row in rows) + "\n")
    again = real_writers.load(copy)
    assert again.semeion.digest == writers.semeion.digest


def test_missing_file_names_it_and_says_what_to_do(copy):
    (copy / "semeion.data").unlink()
    with pytest.raises(RealWritersError,
                       match=r"semeion.data is missing from .*REAL_WRITERS_DIR to download"):
        real_writers.load(copy)


def test_a_changed_digit_is_refused_by_its_digest(copy):
    path = copy / "usps-zip.test.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    path.write_bytes(gzip.compress(text.replace(" -1 ", " 1 ", 1).encode()))
    with pytest.raises(RealWritersError, match=r"usps-zip.test.gz parses to 2007 digits with "
                                               r"sha256 .*damaged or not the original. Delete "
                                               r"it and fetch it again"):
        real_writers.load(copy)


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[: len(raw) // 2], "does not parse as rows of numbers"),
    (lambda raw: gzip.compress(gzip.decompress(raw)[:-200]), "not rows of 257"),
])
def test_a_truncated_file_is_refused_with_what_to_do(copy, damage, message):
    path = copy / "usps-zip.train.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RealWritersError, match=f"{message}.*fetch it again"):
        real_writers.load(copy)


@pytest.fixture
def mirror(tmp_path, writers, monkeypatch):
    """The public sources, as a loopback HTTP server serving the files under their names."""
    served = tmp_path / "served"
    served.mkdir()
    names = {"usps-zip.train.gz": "zip.train.gz", "usps-zip.test.gz": "zip.test.gz",
             "semeion.data": "semeion.data"}
    for ours, theirs in names.items():
        shutil.copy(writers.folder / ours, served / theirs)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    for ours, theirs in names.items():
        _, count, digest = FILES[ours]
        monkeypatch.setitem(FILES, ours, (url + theirs, count, digest))
    monkeypatch.delenv("REAL_WRITERS_DIR", raising=False)
    monkeypatch.setattr(real_writers, "default_dir", lambda: tmp_path / "cache")
    yield served
    server.shutdown()
    server.server_close()


def test_without_a_folder_the_files_are_downloaded_and_verified(mirror, tmp_path):
    loaded = real_writers.load()
    assert loaded.folder == (tmp_path / "cache").resolve() and len(loaded.usps_test) == 2007


def test_a_download_that_is_not_the_original_is_refused_and_not_kept(mirror, tmp_path):
    rows = np.loadtxt(mirror / "semeion.data")
    rows[0, :256] = 1 - rows[0, :256]
    np.savetxt(mirror / "semeion.data", rows, fmt="%d")
    with pytest.raises(RealWritersError, match=r"download of semeion.data from http://127.0.0.1"
                                               r".*not the original.*REAL_WRITERS_DIR"):
        real_writers.load()
    assert not (tmp_path / "cache" / "semeion.data").exists()


def test_canvas_drawings_are_deterministic_dark_ink_on_the_page_canvas(writers):
    images = writers.usps_test.x[:40]
    pngs = real_writers.canvas_pngs(images, seed=3)
    assert pngs == real_writers.canvas_pngs(images, seed=3)
    assert pngs != real_writers.canvas_pngs(images, seed=4)
    sides = []
    for png in pngs:
        canvas = np.asarray(Image.open(io.BytesIO(png)))
        assert canvas.shape == (CANVAS_EXPORT_SIDE, CANVAS_EXPORT_SIDE)
        border = np.concatenate([canvas[0], canvas[-1], canvas[:, 0], canvas[:, -1]])
        assert border.min() == 255 and canvas.min() < 64  # light paper, dark ink
        rows, cols = np.nonzero(canvas < 128)
        sides.append(max(np.ptp(rows), np.ptp(cols)) / CANVAS_EXPORT_SIDE)
    assert 0.25 < min(sides) and max(sides) < 0.9 and np.ptp(sides) > 0.2  # sizes people draw


def test_training_images_are_the_drawings_as_the_served_graph_frames_them(writers):
    """What --real adds to training: MNIST's frame (ink in 20x20, centre of mass in the middle)."""
    digits = writers.usps_train.rows(0, 30)
    x, y = real_writers.training_images(digits, seed=0)
    assert x.shape == (30, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, digits.y)
    for image in x:
        rows, cols = np.nonzero(image > 32)
        assert 18 <= max(np.ptp(rows), np.ptp(cols)) + 1 <= 21
        mass = image.astype(float) / image.sum()
        centre = [(mass.sum(axis=axis) * np.arange(28)).sum() for axis in (1, 0)]
        assert np.allclose(centre, 14, atol=1.5)
