import numpy as np
import pytest
import tensorflow as tf

from larq_bnas import data


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
    with pytest.raises(ValueError, match="Bad split"):
        data.load("digits", "train[::2]")
    with pytest.raises(ValueError, match="valid splits are: train, test"):
        data.load("digits", "validation")


def test_missing_tfds_data_says_how_to_provide_it(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match=r"not prepared in .*--data-dir"):
        data.load("cifar10", data_dir=tmp_path)
    with pytest.raises(data.DatasetNotFoundError, match="downloads/manual"):
        data.info("imagenet2012", data_dir=tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset 'no_such_set'"):
        data.load("no_such_set", data_dir=tmp_path)


def _write_folder(root, per_class=5):
    rng = np.random.RandomState(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            image = (rng.rand(20, 24, 3) * 255).astype("uint8")
            tf.io.write_file(str(root / cls / f"{i}.png"), tf.io.encode_png(image))


def test_image_folder_dataset(tmp_path):
    _write_folder(tmp_path / "imgs")
    name = f"folder:{tmp_path / 'imgs'}"
    assert data.info(name).num_classes == 2
    train = list(data.load(name, "train", input_size=16, batch_size=None, augment=True))
    test = list(data.load(name, "test", input_size=16, batch_size=None))
    assert len(train) == 8 and len(test) == 2
    assert train[0][0].shape == (16, 16, 3)
    assert {int(y) for _, y in train + test} == {0, 1}
    with pytest.raises(data.DatasetNotFoundError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'none'}")


def test_cifar_style_augmentation_keeps_shape():
    image = tf.random.uniform((32, 32, 3))
    out = data._cifar_train(image, 32)
    assert out.shape == (32, 32, 3)
    big = data._imagenet_train(tf.random.uniform((80, 100, 3)), 64)
    assert big.shape == (64, 64, 3)
    assert data._center_crop(tf.random.uniform((80, 100, 3)), 56).shape == (56, 56, 3)
