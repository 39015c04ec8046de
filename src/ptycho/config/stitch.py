"""Configuration of ``ptycho stitch`` (docs/reconstruction.md#stitching)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ptycho.config.base import StrictModel
from ptycho.errors import ConfigError

CROP_SPACING_MARGIN_PX = 2
"""Pixels added to the scan spacing in the default crop: bilinear placement thins a crop's edge
pixels, and jitter widens some gaps beyond the spacing."""


class StitchConfig(StrictModel):
    """How per-position patches become one object image.

    ``crop`` is the side ``M`` of the central ``M×M`` crop of each patch that is placed
    (default ``N//2``, or more when the scan's spacing needs it: :meth:`crop_size`); any
    ``1 ≤ M ≤ N`` is allowed, checked against ``N`` at run time.
    ``chunk_groups`` groups are read and placed at a time, which bounds memory. ``method``:
    ``"lsq"`` solves for the object whose windows best match the crops (least squares, started from
    the overlap average), ``"average"`` stops at the overlap average, ``"auto"`` (default) takes
    ``lsq`` for gridsize 1 and ``average`` when each position comes in several groups' patches (see
    :mod:`ptycho.workflows.stitch_canvas`).
    """

    crop: int | None = Field(default=None, ge=1, description="central crop side M (default N//2, or the "
                             "probe's effective diameter when smaller; grown to the scan's spacing on sparse scans)")
    chunk_groups: int = Field(default=256, ge=1, description="groups read and placed at a time")
    method: Literal["auto", "lsq", "average"] = Field(
        default="auto", description="least-squares solve, overlap average, or auto (lsq for gridsize 1, else average)")
    lsq_iterations: int = Field(default=10, ge=1, le=200, description="conjugate-gradient steps of the lsq solve")

    def crop_size(self, N: int, spacing_px: float | None = None, probe_diameter_px: float | None = None) -> int:
        """The crop side for patches of size ``N``: ``crop`` when set; else ``N//2``, or the
        probe's effective diameter (:func:`ptycho.physics.probe.effective_diameter_px`, rounded up)
        when that is smaller — a focused beam lights only the middle of its window, and the
        network's patch is unconstrained by the data beyond it — grown to
        ``ceil(spacing_px) + CROP_SPACING_MARGIN_PX`` (at most ``N``) when the scan's spacing
        (:func:`ptycho.workflows.stitch_canvas.scan_spacing_px`) is wider, so that the crops of a sparse
        or overlap-free raster still tile the scanned area instead of leaving holes between them.

        Raises
        ------
        ConfigError
            If ``crop > N``.
        """
        return self.crop_choice(N, spacing_px, probe_diameter_px)[0]

    def crop_choice(self, N: int, spacing_px: float | None = None,
                    probe_diameter_px: float | None = None) -> tuple[int, str]:
        """:meth:`crop_size` and what set it: ``"stitch.crop"``, ``"N/2"``, ``"probe diameter"``
        or ``"scan spacing"`` (raises as :meth:`crop_size`)."""
        M, source = (self.crop, "stitch.crop") if self.crop is not None else (max(1, N // 2), "N/2")
        if self.crop is None and probe_diameter_px is not None and math.isfinite(probe_diameter_px):
            lit = max(1, math.ceil(probe_diameter_px))
            if lit < M:
                M, source = lit, "probe diameter"
        if self.crop is None and spacing_px is not None and math.isfinite(spacing_px):
            spaced = min(N, math.ceil(spacing_px) + CROP_SPACING_MARGIN_PX)
            if spaced > M:
                M, source = spaced, "scan spacing"
        if M > N:
            raise ConfigError(f"stitch.crop: {M} is larger than the patch size N={N}; use 1 ≤ `stitch.crop` ≤ {N}")
        return M, source

    def method_for(self, C: int) -> str:
        """The method used for patches of ``C`` members per group (``auto`` resolved)."""
        if self.method != "auto":
            return self.method
        return "lsq" if C == 1 else "average"
