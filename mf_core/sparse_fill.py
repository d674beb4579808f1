"""Fills of sparse maps on any torch device: the LiDAR prior of conditioned models.

- :func:`smooth_fill`: push-pull interpolation (Gortler et al. 1996, "The Lumigraph"): a pyramid
  of 2x2 weighted means with weights capped at 1 ("pull"), then coarse-to-fine bilinear
  upsampling that each level blends with its own data by weight ("push"). O(H W), about 4 ms
  at 640x480 on one core, exact at the valid pixels; on the held-out LiDAR of the shared real
  sets it scores like Delaunay-linear interpolation (RMSE within a few per cent either way)
  for 1/30-1/200 of its cost. It is linear in its input between points.
- :func:`scanline_fill`: the LiDAR prior of refining models. Points joined along image rows, then
  interpolated in each column between neighbouring scan lines (what Delaunay-linear does between
  lines, without smearing depth edges sideways as the pyramid's cells do), the push-pull fill along
  the lines and wherever no line is near. About 42 ms at 640x480 on one core (push-pull: 9 ms;
  Delaunay-linear: 225 ms).
- :func:`directional_neighbours`: for every pixel the nearest valid pixel to its left, right,
  above and below (same row / column) with its value, distance and how different it looks from
  the pixel: the candidates between which a depth edge lies, from four cumulative scans.

Written here because no library this package uses offers batched sparse interpolation on
tensors (scipy's griddata and OpenCV's inpainting are CPU-only, one image at a time and
10-100x slower); being plain tensor ops they run inside the model on CPU or GPU and export to ONNX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mf_core.errors import InputError

DIRECTIONS = ("left", "right", "up", "down")
# scanline_fill: gaps (in typical point spacings) joined along a row, then interpolated across in a
# column, and the reach of the push-pull fill around a return on the pixel's row. Chosen on the val split
# (docs/MODEL_HISTORY.md): rows 2 / columns 3 / reach 3 against rows 1-8, columns 4-10, reach 1-5 or none.
ROW_GAP_SPACINGS = 2.0
COLUMN_GAP_SPACINGS = 3.0
NEAR_SPACINGS = 3.0
# ... and across a column gap of up to AGREEING_GAP_SPACINGS where the joined pixels above and below differ by
# at most AGREEING_STEP of the nearer one (10 %): one surface across a hole in the returns, not a depth edge.
AGREEING_GAP_SPACINGS = 8.0
AGREEING_STEP = 0.1


def _check(values: torch.Tensor, mask: torch.Tensor) -> None:
    if values.ndim != 4 or values.shape[1] != 1 or tuple(mask.shape) != tuple(values.shape):
        raise InputError(f"sparse fills need values and mask of shape (B, 1, H, W), got "
                         f"{tuple(values.shape)} and {tuple(mask.shape)}")


def smooth_fill(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Push-pull fill of ``values`` from the pixels where ``mask`` is True.

    Args:
        values: (B, 1, H, W) float; only valid pixels are read.
        mask: (B, 1, H, W) bool.

    Returns:
        (B, 1, H, W) float32: equal to ``values`` at valid pixels, a smooth interpolation
        elsewhere; 0 everywhere in a sample without any valid pixel.
    """
    _check(values, mask)
    weight = mask.float()  # (B, 1, H, W)
    weighted = torch.where(mask, values.float(), 0.0)  # (B, 1, H, W) weight * value
    weights, sums = [weight], [weighted]
    while max(weight.shape[-2:]) > 1:  # pull: halve until one pixel is left
        h, w = weight.shape[-2:]
        pad = (0, w % 2, 0, h % 2)  # odd sizes: the last row / column pairs with zeros
        total = F.avg_pool2d(F.pad(weight, pad), 2) * 4  # (B, 1, ceil(h/2), ceil(w/2))
        mean = (F.avg_pool2d(F.pad(weighted, pad), 2) * 4) / total.clamp(min=1e-12)
        weight = total.clamp(max=1.0)
        weighted = mean * weight
        weights.append(weight)
        sums.append(weighted)
    estimate = sums[-1] / weights[-1].clamp(min=1e-12)  # (B, 1, 1, 1)
    for weight, weighted in zip(reversed(weights[:-1]), reversed(sums[:-1]), strict=True):  # push
        h, w = weight.shape[-2:]
        up = F.interpolate(estimate, scale_factor=2.0, mode="bilinear", align_corners=False)[..., :h, :w]
        estimate = weighted / weight.clamp(min=1e-12) * weight + (1.0 - weight) * up  # own data by its weight
    return estimate


def scan_by_doubling(x: torch.Tensor, dim: int, largest: bool) -> torch.Tensor:
    """Cumulative max (``largest``) or min of ``x`` along ``dim`` in log2(n) steps of shifted max/min
    (a Hillis-Steele scan): what torch.cummax / cummin give, from ops ONNX has (it has no cumulative
    max or min)."""
    pick = torch.maximum if largest else torch.minimum
    n, step = x.shape[dim], 1
    while step < n:  # after this pass each element holds the extreme of the 2 * step elements ending at it
        x = pick(x, torch.cat([x.narrow(dim, 0, step), x.narrow(dim, 0, n - step)], dim))
        step *= 2
    return x


def _cumulative(x: torch.Tensor, dim: int, largest: bool) -> torch.Tensor:
    """torch.cummax / cummin values; the equivalent doubling scan while exporting to ONNX."""
    if torch.onnx.is_in_onnx_export():
        return scan_by_doubling(x, dim, largest)
    return (x.cummax(dim=dim) if largest else x.cummin(dim=dim)).values


def _nearest_along(values: torch.Tensor, mask: torch.Tensor, dim: int
                   ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """The nearest valid pixel before and after every pixel along ``dim`` of (B, 1, H, W) maps. For each
    side: its index (clamped into the image), whether there is one (bool), its value (read at the clamped
    index: meaningless where there is none) and its distance in pixels (float; meaningless where none).
    Positions are float32 (exact up to 2**24): int64 arithmetic on full-resolution maps took twice as long."""
    n = values.shape[dim]
    shape = [1, 1, 1, 1]
    shape[dim] = n
    index = torch.arange(n, device=values.device, dtype=torch.float32).view(shape)  # broadcasts along the others
    before = _cumulative(torch.where(mask, index, -1.0), dim, largest=True)  # last valid index at or before
    after = _cumulative(torch.where(mask, index, float(n)).flip(dim), dim, largest=False).flip(dim)  # first at/after
    sides = []
    for source in (before, after):
        clamped = source.clamp(0, n - 1).long()
        sides.append((clamped, (source >= 0) & (source < n), values.gather(dim, clamped), (source - index).abs()))
    return tuple(sides)


def directional_neighbours(values: torch.Tensor, mask: torch.Tensor, image: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The nearest valid pixel in each of :data:`DIRECTIONS` (same row or column) of every pixel.

    Args:
        values: (B, 1, H, W) float; mask: (B, 1, H, W) bool; image: (B, 3, H, W) float (any range).

    Returns:
        neighbour values (B, 4, H, W) float32, NaN where a direction has no valid pixel; their
        distances in pixels (B, 4, H, W) float32, inf where there is none; and the squared RGB
        difference between each pixel and each neighbour (B, 4, H, W) float32, 0 where there is
        none. A valid pixel is its own neighbour in every direction (distance 0).
    """
    _check(values, mask)
    values, image = values.float(), image.float()
    found, distance, colour = [], [], []
    for columns in (False, True):  # along rows (left, right), then along columns (up, down)
        rows_image = _as_rows(image, columns)  # (B, 3, H, W), or (B, 3, W, H) for the columns
        for index, present, value, gap in _nearest_along(_as_rows(values, columns), _as_rows(mask, columns), 3):
            neighbour = rows_image.gather(3, index.expand_as(rows_image))  # colour at the neighbour
            difference = (neighbour - rows_image).square().sum(dim=1, keepdim=True)
            found.append(_from_rows(torch.where(present, value, float("nan")), columns))
            distance.append(_from_rows(torch.where(present, gap, float("inf")), columns))
            colour.append(_from_rows(torch.where(present, difference, 0.0), columns))
    return torch.cat(found, dim=1), torch.cat(distance, dim=1), torch.cat(colour, dim=1)


def _as_rows(x: torch.Tensor, columns: bool) -> torch.Tensor:
    """``x`` (B, C, H, W) as it is, or for a scan along its columns its transpose (B, C, W, H) made contiguous:
    scans along contiguous rows run about 2x faster on CPU. :func:`_from_rows` turns results back."""
    return x.transpose(2, 3).contiguous() if columns else x


def _from_rows(x: torch.Tensor, columns: bool) -> torch.Tensor:
    """The inverse of :func:`_as_rows` for a result of the same layout."""
    return x.transpose(2, 3) if columns else x


def row_distance(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float32: pixels from each pixel to the nearest valid pixel of ``mask`` (B, 1, H, W) on its
    own row (0 on one), inf on a row without any."""
    (_, has_before, _, d_before), (_, has_after, _, d_after) = _nearest_along(mask.float(), mask, 3)
    return torch.minimum(torch.where(has_before, d_before, float("inf")), torch.where(has_after, d_after, float("inf")))


def point_spacing(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1, 1) typical pixels between valid pixels of ``mask`` (B, 1, H, W): sqrt(area of their
    bounding box / their count). Plain tensor ops (no data-dependent shapes), so it exports to ONNX."""

    def extent(present: torch.Tensor) -> torch.Tensor:  # (B, 1, n) bool -> (B, 1) first..last span
        n = present.shape[-1]
        first = present.float().argmax(dim=-1)
        last = n - 1 - present.flip(-1).float().argmax(dim=-1)
        return (last - first + 1).clamp(min=1).float()

    count = mask.flatten(2).sum(dim=2).clamp(min=1).float()  # (B, 1)
    area = extent(mask.any(dim=-1)) * extent(mask.any(dim=-2))  # rows x columns
    return (area / count).sqrt().view(-1, 1, 1, 1)


def _bridge(values: torch.Tensor, mask: torch.Tensor, dim: int, max_gap: torch.Tensor,
            agreeing_gap: torch.Tensor | None = None, max_step: float = 0.0
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear interpolation along ``dim`` across gaps of at most ``max_gap`` (B, 1, 1, 1) pixels between
    valid pixels, and of at most ``agreeing_gap`` where the two ends differ by at most ``max_step`` times the
    smaller one (values are positive depths).
    Returns the values (exact at valid pixels), where they are defined (bool), and the distance to the
    nearest valid pixel along ``dim`` (float, inf where there is none)."""
    if dim == 2:  # along columns: on the transpose (_as_rows)
        return tuple(_from_rows(x, True) for x in _bridge(_as_rows(values, True), _as_rows(mask, True), 3, max_gap,
                                                          agreeing_gap, max_step))
    (_, has_before, before, d_before), (_, has_after, after, d_after) = _nearest_along(values, mask, dim)
    span = d_before + d_after  # (B, 1, H, W)
    short = span <= max_gap
    if agreeing_gap is not None:
        short = short | ((span <= agreeing_gap) & ((after - before).abs() <= max_step * torch.minimum(after, before)))
    bridged = mask | (has_before & has_after & short)
    interpolated = before + d_before / span.clamp(min=1.0) * (after - before)
    nearest = torch.minimum(torch.where(has_before, d_before, d_after), torch.where(has_after, d_after, d_before))
    return (torch.where(mask, values, interpolated), bridged,
            torch.where(has_before | has_after, nearest, float("inf")))


def scanline_fill(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill of sparse scan-line data: linear between the lines where they are close, push-pull elsewhere.

    A spinning LiDAR samples densely along its scan lines and sparsely across them. This fill first
    joins the points of each image row across gaps of up to ROW_GAP_SPACINGS typical point spacings
    (:func:`point_spacing`), then interpolates each column linearly between the joined pixels above and
    below across gaps of up to COLUMN_GAP_SPACINGS (AGREEING_GAP_SPACINGS where the two agree to within
    AGREEING_STEP of the nearer: a hole in one surface): between two scan lines a pixel takes a blend of the
    returns straight above and below it, as Delaunay-linear interpolation does, instead of the cell means
    of a pyramid, which smear depth edges sideways. Pixels no such gap bridges (above the top line, in
    holes, beyond the sweep) take :func:`smooth_fill`, and so do pixels next to a return on their own row,
    blended by exp(-d / (NEAR_SPACINGS x spacing)), d the pixels to it (along a line the pyramid is the
    better estimate: measured on the held-out returns of the val split, docs/MODEL_HISTORY.md). Exact at valid pixels.

    It interpolates depth itself, not log depth: between a near and a far surface the mean in metres has
    the lower squared error in metres (val split, docs/MODEL_HISTORY.md: KITTI between lines -3 %, DGP held-out returns
    -6 %, 7-Scenes -2 % against the same fill in log depth).

    Args:
        values: (B, 1, H, W) float, positive depths (any unit) where valid; only valid pixels are read.
        mask: (B, 1, H, W) bool.

    Returns:
        (B, 1, H, W) float32 depths; 0 everywhere in a sample without any valid pixel.
    """
    _check(values, mask)
    values = torch.where(mask, values.float(), 0.0)
    smooth = smooth_fill(values, mask)  # (B, 1, H, W)
    spacing = point_spacing(mask)  # (B, 1, 1, 1)
    rows, row_bridged, row_distance = _bridge(values, mask, 3, ROW_GAP_SPACINGS * spacing)
    columns, bridged, _ = _bridge(rows, row_bridged, 2, COLUMN_GAP_SPACINGS * spacing,
                                  AGREEING_GAP_SPACINGS * spacing, AGREEING_STEP)
    lines = torch.where(bridged, columns, smooth)
    along_line = torch.exp(-row_distance / (NEAR_SPACINGS * spacing))  # 1 at a return, 0 far from one
    return along_line * smooth + (1.0 - along_line) * lines


def scanline_fill_log(log_depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`scanline_fill` of depths given as log depth (B, 1, H, W), returned as log depth; 0 everywhere
    in a sample without any valid pixel (the fill is positive wherever a sample has one)."""
    filled = scanline_fill(torch.where(mask, log_depth.float(), 0.0).exp(), mask)  # (B, 1, H, W) depth
    return torch.where(filled > 0, filled.clamp(min=1e-30).log(), 0.0)
