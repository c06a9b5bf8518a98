"""The embedded dataset's facts and defaults, stated once (no TensorFlow: the CLI's help
and the pipeline's options read them). ``larq_bnas.training.data.DIGITS`` is the public
name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Digits:
    """scikit-learn's 1,797 real 8x8 handwritten digits, split once with a fixed seed, and
    the settings that train a model on them well in minutes on 2 CPU cores.

    Attributes:
        name: the dataset name (``--dataset digits``).
        image_shape: the native images, (8, 8, 1), values in [0, 1].
        num_classes: the ten digits.
        examples: images in scikit-learn's set.
        test_fraction: share of the images in the fixed test split.
        split_seed: seed of the permutation that splits them.
        mean, std: normalisation of the pixel values.
        input_size: the square input size models get when none is given.
        recipe, epochs, batch_size: the training defaults on this set.
    """

    name: str = "digits"
    image_shape: tuple[int, int, int] = (8, 8, 1)
    num_classes: int = 10
    examples: int = 1797
    test_fraction: float = 0.2
    split_seed: int = 0
    mean: tuple[float, ...] = (0.3,)
    std: tuple[float, ...] = (0.4,)
    input_size: int = 16
    recipe: str = "digits"
    epochs: int = 12
    batch_size: int = 64

    @property
    def splits(self) -> dict[str, int]:
        """Images per split of the fixed split: ``{"train": 1438, "test": 359}``."""
        test = int(round(self.examples * self.test_fraction))
        return {"train": self.examples - test, "test": test}


DIGITS = Digits()
