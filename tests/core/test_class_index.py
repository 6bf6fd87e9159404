"""The class index against counts done by hand."""
import numpy as np
import pytest

from fairseg_bench.core.class_index import ClassIndex, label_pixel_counts


def test_counts_sets_and_frequencies():
    labels = [
        np.array([[0, 0], [1, 255]]),
        np.array([[2, 2], [2, 2]]),
        np.array([[0, 255], [255, 255]]),
    ]
    index = ClassIndex.from_labels(labels, num_classes=4)
    assert index.pixel_counts.tolist() == [[2, 1, 0, 0], [0, 0, 4, 0], [1, 0, 0, 0]]
    assert index.class_pixel_counts().tolist() == [3, 1, 4, 0]
    assert index.class_frequencies().tolist() == pytest.approx([3 / 8, 1 / 8, 4 / 8, 0])
    assert index.images_with(0).tolist() == [0, 2]
    assert index.images_with(0, min_pixels=2).tolist() == [0]
    assert index.images_with(3).tolist() == []
    assert index.image_share().tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3, 0])
    assert (index.num_images, index.num_classes) == (3, 4)


def test_out_of_range_label_names_the_value():
    with pytest.raises(ValueError, match="label value 7"):
        label_pixel_counts(np.array([[0, 7]]), num_classes=4)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        ClassIndex(np.zeros(3))
