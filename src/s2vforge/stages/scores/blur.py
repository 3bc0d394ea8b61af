"""Sharpness of a clip: CPBD and variance of the Laplacian.

CPBD (Narvekar & Karam, "A No-Reference Image Blur Metric Based on the Cumulative Probability
of Blur Detection", IEEE TIP 2011), written here from the paper's description:

1. Edges: a Canny map decides which 64x64 blocks are *edge blocks* (more than 0.2 % of their
   pixels are edges); widths are measured at vertical Sobel edges (horizontal gradient,
   thinned along the row, threshold sqrt(4 * mean(gx^2)), the usual Sobel auto-threshold).
2. Edge width (Marziliano et al.): along the row, from the edge pixel to the local intensity
   extremum on each side (the intensity keeps rising, or falling, towards it); the width is
   the distance between the two extrema.
3. Just-noticeable-blur width per block from its contrast (max - min grey level):
   w_JNB = 5 if contrast <= 50 else 3.
4. Probability of detecting blur at an edge: P_blur = 1 - exp(-(w / w_JNB) ** beta), beta = 3.6.
5. CPBD = P(P_blur <= P_JNB) with P_JNB = 63 %: the share of edges whose blur is not noticed.

CPBD is in [0, 1], higher is sharper; the recipe default keeps [0.05, 1.0). Widths are in
pixels, so both metrics run on grey frames resized to a fixed working size: long side
`scorer_params.blur.long_side` (512 px in the default recipe; analysis frames have long side
~640, so normally a downscale). The score describes sharpness at that display size and does not
depend on the source size; a 176x144 source is upscaled and honestly scores as blurry. The clip
value is the mean over up to `max_frames` evenly spread analysis frames that have edge blocks; a
clip with none (black/flat frames) scores 0.0. The Laplacian variance (3x3 kernel, grey levels
0..255, squared) is the mean over those frames. The constants below define CPBD itself.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from s2vforge.media.frames import ClipFrames

COLUMNS = ("score_blur_cpbd", "score_blur_laplacian")

BLOCK_SIZE = 64               # CPBD paper: 64x64 blocks
EDGE_BLOCK_FRACTION = 0.002   # CPBD paper: edge block if > 0.2 % of its pixels are edges
JNB_CONTRAST_SPLIT = 50       # CPBD paper: contrast <= 50 -> w_JNB 5, else 3
JNB_WIDTH_LOW_CONTRAST = 5
JNB_WIDTH_HIGH_CONTRAST = 3
BETA = 3.6                    # CPBD paper: fitted psychometric slope
P_JNB = 0.63                  # CPBD paper: probability of blur detection at the JNB
CANNY_SIGMA = math.sqrt(2.0)  # Canny pre-smoothing (the common MATLAB default)
CANNY_NON_EDGE_FRACTION = 0.7 # high threshold = 70th percentile of gradient magnitude
CANNY_LOW_RATIO = 0.4         # low threshold = 0.4 * high
CANNY_MIN_HIGH = 8.0          # Sobel units: at least ~1 grey level per pixel of slope
SOBEL_THRESHOLD_SCALE = 4.0   # edge if gx^2 > 4 * mean(gx^2)
MAX_WALK = 32                 # px per side; CPBD only tells widths below w_JNB (<= 5) apart, so a cap changes nothing


def working_gray(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """HxWx3 uint8 RGB -> float32 grey (0..255, BT.601 weights) with the long side resized."""
    gray = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    s = long_side / max(h, w)
    if abs(s - 1.0) < 1e-9:
        return gray
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def canny_edges(gray: np.ndarray) -> np.ndarray:
    """Boolean Canny map with thresholds adapted to the frame (70th percentile rule)."""
    u8 = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    smooth = cv2.GaussianBlur(u8, (0, 0), CANNY_SIGMA)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx[::2, ::2], gy[::2, ::2])  # a quarter of the pixels is plenty for a percentile
    high = max(float(np.quantile(magnitude, CANNY_NON_EDGE_FRACTION)), CANNY_MIN_HIGH)
    return cv2.Canny(smooth, CANNY_LOW_RATIO * high, high, L2gradient=True) > 0


def sobel_vertical_edges(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thinned vertical-edge map from the horizontal Sobel gradient, and that gradient."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    mag = np.abs(gx)
    strong = gx * gx > SOBEL_THRESHOLD_SCALE * float(np.mean(gx.astype(np.float64) ** 2))
    edges = np.zeros(gray.shape, dtype=bool)
    centre = mag[:, 1:-1]
    row_max = (centre > mag[:, :-2]) & (centre >= mag[:, 2:])   # thin: local maximum along the row
    edges[1:-1, 1:-1] = strong[1:-1, 1:-1] & row_max[1:-1]
    return edges, gx


def _walk(gray: np.ndarray, rows: np.ndarray, cols: np.ndarray, rising: np.ndarray, step: int) -> np.ndarray:
    """Pixels walked from each edge pixel along its row (step +1 right, -1 left) while the
    intensity keeps moving towards the extremum on that side: up to the right of a rising
    edge, down to its left (mirrored for falling edges). Stops at MAX_WALK."""
    count = np.zeros(len(rows), dtype=np.int32)
    pos = cols.astype(np.int64)
    active = np.arange(len(rows))
    towards_max = rising if step > 0 else ~rising
    for _ in range(MAX_WALK):
        nxt = pos[active] + step
        inside = (nxt >= 0) & (nxt < gray.shape[1])
        active, nxt = active[inside], nxt[inside]
        if active.size == 0:
            break
        here, there = gray[rows[active], pos[active]], gray[rows[active], nxt]
        moving = np.where(towards_max[active], there > here, there < here)
        active, nxt = active[moving], nxt[moving]
        pos[active] = nxt
        count[active] += 1
    return count


def edge_widths(gray: np.ndarray, rows: np.ndarray, cols: np.ndarray, rising: np.ndarray) -> np.ndarray:
    """Marziliano width at each edge pixel: distance between the extrema on either side."""
    rising = np.asarray(rising, dtype=bool)
    return _walk(gray, rows, cols, rising, +1) + _walk(gray, rows, cols, rising, -1)


def _block_view(a: np.ndarray, pad_mode: str) -> np.ndarray:
    h, w = a.shape
    ph, pw = -h % BLOCK_SIZE, -w % BLOCK_SIZE
    padded = np.pad(a, ((0, ph), (0, pw)), mode=pad_mode)
    return padded.reshape(padded.shape[0] // BLOCK_SIZE, BLOCK_SIZE, padded.shape[1] // BLOCK_SIZE, BLOCK_SIZE)


def cpbd_counts(gray: np.ndarray) -> tuple[int, int]:
    """(edges whose blur is below the JNB, edges measured) for one grey frame."""
    h, w = gray.shape
    if h < 3 or w < 3:
        return 0, 0
    gray = np.rint(gray)  # whole grey levels, as in the 8-bit images the method was designed on
    canny = canny_edges(gray)
    sobel, gx = sobel_vertical_edges(gray)

    blocks = _block_view(gray, "edge")  # edge padding leaves each block's max/min unchanged
    contrast = blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))
    edge_count = _block_view(canny, "constant").sum(axis=(1, 3))
    bh = np.minimum(BLOCK_SIZE, h - BLOCK_SIZE * np.arange(edge_count.shape[0]))
    bw = np.minimum(BLOCK_SIZE, w - BLOCK_SIZE * np.arange(edge_count.shape[1]))
    is_edge_block = edge_count > EDGE_BLOCK_FRACTION * np.outer(bh, bw)
    w_jnb = np.where(contrast <= JNB_CONTRAST_SPLIT, JNB_WIDTH_LOW_CONTRAST, JNB_WIDTH_HIGH_CONTRAST)

    rows, cols = np.nonzero(sobel)
    by, bx = rows // BLOCK_SIZE, cols // BLOCK_SIZE
    keep = is_edge_block[by, bx]
    rows, cols, by, bx = rows[keep], cols[keep], by[keep], bx[keep]
    widths = edge_widths(gray, rows, cols, gx[rows, cols] > 0)
    measured = widths > 0
    widths = widths[measured].astype(np.float64)
    jnb = w_jnb[by[measured], bx[measured]]
    p_blur = 1.0 - np.exp(-np.abs(widths / jnb) ** BETA)
    return int(np.count_nonzero(p_blur <= P_JNB)), int(widths.size)


def cpbd(gray: np.ndarray) -> float | None:
    """CPBD of one grey frame (at the size given), None when it has no measurable edges."""
    sharp, total = cpbd_counts(gray)
    return sharp / total if total else None


def laplacian_variance(gray: np.ndarray) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_32F).astype(np.float64).var())


def score_blur(frames: ClipFrames, *, long_side: int, max_frames: int) -> dict:
    """CPBD and Laplacian variance at `long_side` over up to `max_frames` frames
    (scorer_params.blur; the default recipe's 8 frames, 4 s at 2 fps, measure a 20 s clip as well
    as 40 and keep the cost per clip bounded)."""
    if not frames.rgb:
        return dict.fromkeys(COLUMNS)
    grays = [working_gray(f, long_side) for f in frames.cropped([frames.rgb[i] for i in frames.pick(max_frames)])]
    per_frame = [v for v in (cpbd(g) for g in grays) if v is not None]
    return {
        "score_blur_cpbd": float(np.mean(per_frame)) if per_frame else 0.0,
        "score_blur_laplacian": float(np.mean([laplacian_variance(g) for g in grays])),
    }
