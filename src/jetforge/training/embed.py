"""Export backbone embeddings of a whole split (data contract, format 5 "Embeddings").

Used by the RS3L figures that look at the learnt space directly (Fig. 3 feature
distributions, Fig. 4 correlations, Fig. 5 t-SNE). Embeddings are computed in float32
(no autocast) so that figures do not depend on the hardware they were made on. The
backbone gets the inputs it declares (``backbone_inputs``: particles, or tracks + cells).
"""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import torch

from jetforge.io.atomic import atomic_path
from jetforge.models.registry import backbone_inputs, eval_chunk, load_backbone
from jetforge.training.data import DatasetInfo, check_model_features, iter_rows
from jetforge.training.engine import resolve_device

log = logging.getLogger(__name__)


@torch.no_grad()
def export_embeddings(
    model_pt: str, h5_path: str, out_path: str, device: str = "auto", chunk: int = 1024
) -> None:
    """Write ``z`` float32 ``[N, D]`` for every row of ``h5_path`` plus its ``jets/*`` columns.

    Rows keep the order of the input split (row i of ``z`` is row i of the dataset), the
    input's attrs are copied, and ``model_pt``, ``augset``, ``repeat`` are added as attrs.
    """
    dev = resolve_device(device)
    backbone, payload = load_backbone(model_pt, map_location=dev)
    backbone.eval()
    info = DatasetInfo.read(h5_path)
    check_model_features(payload, h5_path, model_pt)
    inputs = backbone_inputs(backbone)
    D = int(backbone.embed_dim)
    with (
        h5py.File(h5_path, "r") as f,
        atomic_path(out_path) as tmp,
        h5py.File(tmp, "w") as g,
    ):
        z = g.create_dataset(
            "z",
            shape=(info.n_rows, D),
            dtype=np.float32,
            chunks=(min(max(info.n_rows, 1), 4096), D),
        )
        batches = iter_rows(f, np.arange(info.n_rows), eval_chunk(backbone, chunk), inputs)
        for rows, *args in batches:
            z[int(rows[0]) : int(rows[-1]) + 1] = (
                backbone(*(t.to(dev) for t in args)).float().cpu().numpy()
            )
        f.copy(f["jets"], g, "jets")
        for k, v in f.attrs.items():
            g.attrs[k] = v
        g.attrs["model_pt"] = os.fspath(model_pt)
        for k in ("augset", "repeat", "method"):
            if k in payload:
                g.attrs[k] = payload[k]
    log.info("wrote %s (%d x %d)", out_path, info.n_rows, D)
