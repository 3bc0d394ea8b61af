"""Class-agnostic salient-object boxes: the embedded stand-in for open-vocabulary detection.

No package ships an open-vocabulary detector's weights, so the embedded backend does not know
*what* an object is: it finds regions that stand out from the frame and names them "object".
Rows from it say so (backend `saliency-*`), and no caption phrase is attached to them.

1. A saliency map at a small working size:
   - `spectral_residual` (Hou & Zhang, CVPR 2007): log amplitude spectrum minus its 3x3 local
     mean, back-transformed with the original phase, squared and blurred, on a 64 px image;
   - `frequency_tuned` (Achanta et al., CVPR 2009): distance of each Gaussian-blurred Lab pixel
     from the image's mean Lab colour;
   - `combined` (default): the mean of the two maps, each scaled to [0, 1]; the spectral residual
     marks small textured things, the frequency-tuned map whole uniformly coloured objects.
2. Threshold at k x the map's mean (Hou & Zhang and Achanta both use an adaptive threshold of a
   small multiple of the mean: 3x and 2x), close small gaps, connected components.
3. Each component's box refined by GrabCut (Rother et al. 2004) seeded with the component as
   probable foreground inside its widened box; the refined box is the largest foreground blob.
"""
from __future__ import annotations

import numpy as np

from .facedet import Detection, clip_box, nms

SR_SIDE = 64                 # Hou & Zhang 2007: the spectral residual is computed on a 64 px image
SR_BLUR_SIGMA = 2.5          # ours: Hou & Zhang 2007 smooth the map with a Gaussian; 2.5 px at the 64 px size
FT_BLUR = 5                  # Achanta et al. 2009: 5x5 Gaussian before the Lab distance
WORK_SIDE = 256              # ours: thresholding / components / GrabCut run at this long side
THRESHOLD_K = 2.5            # between Hou & Zhang's 3x mean and Achanta's 2x mean adaptive threshold
MIN_REGION_FRAC = 0.01       # ours: components under 1% of the frame are noise (box rules drop <4% anyway)
MAX_REGIONS = 5              # ours: at most this many salient regions per frame, by score
GRABCUT_ITERS = 3            # ours: OpenCV's grabcut.py sample uses a handful of iterations
GRABCUT_PAD = 0.15           # ours: the GrabCut box is the component's box widened by 15% per side
NMS_IOU = 0.5                # ours: refined boxes of one object from two components


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR)


def _norm(m: np.ndarray) -> np.ndarray:
    m = m.astype(np.float32)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def spectral_residual_map(rgb: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Hou & Zhang's spectral residual saliency, [0, 1], at out_size (w, h)."""
    import cv2
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = gray.shape
    s = SR_SIDE / max(h, w)
    small = _resize(gray, max(8, round(w * s)), max(8, round(h * s)))
    spec = np.fft.fft2(small)
    log_amp = np.log(np.abs(spec) + 1e-8)
    phase = np.angle(spec)
    residual = log_amp - cv2.blur(log_amp, (3, 3), borderType=cv2.BORDER_REPLICATE)
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), SR_BLUR_SIGMA)
    return _norm(_resize(sal, *out_size))


def frequency_tuned_map(rgb: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Achanta et al.'s frequency-tuned saliency, [0, 1], at out_size (w, h)."""
    import cv2
    small = _resize(np.ascontiguousarray(rgb), *out_size)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    blurred = cv2.GaussianBlur(lab, (FT_BLUR, FT_BLUR), 0)
    mean = lab.reshape(-1, 3).mean(axis=0)
    return _norm(np.linalg.norm(blurred - mean, axis=2))


def saliency_map(rgb: np.ndarray, out_size: tuple[int, int], method: str = "combined") -> np.ndarray:
    if method == "spectral_residual":
        return spectral_residual_map(rgb, out_size)
    if method == "frequency_tuned":
        return frequency_tuned_map(rgb, out_size)
    if method == "combined":
        return _norm(spectral_residual_map(rgb, out_size) + frequency_tuned_map(rgb, out_size))
    raise ValueError(f"unknown saliency method {method!r} (spectral_residual, frequency_tuned, combined)")


def salient_components(sal: np.ndarray, k: float = THRESHOLD_K, min_frac: float = MIN_REGION_FRAC) -> list[tuple]:
    """[(x0, y0, x1, y1, score, component_mask)] of the thresholded map, largest score first."""
    import cv2
    binary = (sal > k * float(sal.mean())).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    total = sal.shape[0] * sal.shape[1]
    out = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area < min_frac * total:
            continue
        comp = labels == i
        out.append((int(x), int(y), int(x + w), int(y + h), float(sal[comp].mean()), comp))
    out.sort(key=lambda c: -c[4])
    return out


def grabcut_box(img: np.ndarray, comp: np.ndarray, box: tuple[int, int, int, int],
                iters: int = GRABCUT_ITERS) -> tuple[int, int, int, int] | None:
    """The component's box refined by GrabCut (see module doc); None when GrabCut finds nothing."""
    import cv2
    h, w = comp.shape
    x0, y0, x1, y1 = box
    px, py = GRABCUT_PAD * (x1 - x0), GRABCUT_PAD * (y1 - y0)
    gx0, gy0 = max(0, int(x0 - px)), max(0, int(y0 - py))
    gx1, gy1 = min(w, int(np.ceil(x1 + px))), min(h, int(np.ceil(y1 + py)))
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[gy0:gy1, gx0:gx1] = cv2.GC_PR_BGD
    mask[comp] = cv2.GC_PR_FGD
    if (mask == cv2.GC_BGD).sum() == 0:          # the box is the whole frame: give GrabCut a border
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)     # GrabCut's GMM init draws from OpenCV's RNG: same frame, same box on every run
    try:
        cv2.grabCut(np.ascontiguousarray(img), mask, None, bgd, fgd, iters, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return None
    # the foreground blob that overlaps the seed most
    overlaps = [(np.count_nonzero(comp[labels == i]), i) for i in range(1, n)]
    best = max(overlaps)[1]
    x, y, bw, bh, _ = stats[best]
    return int(x), int(y), int(x + bw), int(y + bh)


class SalientObjects:
    """Class-agnostic salient-object detector (see module doc). Boxes are labelled "object"."""

    def __init__(self, method: str = "combined", threshold_k: float = THRESHOLD_K, work_side: int = WORK_SIDE,
                 max_regions: int = MAX_REGIONS, grabcut: bool = True, min_region_frac: float = MIN_REGION_FRAC) -> None:
        saliency_map(np.zeros((8, 8, 3), np.uint8), (8, 8), method)   # validate the method name early
        self.method, self.threshold_k, self.work_side = method, threshold_k, work_side
        self.max_regions, self.grabcut, self.min_region_frac = max_regions, grabcut, min_region_frac
        self.name = f"saliency-{method}" + ("+grabcut" if grabcut else "")

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        s = min(1.0, self.work_side / max(h, w))
        ws, hs = max(8, round(w * s)), max(8, round(h * s))
        small = _resize(np.ascontiguousarray(rgb), ws, hs) if s < 1 else np.ascontiguousarray(rgb)
        sal = saliency_map(small, (ws, hs), self.method)
        dets = []
        for x0, y0, x1, y1, score, comp in salient_components(sal, self.threshold_k, self.min_region_frac)[:self.max_regions]:
            box = (x0, y0, x1, y1)
            if self.grabcut:
                refined = grabcut_box(small, comp, box)
                if refined is not None:
                    box = refined
            sx, sy = w / ws, h / hs
            full = clip_box((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy), w, h)
            dets.append(Detection(full, score, "object", self.name))
        return nms(dets, NMS_IOU)
