"""The data path on real files: digits through TFDS, image folders, the on-disk cache."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from nighttune.tasks.core.config import DatasetSpec
from nighttune.tasks.core.errors import ConfigError, DatasetUnavailable
from nighttune.tasks.data.datasets import CachedDataset, load_dataset, resolve_cache_dir
from nighttune.tasks.data.digits import Digits
from nighttune.tasks.data.splits import carve_codes
from tests.support.images import class_folder, pattern, write_image


def as_arrays(cached: CachedDataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*cached.split(split).as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels)


@pytest.fixture
def generate_calls(monkeypatch) -> list[int]:
    """Counts how many splits the digits builder generates (i.e. how often it runs)."""
    calls: list[int] = []
    original = Digits._generate_examples

    def counting(self, indices):
        calls.append(len(indices))
        return original(self, indices)

    monkeypatch.setattr(Digits, "_generate_examples", counting)
    return calls


def test_digits_splits_are_preprocessed_and_disjoint(digits: CachedDataset) -> None:
    assert digits.class_names == [str(d) for d in range(10)]
    assert digits.input_shape == (8, 8, 1)
    assert digits.num_examples == {"train": 1257, "validation": 270, "test": 270}
    seen = []
    for split, count in digits.num_examples.items():
        images, labels = as_arrays(digits, split)
        assert images.shape == (count, 8, 8, 1) and images.dtype == np.float32
        assert images.min() >= 0.0 and images.max() == pytest.approx(1.0)
        assert set(labels) == set(range(10))
        seen.append({img.tobytes() for img in images})
    # digits has a few exact duplicate images, so allow a handful of overlaps only
    assert len(seen[0] & seen[2]) < 5 and len(seen[1] & seen[2]) < 5


def test_digits_pixels_match_scikit_learn(digits: CachedDataset) -> None:
    from sklearn.datasets import load_digits

    images, _ = as_arrays(digits, "test")
    reference = load_digits().images / 16.0
    # every cached test image is one of scikit-learn's, to uint8 rounding
    distances = np.abs(images[:20, :, :, 0][:, None] - reference[None]).max(axis=(2, 3))
    assert (distances.min(axis=1) < 1 / 255 + 1e-6).all()


def test_images_at_their_size_are_cached_as_uint8_and_read_as_before(digits, tmp_path) -> None:
    """The entry keeps digits' uint8 pixels (a quarter of float32's bytes); read back they
    are bit for bit what preprocessing them to float32 gives (CACHE_FORMAT 3 stored that)."""
    from nighttune.tasks.data.blocks import read_numpy
    from nighttune.tasks.data.images import preprocess_image

    assert digits.stored == "uint8"
    stored = read_numpy(
        Path(digits.path) / "test", "x", digits.blocks("test"), dtype="uint8", shape=(8, 8, 1)
    )
    assert stored.shape == (270, 8, 8, 1)  # the files hold exactly the uint8 pixels
    assert sum(f.stat().st_size for f in Path(digits.path, "test").glob("x-*.bin")) == 270 * 64
    expected = np.stack([preprocess_image(tf.constant(x), (8, 8, 1)).numpy() for x in stored])
    images, _ = as_arrays(digits, "test")
    assert images.dtype == np.float32 and np.array_equal(images, expected)
    # Resized (or colour-converted) images are stored as the float32 they become.
    resized = load_dataset(DatasetSpec(image_size=(10, 10)), tmp_path)
    assert resized.stored == "float32" and resized.input_shape == (10, 10, 1)
    shards = sum(f.stat().st_size for f in Path(digits.path).rglob("*") if f.is_file())
    floats = sum(f.stat().st_size for f in Path(resized.path).rglob("*") if f.is_file())
    assert shards < floats / 2.5  # 64 uint8 pixels an image against 100 float32


def test_second_load_is_a_cache_hit_without_running_the_builder(tmp_path, generate_calls) -> None:
    first = load_dataset(DatasetSpec(), tmp_path)
    assert not first.cache_hit
    assert sorted(generate_calls) == [270, 270, 1257]

    second = load_dataset(DatasetSpec(), tmp_path)
    assert second.cache_hit
    assert len(generate_calls) == 3  # the builder did not run again
    assert second.path == first.path
    np.testing.assert_array_equal(as_arrays(first, "train")[0], as_arrays(second, "train")[0])


def test_other_preprocessing_gets_its_own_entry(tmp_path) -> None:
    small = load_dataset(DatasetSpec(), tmp_path)
    big = load_dataset(DatasetSpec(image_size=(12, 12), channels=3), tmp_path)
    assert big.path != small.path and not big.cache_hit
    assert big.input_shape == (12, 12, 3)
    images, _ = as_arrays(big, "validation")
    assert images.shape[1:] == (12, 12, 3)
    np.testing.assert_allclose(images[..., 0], images[..., 2])


def test_truncated_entry_is_rebuilt(tmp_path, generate_calls) -> None:
    first = load_dataset(DatasetSpec(), tmp_path)
    shard = max(Path(first.path, "train").glob("x-*.bin"), key=lambda p: p.stat().st_size)
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)

    rebuilt = load_dataset(DatasetSpec(), tmp_path)
    assert not rebuilt.cache_hit
    assert rebuilt.num_examples == first.num_examples
    assert as_arrays(rebuilt, "train")[0].shape[0] == 1257
    assert load_dataset(DatasetSpec(), tmp_path).cache_hit


def test_entry_without_meta_is_not_trusted(tmp_path) -> None:
    first = load_dataset(DatasetSpec(), tmp_path)
    (Path(first.path) / "meta.json").unlink()  # as if a copy stopped half-way
    again = load_dataset(DatasetSpec(), tmp_path)
    assert not again.cache_hit and (Path(again.path) / "meta.json").is_file()


def test_leftover_staging_folder_is_ignored_and_removed(tmp_path) -> None:
    from nighttune.tasks.storage.files import _HOST

    first = load_dataset(DatasetSpec(), tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = Path(f"{first.path}.tmp-{_HOST}-{dead.pid}-deadbeef")
    shutil.copytree(first.path, leftover)  # what a killed writer would leave
    (Path(first.path) / "meta.json").unlink()
    second = load_dataset(DatasetSpec(), tmp_path)
    assert not second.cache_hit and Path(second.path).name == Path(first.path).name
    assert not leftover.exists()


def test_meta_records_fingerprint_inputs(digits: CachedDataset) -> None:
    meta = json.loads((Path(digits.path) / "meta.json").read_text())
    assert meta["key"]["source"] == "digits"
    assert meta["key"]["version"] == "1.0.0"
    assert meta["key"]["preprocessing"]["input_shape"] == [8, 8, 1]
    assert all(len(d["sha256"]) == 64 for d in meta["files"].values())


def test_cache_dir_resolution(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("NIGHTTUNE_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(None) == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("NIGHTTUNE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir(None) == tmp_path / "xdg" / "nighttune"


def test_carve_codes_are_seeded_and_sized() -> None:
    a = carve_codes(1000, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert (a == carve_codes(1000, val_fraction=0.1, test_fraction=0.2, seed=3)).all()
    assert not (a == carve_codes(1000, val_fraction=0.1, test_fraction=0.2, seed=4)).all()
    assert np.bincount(a).tolist() == [700, 100, 200]
    assert np.bincount(carve_codes(10, val_fraction=0.0, test_fraction=0.0, seed=0)).tolist() == [
        10
    ]


def test_image_folder_loads_with_class_names(tmp_path) -> None:
    root = class_folder(tmp_path / "pets")
    (tmp_path / "pets" / "notes").mkdir()  # a subfolder without images is not a class
    (tmp_path / "pets" / "notes" / "readme.txt").write_text("not an image")
    cached = load_dataset(DatasetSpec(name=str(root)), tmp_path / "cache")
    assert cached.class_names == ["cat", "dog", "fox"]
    assert cached.input_shape == (16, 16, 1)
    assert sum(cached.num_examples.values()) == 36
    images, labels = as_arrays(cached, "train")
    for image, label in zip(images, labels, strict=True):
        # the class's bright band survives preprocessing: the label is recoverable
        band = image[..., 0].mean(axis=1).reshape(4, 4).mean(axis=1)
        assert band.argmax() == label
    assert load_dataset(DatasetSpec(name=str(root)), tmp_path / "cache").cache_hit


def test_image_folder_mixed_formats_and_a_broken_file(tmp_path, caplog) -> None:
    root = tmp_path / "mixed"
    kinds = [
        ("a.png", "L"),
        ("b.png", "RGBA"),
        ("c.jpg", "RGB"),
        ("d.BMP", "RGB"),
        ("e.gif", "L"),
        ("f.png", "I;16"),
        ("g.png", "LA"),
    ]
    for label, cls in enumerate(("x", "y")):
        for i, (name, mode) in enumerate(kinds):
            write_image(root / cls / f"{i}{name}", pattern(label * 2, seed=i), mode)
    (root / "x" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    spec = DatasetSpec(
        name=str(root), image_size=(8, 8), channels=3, val_fraction=0.2, test_fraction=0.2
    )
    cached = load_dataset(spec, tmp_path / "cache")
    assert cached.input_shape == (8, 8, 3)
    assert sum(cached.num_examples.values()) == 14  # the broken file is skipped
    caplog.clear()
    assert load_dataset(spec, tmp_path / "cache").cache_hit
    skipped = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert skipped == [f"dataset {root}: skipped 1 unreadable image file(s)"]  # not 15
    for split in cached.num_examples:
        images, _ = as_arrays(cached, split)
        assert images.shape[1:] == (8, 8, 3) and 0.0 <= images.min() and images.max() <= 1.0


def test_an_rgb_folder_is_cached_as_uint8_with_the_values_prediction_computes(tmp_path) -> None:
    """RGB images, some of another size (resized, then rounded to uint8 levels), are
    cached as uint8 pixels: a quarter of float32's bytes. Read back they are bit for bit
    what prediction's preprocessing (`load_image`) gives each file: no train/serve skew."""
    from nighttune.tasks.data.folders import ImageFolder
    from nighttune.tasks.data.images import load_image, tf_path

    root = tmp_path / "rgb"
    sizes = [16, 16, 24, 16, 9, 16, 40, 16, 16, 31, 16, 16]
    for label, cls in enumerate(("a", "b")):
        for i, size in enumerate(sizes):
            write_image(root / cls / f"{i:02d}.png", pattern(label * 2, size=size, seed=i), "RGB")
    spec = DatasetSpec(name=str(root), image_size=(16, 16), channels=3)
    cached = load_dataset(spec, tmp_path / "cache")
    assert cached.stored == "uint8" and cached.input_shape == (16, 16, 3)
    blocks = sum(f.stat().st_size for f in Path(cached.path).rglob("x-*.bin"))
    assert blocks == 24 * 16 * 16 * 3  # one byte a value
    folder = ImageFolder(spec)
    codes = carve_codes(
        len(folder.files),
        val_fraction=spec.val_fraction,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
    )
    for code, split in enumerate(("train", "validation", "test")):
        paths = [path for (path, _), c in zip(folder.files, codes, strict=True) if c == code]
        served = np.stack([load_image(tf_path(p), (16, 16, 3)).numpy() for p in paths])
        images, _ = as_arrays(cached, split)
        assert images.dtype == np.float32 and np.array_equal(images, served), split


def test_image_folder_version_changes_with_files(tmp_path) -> None:
    root = class_folder(tmp_path / "pets", per_class=6)
    first = load_dataset(DatasetSpec(name=str(root)), tmp_path / "cache")
    write_image(root / "cat" / "new.png", pattern(0, seed=99))
    second = load_dataset(DatasetSpec(name=str(root)), tmp_path / "cache")
    assert second.fingerprint != first.fingerprint
    assert sum(second.num_examples.values()) == sum(first.num_examples.values()) + 1


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, r"has 0 class subfolder\(s\)"),
        ({"only": 3}, r"has 1 class subfolder\(s\) with images \(only\)"),
    ],
)
def test_image_folder_needs_two_classes(tmp_path, layout, message) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    for cls, n in layout.items():
        for i in range(n):
            write_image(root / cls / f"{i}.png", pattern(0, seed=i))
    with pytest.raises(DatasetUnavailable, match=message):
        load_dataset(DatasetSpec(name=str(root)), tmp_path / "cache")


def test_missing_folder(tmp_path) -> None:
    with pytest.raises(DatasetUnavailable, match="does not exist"):
        load_dataset(DatasetSpec(name=str(tmp_path / "nope")), tmp_path / "cache")


def test_unknown_catalog_name_suggests_close_matches(tmp_path) -> None:
    with pytest.raises(
        DatasetUnavailable, match=r"unknown dataset 'fashion_mnsit'; did you mean fashion_mnist"
    ):
        load_dataset(DatasetSpec(name="fashion_mnsit"), tmp_path)


def test_non_image_catalog_dataset_is_refused(tmp_path) -> None:
    with pytest.raises(
        ConfigError, match="not an image classification dataset|no \\(image, label\\)"
    ):
        load_dataset(DatasetSpec(name="imdb_reviews"), tmp_path)


def test_unprepared_catalog_dataset_offline_fails_at_once(tmp_path, monkeypatch) -> None:
    # All traffic forced through a proxy that refuses connections: the network is blocked.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    downloads: list[str] = []
    monkeypatch.setattr(
        "tensorflow_datasets.core.dataset_builder.DatasetBuilder.download_and_prepare",
        lambda self, *a, **k: downloads.append(self.name),
    )
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(DatasetSpec(name="mnist", data_dir=str(tmp_path / "tfds")), tmp_path)
    message = str(err.value)
    assert "mnist is not prepared in" in message and "--data-dir" in message
    assert "TFDS_DATA_DIR" in message and "127.0.0.1:9" in message
    assert downloads == []  # it never started TFDS's minutes-long retrying download


def test_cache_dataset_task_in_a_flow(prefect_harness, tmp_path) -> None:
    from prefect import flow

    from nighttune.flows.steps import cache_dataset

    @flow
    def only_data(cache_dir: str) -> CachedDataset:
        return cache_dataset(DatasetSpec(), cache_dir)

    result = only_data(str(tmp_path))
    assert isinstance(result, CachedDataset) and result.num_examples["train"] == 1257
    assert cache_dataset.tags == {"cpu"}
    batch = next(iter(result.split("train").batch(32)))
    assert batch[0].shape == (32, 8, 8, 1) and batch[0].dtype == tf.float32


def test_two_processes_preparing_digits_at_once_both_succeed(tmp_path) -> None:
    import subprocess
    import sys

    from tests.support.harness import ROOT

    script = (
        "import sys; from tasks.core.config import DatasetSpec; "
        "from tasks.data.datasets import load_dataset; "
        "print(load_dataset(DatasetSpec(), sys.argv[1]).num_examples['train'])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == "1257"
    assert len(list((tmp_path / "datasets").iterdir())) == 1


def test_batches_visit_every_example_once_per_pass_reshuffled_repeatably(
    digits: CachedDataset,
) -> None:
    def one_pass(ds) -> list[bytes]:
        return [image.tobytes() for x, _ in ds.as_numpy_iterator() for image in x]

    split = one_pass(digits.split("train").batch(512))
    ordered = one_pass(digits.batches("train", 100))
    assert ordered == split  # unshuffled: the split's order, the last batch short
    shuffled = digits.batches("train", 100, shuffle=True, seed=3)
    first, second = one_pass(shuffled), one_pass(shuffled)
    assert sorted(first) == sorted(second) == sorted(split)  # each pass: every example once
    assert first != second and first != split  # a new order every pass
    assert one_pass(digits.batches("train", 100, shuffle=True, seed=3)) == first  # repeatable
    assert one_pass(digits.batches("train", 100, shuffle=True, seed=4)) != first


def _images(x) -> list[bytes]:
    return [image.tobytes() for image in np.asarray(x)]


def test_streamed_batches_read_blocks_in_a_new_order_every_pass(digits_in_blocks) -> None:
    """Past the budget a pass reads the blocks from disk in a fresh seeded order, the
    examples shuffled through a bounded buffer: every example once, in another order."""
    cached = digits_in_blocks
    every = sorted(_images(cached.arrays("train")[0]))
    budget = cached.nbytes("train") // 4  # a quarter: a buffer of 1/16 of the split

    def one_pass(ds) -> list[bytes]:
        return [image for x, _ in ds.as_numpy_iterator() for image in _images(x)]

    assert one_pass(cached.batches("train", 100, budget=budget)) == _images(
        cached.arrays("train")[0]
    )  # unshuffled: the stored order
    shuffled = cached.batches("train", 100, shuffle=True, seed=3, budget=budget)
    first, second = one_pass(shuffled), one_pass(shuffled)
    assert sorted(first) == sorted(second) == every and first != second
    again = cached.batches("train", 100, shuffle=True, seed=3, budget=budget)
    assert one_pass(again) == first  # seeded: repeatable


def test_every_window_holds_a_batch_whatever_the_budget(digits_in_blocks) -> None:
    """A budget whose quarter is one block (64 images), a batch of 100: each window takes
    enough blocks for a batch, and no short window is left at the end of an epoch (the
    compiled loop failed on one smaller than its batch)."""
    cached = digits_in_blocks
    n = cached.num_examples["train"]
    for batch_size in (1, 64, 65, 100, 200):
        windows, per_epoch = cached.windows("train", seed=0, budget=1, batch_size=batch_size)
        sizes = [len(y) for _, y, _ in windows.take(2 * per_epoch).as_numpy_iterator()]
        assert sum(sizes[:per_epoch]) == sum(sizes[per_epoch:]) == n
        assert min(sizes) >= batch_size, (batch_size, sizes)


def test_windows_give_every_example_once_an_epoch_shuffled_by_seed(digits_in_blocks) -> None:
    """The fused loop's input past the budget: windows of whole blocks (a quarter of the
    budget each; the blocks left at the end join the last), stored uint8, every example
    once an epoch, a new order every epoch."""
    cached = digits_in_blocks
    stored, _ = cached.stored_arrays("train")
    every = sorted(_images(stored))
    budget = 4 * 3 * 64 * 64  # a quarter holds three blocks of 64 images of 64 bytes
    windows, per_epoch = cached.windows("train", seed=5, budget=budget, batch_size=32)
    assert per_epoch == 6  # 20 blocks: five windows of three, the last of five

    def epochs(ds, count: int) -> list[list[bytes]]:
        it, out = iter(ds), []
        for _ in range(count):
            seen, sizes = [], []
            for _ in range(per_epoch):
                x, y, order = next(it)
                assert x.dtype == tf.uint8 and len(y) == len(x)
                assert sorted(order.numpy()) == list(range(len(x)))
                seen += _images(tf.gather(x, order))
                sizes.append(len(x))
            # three blocks, five in the last (the short block may be in any of them)
            assert all(2 * 64 < size <= 3 * 64 for size in sizes[:-1]), sizes
            assert 4 * 64 < sizes[-1] <= 5 * 64, sizes
            out.append(seen)
        return out

    first, second = epochs(windows, 2)
    assert sorted(first) == sorted(second) == every and first != second
    again = cached.windows("train", seed=5, budget=budget, batch_size=32)[0]
    assert epochs(again, 1)[0] == first
    other = cached.windows("train", seed=6, budget=budget, batch_size=32)[0]
    assert epochs(other, 1)[0] != first
    # converted as the model takes them: what the whole split converts to
    x, _, _ = next(iter(windows))
    rows = {image: i for i, image in enumerate(_images(stored))}
    expected = tf.gather(cached.arrays("train")[0], [rows[image] for image in _images(x)])
    assert np.array_equal(cached.to_model(x).numpy(), expected.numpy())
