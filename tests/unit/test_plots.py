"""The figures every run logs: what they show, read back from matplotlib's own objects."""

import numpy as np

from training import plots


def test_confusion_matrix_counts_true_against_predicted():
    matrix = plots.confusion_matrix(np.array([3, 3, 5]), np.array([3, 8, 5]))
    assert matrix[3, 3] == 1 and matrix[3, 8] == 1 and matrix[5, 5] == 1
    assert matrix.sum() == 3


def test_misclassified_drawings_show_the_digit_they_were_drawn_from_on_the_left():
    drawings = np.zeros((3, 28, 28), np.uint8)
    sources = np.full((3, 28, 28), 200, np.uint8)
    labels, predicted = np.array([1, 2, 3]), np.array([1, 7, 3])
    fig = plots.misclassified_figure(drawings, labels, predicted, sources=sources)
    (ax,) = [ax for ax in fig.axes if ax.images]
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape == (28, 58)
    assert (shown[:, :28] == 200).all() and (shown[:, 30:] == 0).all()
    assert ax.get_title() == "true 2 / pred 7"
    assert "(1 in all)" in fig.get_suptitle()
