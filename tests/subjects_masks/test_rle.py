"""COCO RLE: round trips on random/edge masks, byte-identical strings to pycocotools."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.stages.subjects.rle import mask_bbox, mask_to_rle, rle_area, rle_iou, rle_to_mask, string_to_runs

# Written by pycocotools 2.0.11 (mask.encode on the same arrays): the on-disk format we promise.
GOLDEN = [
    ("box", (5, 7), (slice(1, 4), slice(2, 6)), ";32000004"),
    ("full", (4, 4), (slice(None), slice(None)), "0`0"),
]


def _random_masks(rng, n):
    for t in range(n):
        h, w = (int(v) for v in rng.integers(0, 33, 2))
        kind = t % 5
        if kind == 0:
            m = rng.random((h, w)) < rng.random()
        elif kind == 1:
            m = np.zeros((h, w), bool)
        elif kind == 2:
            m = np.ones((h, w), bool)
        elif kind == 3:  # a blob with a hole, like a real mask
            m = np.zeros((h, w), bool)
            if h > 4 and w > 4:
                m[1:h - 1, 1:w - 1] = True
                m[h // 2, w // 2] = False
        else:  # long runs: exercises multi-group (> 5 bit) deltas of both signs
            m = np.zeros((h, w), bool)
            m[:, : w // 3] = True
            m[h // 2:, w // 2:] = True
        yield m


@pytest.mark.parametrize("name,shape,region,counts", GOLDEN)
def test_known_strings(name, shape, region, counts):
    m = np.zeros(shape, bool)
    m[region] = True
    rle = mask_to_rle(m)
    assert rle == {"size": list(shape), "counts": counts}
    assert np.array_equal(rle_to_mask(rle), m)


def test_corner_pixels_string():
    m = np.zeros((3, 4), bool)
    m[0, 0] = m[2, 3] = True
    assert mask_to_rle(m)["counts"] == "01:0"          # pycocotools: b'01:0'


def test_round_trip_random_and_edge_masks():
    rng = np.random.default_rng(7)
    for m in _random_masks(rng, 600):
        rle = mask_to_rle(m)
        back = rle_to_mask(rle)
        assert back.shape == m.shape and back.dtype == bool
        assert np.array_equal(back, m)
        assert rle_area(rle) == int(m.sum())
        assert isinstance(rle["counts"], str)


def test_odd_sizes_and_dtypes():
    for shape in [(1, 1), (1, 17), (17, 1), (3, 1000), (0, 5), (5, 0), (0, 0)]:
        m = np.zeros(shape, np.uint8)
        if m.size:
            m.flat[::3] = 255
        rle = mask_to_rle(m)
        assert rle["size"] == list(shape)
        assert np.array_equal(rle_to_mask(rle), m.astype(bool))
    assert mask_to_rle(np.zeros((0, 0)))["counts"] == "0"  # maskApi: one zero-length run


def test_large_sparse_mask_is_compact():
    m = np.zeros((1080, 1920), bool)
    m[200:900, 400:1500] = True
    rle = mask_to_rle(m)
    assert len(rle["counts"]) < 3000      # ~2 runs a column, most deltas one char
    assert rle_area(rle) == 700 * 1100
    assert mask_bbox(rle_to_mask(rle)) == (400, 200, 1500, 900)


def test_iou():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:5, 0:10] = True
    b[0:10, 0:5] = True
    assert rle_iou(mask_to_rle(a), mask_to_rle(b)) == pytest.approx(25 / 75)
    assert rle_iou(mask_to_rle(a), mask_to_rle(a)) == 1.0
    empty = mask_to_rle(np.zeros((10, 10), bool))
    assert rle_iou(empty, empty) == 0.0
    with pytest.raises(ValueError):
        rle_iou(mask_to_rle(a), mask_to_rle(np.zeros((10, 11), bool)))


def test_uncompressed_counts_and_bad_input():
    m = np.zeros((2, 3), bool)
    m[1, 1] = True
    assert np.array_equal(rle_to_mask({"size": [2, 3], "counts": [3, 1, 2]}), m)
    with pytest.raises(ValueError):
        rle_to_mask({"size": [2, 3], "counts": [3, 1]})          # runs do not cover the image
    with pytest.raises(ValueError):
        rle_to_mask({"counts": "0"})                             # no size
    with pytest.raises(ValueError):
        string_to_runs("0a")                                     # 'a' = 49 > 31 with the 'more' bit: truncated
    with pytest.raises(ValueError):
        string_to_runs(" ")                                      # below '0'


def test_byte_identical_to_pycocotools():
    coco = pytest.importorskip("pycocotools.mask", reason="pycocotools cross-check (pip install pycocotools)")
    rng = np.random.default_rng(11)
    checked = 0
    for m in _random_masks(rng, 800):
        if m.size == 0:
            continue  # pycocotools cannot encode empty arrays
        ref = coco.encode(np.asfortranarray(m.astype(np.uint8)))
        ours = mask_to_rle(m)
        assert ours["counts"] == ref["counts"].decode("ascii")
        assert ours["size"] == list(ref["size"])
        assert np.array_equal(coco.decode(ref).astype(bool), rle_to_mask(ours))
        assert rle_area(ours) == int(coco.area(ref))
        checked += 1
    big = np.zeros((480, 640), np.uint8)
    big[40:400, 100:500] = 1
    big[200:260, 250:300] = 0
    a, b = mask_to_rle(big), coco.encode(np.asfortranarray(big))
    assert a["counts"] == b["counts"].decode("ascii")
    other = np.roll(big, 37, axis=1)
    c, d = mask_to_rle(other), coco.encode(np.asfortranarray(other))
    assert rle_iou(a, c) == pytest.approx(float(coco.iou([b], [d], [0])[0][0]))
    assert checked > 500
