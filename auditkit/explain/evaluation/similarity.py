"""How alike are two saliency maps? SSIM, Spearman rank correlation and HOG similarity.

The three measures of Adebayo et al. 2018 ("Sanity checks for saliency
maps", NeurIPS) and Arun et al. 2021 (Radiology: AI):

- :func:`ssim`: the structural similarity index (Wang et al. 2004, IEEE TIP)
  with a 7x7 uniform window and sample covariance, the defaults of
  ``skimage.metrics.structural_similarity``, on maps min-max normalised to
  [0, 1] (``data_range=1``);
- :func:`spearman`: Spearman's rank correlation of the pixels, on the signed
  maps and on their absolute values;
- :func:`hog_similarity`: Pearson correlation of the histograms of oriented
  gradients (Dalal & Triggs 2005), computed as ``skimage.feature.hog`` does
  (9 orientations, 8x8-pixel cells, 3x3-cell blocks, L2-Hys).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from auditkit.errors import InvalidInputError

_K1, _K2, _WIN = 0.01, 0.03, 7


def normalize01(image: np.ndarray) -> np.ndarray:
    """Return ``image`` (H, W) min-max scaled to [0, 1] as float64 (a constant image becomes 0)."""
    image = np.asarray(image, dtype=np.float64)
    span = image.max() - image.min()
    return (image - image.min()) / span if span > 0 else np.zeros_like(image)


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0) -> float:
    """Return the mean SSIM of two images (H, W) (Wang et al. 2004), as skimage computes it.

    Uniform 7x7 window, K1 = 0.01, K2 = 0.03, sample covariance, reflected
    borders, and the mean over the pixels at least 3 from the border.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InvalidInputError(f"SSIM needs two (H, W) images of one shape, got {a.shape} and {b.shape}")
    if min(a.shape) < _WIN:
        raise InvalidInputError(f"SSIM needs images of at least {_WIN}x{_WIN} pixels, got {a.shape}")
    n_pixels = _WIN**2
    cov_norm = n_pixels / (n_pixels - 1)
    ux = ndimage.uniform_filter(a, size=_WIN)
    uy = ndimage.uniform_filter(b, size=_WIN)
    uxx = ndimage.uniform_filter(a * a, size=_WIN)
    uyy = ndimage.uniform_filter(b * b, size=_WIN)
    uxy = ndimage.uniform_filter(a * b, size=_WIN)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (_WIN - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def map_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Return the SSIM of two saliency maps (H, W) after min-max normalising each to [0, 1]."""
    return ssim(normalize01(a), normalize01(b), data_range=1.0)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Return Spearman's rank correlation of the pixels of two maps; NaN if either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.min() == a.max() or b.min() == b.max():
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def hog_features(
    image: np.ndarray,
    *,
    orientations: int = 9,
    pixels_per_cell: int = 8,
    cells_per_block: int = 3,
) -> np.ndarray:
    """Return the HOG feature vector of a 2-D image (Dalal & Triggs 2005), as ``skimage.feature.hog``.

    Central-difference gradients (zero on the border), unsigned orientations
    in [0, 180) binned without interpolation, per-cell mean magnitude, L2-Hys
    normalisation of each block of cells (eps = 1e-5).
    """
    image = np.asarray(image, dtype=np.float64)
    g_row = np.zeros_like(image)
    g_col = np.zeros_like(image)
    g_row[1:-1, :] = image[2:, :] - image[:-2, :]
    g_col[:, 1:-1] = image[:, 2:] - image[:, :-2]
    magnitude = np.hypot(g_col, g_row)
    orientation = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    c = int(pixels_per_cell)
    n_rows, n_cols = image.shape[0] // c, image.shape[1] // c
    b = int(cells_per_block)
    if n_rows < b or n_cols < b:
        raise InvalidInputError(
            f"HOG with {c}-pixel cells and {b}-cell blocks needs an image of at least "
            f"{b * c}x{b * c} pixels, got {image.shape}"
        )
    width = 180.0 / orientations
    bins = np.minimum((orientation // width).astype(int), orientations - 1)
    magnitude = magnitude[: n_rows * c, : n_cols * c]
    bins = bins[: n_rows * c, : n_cols * c]
    cell_index = (np.arange(n_rows * c) // c)[:, None] * n_cols + (np.arange(n_cols * c) // c)[None, :]
    flat_index = cell_index * orientations + bins
    hist = np.bincount(
        flat_index.ravel(), weights=magnitude.ravel(), minlength=n_rows * n_cols * orientations
    ).reshape(n_rows, n_cols, orientations) / (c * c)
    eps = 1e-5
    blocks = []
    for r in range(n_rows - b + 1):
        for col in range(n_cols - b + 1):
            block = hist[r : r + b, col : col + b, :]
            out = block / np.sqrt(np.sum(block**2) + eps**2)
            out = np.minimum(out, 0.2)
            blocks.append(out / np.sqrt(np.sum(out**2) + eps**2))
    return np.stack(blocks).ravel()


def hog_similarity(a: np.ndarray, b: np.ndarray, *, pixels_per_cell: int | None = None) -> float:
    """Return the Pearson correlation of the HOG features of two maps (H, W); NaN if either is flat.

    ``pixels_per_cell`` defaults to 8, or less for maps under 24 pixels a side
    so that one 3x3-cell block fits.
    """
    a, b = normalize01(a), normalize01(b)
    cell = pixels_per_cell or max(1, min(8, min(a.shape) // 3))
    fa, fb = hog_features(a, pixels_per_cell=cell), hog_features(b, pixels_per_cell=cell)
    if fa.std() == 0 or fb.std() == 0:
        return float("nan")
    return float(np.corrcoef(fa, fb)[0, 1])


def pairwise(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Return per-pair similarities of maps a[i] and b[i] (N, H, W): ssim, spearman, spearman_abs, hog, each (N,)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 3:
        raise InvalidInputError(f"need two (N, H, W) stacks of maps of one shape, got {a.shape} and {b.shape}")
    return {
        "ssim": np.array([map_ssim(x, y) for x, y in zip(a, b, strict=True)]),
        "spearman": np.array([spearman(x, y) for x, y in zip(a, b, strict=True)]),
        "spearman_abs": np.array([spearman(np.abs(x), np.abs(y)) for x, y in zip(a, b, strict=True)]),
        "hog": np.array([hog_similarity(x, y) for x, y in zip(a, b, strict=True)]),
    }
