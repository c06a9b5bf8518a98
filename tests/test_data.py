import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from larq_bnas.training import data


def test_digits_split_is_fixed_and_disjoint():
    train_x, train_y = data.digits_arrays("train")
    test_x, test_y = data.digits_arrays("test")
    assert len(train_y) == 1438 and len(test_y) == 359
    assert set(np.unique(train_y)) == set(range(10))
    np.testing.assert_array_equal(data.digits_arrays("test")[1], test_y)
    train_rows = {x.tobytes() for x in train_x}
    assert sum(x.tobytes() in train_rows for x in test_x) < 10  # (a few digits repeat)


def test_load_resizes_batches_and_slices():
    ds = data.load("digits", "train[:50%]", input_size=16, batch_size=32)
    x, y = next(iter(ds))
    assert x.shape == (32, 16, 16, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert sum(int(b[1].shape[0]) for b in ds) == data.num_examples("digits", "train[:50%]") == 719
    assert data.num_examples("digits", "train[50%:]") == 719
    one = next(iter(data.load("digits", "test", input_size=8, channels=1, batch_size=4)))[0]
    assert one.shape == (4, 8, 8, 1)
    assert data.eval_split("digits") == "test"
    with pytest.raises(ValueError, match="Bad split"):
        data.load("digits", "train[::2]")
    with pytest.raises(ValueError, match="valid splits are: train, test"):
        data.load("digits", "validation")
    with pytest.raises(ValueError, match="Unknown augmentation 'foo'"):
        data.load("digits", augment="foo")


def test_digits_are_normalised_and_reshuffled_each_epoch():
    ds = data.load("digits", "train", input_size=8, batch_size=None, seed=1)
    first = np.stack([x.numpy() for x, _ in ds])
    second = np.stack([x.numpy() for x, _ in ds])
    assert first.shape == (1438, 8, 8, 3)
    assert abs(first.mean()) < 0.2 and 0.8 < first.std() < 1.3  # (x - 0.3) / 0.4
    assert not np.array_equal(first, second)  # a new order every epoch
    np.testing.assert_allclose(np.sort(first.ravel()), np.sort(second.ravel()))


def test_missing_tfds_data_says_how_to_provide_it(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match=r"not prepared in .*--data-dir") as err:
        data.load("cifar10", data_dir=tmp_path)
    assert "download_and_prepare()" in str(err.value) and "--dataset digits" in str(err.value)
    with pytest.raises(data.DatasetNotFoundError, match="downloads/manual"):
        data.info("imagenet2012", data_dir=tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset 'no_such_set'"):
        data.load("no_such_set", data_dir=tmp_path)
    assert os.listdir(tmp_path) == []  # nothing was downloaded or prepared


# A real (tiny) tensorflow-datasets set, prepared offline in a temporary data_dir: each
# class is one flat colour, so the pipeline's output values can be checked exactly.
COLOURS = np.array([[255, 0, 0], [0, 128, 255], [40, 200, 90]], np.uint8)


class LarqBnasTinyColours(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(12), "test": self._generate_examples(6)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"image": np.broadcast_to(COLOURS[i % 3], (32, 32, 3)).copy(), "label": i % 3}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    tfds.builder("larq_bnas_tiny_colours", data_dir=str(root)).download_and_prepare()
    return root


def test_tfds_dataset_pipeline(tfds_dir):
    name = "larq_bnas_tiny_colours"
    meta = data.info(name, data_dir=tfds_dir)
    assert meta.num_classes == 3 and meta.image_shape == (32, 32, 3)
    assert meta.splits == {"train": 12, "test": 6}
    assert data.eval_split(name, tfds_dir) == "test"
    assert data.num_examples(name, "train[:50%]", tfds_dir) == 6
    test = list(data.load(name, "test", input_size=16, batch_size=None, data_dir=tfds_dir))
    assert len(test) == 6
    for image, label in test:  # resized and normalised with the ImageNet statistics
        expected = (COLOURS[int(label)] / 255.0 - data.IMAGENET_MEAN) / data.IMAGENET_STD
        assert image.shape == (16, 16, 3)
        np.testing.assert_allclose(image.numpy(), np.broadcast_to(expected, (16, 16, 3)), atol=1e-4)
    batches = list(
        data.load(
            name, "train", input_size=16, batch_size=5, data_dir=tfds_dir, drop_remainder=True
        )
    )
    assert [b[0].shape[0] for b in batches] == [5, 5]
    with pytest.raises(ValueError, match="valid splits are: .*train"):
        data.load(name, "validation", data_dir=tfds_dir)


def test_training_pipeline_crops_with_padding():
    # CIFAR style: zero padding of 4 then a random 32-crop shows black borders sometimes.
    image = tf.ones((32, 32, 3))
    tf.random.set_seed(0)
    crops = np.stack([data.cifar_augment(image, 32).numpy() for _ in range(20)])
    assert crops.shape == (20, 32, 32, 3)
    assert set(np.unique(crops)) <= {0.0, 1.0}
    assert (crops == 0).any() and (crops.reshape(20, -1).min(axis=1) == 1).sum() < 20
    big = data.imagenet_augment(tf.random.uniform((80, 100, 3)), 64)
    assert big.shape == (64, 64, 3)
    assert 0.0 <= float(tf.reduce_min(big)) and float(tf.reduce_max(big)) <= 1.0
    ramp = tf.reshape(tf.range(100 * 80, dtype=tf.float32), (80, 100, 1))
    crop = data.center_crop(ramp, 70)  # the central 70 x 70 of the 80 x 100 image
    assert crop.shape == (70, 70, 1)
    assert float(crop[0, 0, 0]) == pytest.approx(5 * 100 + 15)


def _write_folder(root, per_class=5, size=(20, 24)):
    rng = np.random.RandomState(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            image = (rng.rand(*size, 3) * 255).astype("uint8")
            tf.io.write_file(str(root / cls / f"{i}.png"), tf.io.encode_png(image))


def test_image_folder_dataset(tmp_path):
    _write_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    name = f"folder:{tmp_path / 'imgs'}"
    meta = data.info(name)
    assert meta.num_classes == 2 and meta.splits == {"train": 8, "test": 2}
    train = list(data.load(name, "train", input_size=16, batch_size=None, augment=True))
    test = list(data.load(name, "test", input_size=16, batch_size=None))
    assert len(train) == 8 and len(test) == 2
    assert train[0][0].shape == (16, 16, 3)
    assert {int(y) for _, y in train + test} == {0, 1}
    assert len(list(data.load(name, "train[:50%]", input_size=16, batch_size=None))) == 4
    with pytest.raises(data.DatasetNotFoundError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'none'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(data.DatasetNotFoundError, match="No images"):
        data.load(f"folder:{tmp_path / 'empty'}")


def test_image_folder_with_split_folders(tmp_path):
    _write_folder(tmp_path / "set" / "train", per_class=3)
    _write_folder(tmp_path / "set" / "validation", per_class=2)
    name = f"folder:{tmp_path / 'set'}"
    assert data.info(name).splits == {"train": 6, "validation": 4}
    assert data.eval_split(name) == "validation"
    x, y = next(iter(data.load(name, "validation", input_size=12, batch_size=4)))
    assert x.shape == (4, 12, 12, 3) and sorted(y.numpy().tolist()) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="valid splits are: train, validation"):
        data.load(name, "test")
