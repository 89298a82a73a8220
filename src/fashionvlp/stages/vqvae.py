"""VQ-VAE stage: train on catalog images, then write one code per encoder patch (MPFC's targets).

Outputs (DVC stage ``vqvae``): ``derived/vqvae/`` (weights, metrics.json, reconstructions.png) and
``derived/patch_labels/`` (codes, image index, meta with grid and catalog version).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fashionvlp.config import Params
from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.patch_labels import write_patch_labels
from fashionvlp.data.versioning import dir_md5
from fashionvlp.env import fix_threads
from fashionvlp.models.image_encoders import build_image_encoder
from fashionvlp.models.vqvae import VQVAE, downsample_factor, perplexity
from fashionvlp.tracking.mlflow_tracking import maybe_run

log = logging.getLogger(__name__)
ENCODE_BATCH = 256


@dataclass(frozen=True)
class VQVAEResult:
    model_dir: Path
    labels_dir: Path
    metrics: dict
    run_id: str | None


def vqvae_dir(params: Params) -> Path:
    return params.derived_dir / "vqvae"


def patch_labels_dir(params: Params) -> Path:
    return params.derived_dir / "patch_labels"


def encoder_grid(params: Params) -> tuple[int, int]:
    """The image encoder's patch grid (built without weights: only its shape matters here)."""
    cfg = params.model.image.model_copy(update={"pretrained": False, "checkpoint": None})
    return build_image_encoder(cfg).grid


class _ImageFiles(Dataset):
    """Catalog images decoded to uint8 [3, size, size]."""

    def __init__(self, root: Path, paths: list[str], size: int):
        self.root, self.paths, self.size = root, paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.root / self.paths[i]) as im:
            im = im.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def _load_images(root: Path, paths: list[str], size: int) -> torch.Tensor:
    files = _ImageFiles(root, paths, size)
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for i in range(len(files)):
        out[i] = files[i]
    return out


def _image_batches(root: Path, paths: list[str], size: int, workers: int, batch: int = ENCODE_BATCH):
    """Every image, a batch at a time, decoded by ``workers`` threads ahead of the encoder (Pillow's decode
    and resize release the GIL; threads, unlike loader processes, neither fork a process holding a Prefect
    server's threads nor copy it), with at most ``workers + 1`` batches in flight."""
    files = _ImageFiles(root, paths, size)

    def load(start: int) -> torch.Tensor:
        return torch.stack([files[i] for i in range(start, min(start + batch, len(files)))])

    starts = range(0, len(files), batch)
    if workers == 0:
        yield from map(load, starts)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="vqvae-decode") as pool:
        pending: deque = deque()
        for start in starts:
            pending.append(pool.submit(load, start))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _training_images(paths: list[str], limit: int, seed: int) -> list[str]:
    """All of ``paths`` up to ``limit``; past it a seeded draw of ``limit`` (in catalog order)."""
    if len(paths) <= limit:
        return paths
    keep = np.sort(np.random.default_rng(seed).choice(len(paths), size=limit, replace=False))
    return [paths[i] for i in keep]


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def _save_reconstructions(originals: torch.Tensor, recon: torch.Tensor, path: Path) -> Path:
    """Top row: originals; bottom row: reconstructions."""
    def strip(x: torch.Tensor) -> np.ndarray:
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        return np.concatenate(list(x), axis=1)
    Image.fromarray(np.concatenate([strip(originals), strip(recon)], axis=0)).save(path)
    return path


def _fit(model: VQVAE, images: torch.Tensor, cfg, log_metrics) -> list[dict]:
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history = []
    model.train()
    for step in range(1, cfg.steps + 1):
        index = torch.randint(0, len(images), (cfg.batch_size,), generator=generator)
        batch = _to_unit(images[index])
        flip = torch.rand(len(index), generator=generator) < 0.5
        batch[flip] = batch[flip].flip(-1)
        recon, codes, commitment = model(batch)
        reconstruction = torch.nn.functional.mse_loss(recon, batch)
        optimizer.zero_grad(set_to_none=True)
        (reconstruction + commitment).backward()
        optimizer.step()
        if step % 20 == 0 or step == cfg.steps:
            row = {"vqvae.reconstruction_mse": reconstruction.item(), "vqvae.commitment": commitment.item(),
                   "vqvae.batch_perplexity": perplexity(codes, cfg.codebook_size)}
            history.append({"step": step, **row})
            log_metrics(row, step)
    model.eval()
    return history


COLOURED_CELL = 20.0  # a code cell whose mean colour is this far (0–255, mean over RGB) from its grey is "coloured"


def _cell_chroma(x: torch.Tensor, grid) -> torch.Tensor:
    """Each code cell's mean colour (0–255) minus its grey level: [B, 3, h, w]; zero for a grey cell."""
    cells = torch.nn.functional.adaptive_avg_pool2d((x.clamp(-1, 1) + 1) * 127.5, grid)
    return cells - cells.mean(1, keepdim=True)


@torch.no_grad()
def _encode_all(model: VQVAE, batches, total: int) -> tuple[torch.Tensor, dict[str, float]]:
    """Codes [N, h·w] of every image (unaugmented), the mean squared reconstruction error, and a colour check
    over the coloured code cells (the garments, not the light backgrounds that dominate the MSE): the mean
    absolute error of each cell's chroma, reconstructed against original, beside that of a grey
    reconstruction (shape and brightness kept, colour lost), which is the cells' mean chroma."""
    # One preallocated array for every image's codes: a small tensor kept per batch among each batch's large
    # freed temporaries pins the allocator's heap (a 300k-view catalog grew to 11 GB that way).
    codes, squared, chroma_error, chroma, coloured, elements, start = None, 0.0, 0.0, 0.0, 0, 0, 0
    for images in batches:
        batch = _to_unit(images)
        elements += images.numel()
        recon, batch_codes, _ = model(batch)
        squared += torch.nn.functional.mse_loss(recon, batch, reduction="sum").item()
        grid = batch_codes.shape[-2:]
        truth = _cell_chroma(batch, grid)
        mask = truth.abs().mean(1) > COLOURED_CELL
        chroma_error += (_cell_chroma(recon, grid) - truth).abs().mean(1)[mask].sum().item()
        chroma += truth.abs().mean(1)[mask].sum().item()
        coloured += int(mask.sum())
        if codes is None:
            codes = torch.empty((total, batch_codes[0].numel()), dtype=batch_codes.dtype)
        codes[start:start + len(images)] = batch_codes.flatten(1)
        start += len(images)
    return codes, {"reconstruction_mse": squared / elements,
                              "colour_error": chroma_error / max(coloured, 1),
                              "colour_error_grey": chroma / max(coloured, 1),
                              "coloured_cells": coloured}


def train_vqvae(params: Params, catalog: Path | None = None, tracking=None, parent_run_id: str | None = None,
                out_dir: Path | None = None, labels_dir: Path | None = None) -> VQVAEResult:
    cfg, size = params.vqvae, params.model.image.image_size
    catalog_root = Path(catalog or params.catalog_dir)
    out_dir, labels_dir = out_dir or vqvae_dir(params), labels_dir or patch_labels_dir(params)
    grid = encoder_grid(params)
    factor = downsample_factor(size, grid)
    cat = read_catalog(catalog_root)
    paths = [view.path for p in cat.iter_products() if p.split in cfg.splits for view in p.images]
    catalog_md5 = dir_md5(catalog_root)
    train_paths = _training_images(paths, cfg.train_images, cfg.seed)
    log.info("VQ-VAE: %d images at %d px (trained on %d), grid %s, %d codes", len(paths), size, len(train_paths),
             grid, cfg.codebook_size)
    images = _load_images(catalog_root, train_paths, size)

    fix_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = VQVAE(factor, cfg.hidden_channels, cfg.code_dim, cfg.codebook_size, cfg.ema_decay,
                  cfg.commitment_weight, cfg.dead_code_threshold)
    with maybe_run(tracking, "vqvae", {"stage": "vqvae"}, parent_run_id) as run_id:
        def log_metrics(row: dict, step: int) -> None:
            if tracking is not None:
                tracking.log_metrics(run_id, {k: v for k, v in row.items() if isinstance(v, (int, float))}, step)

        if tracking is not None:
            tracking.log_params(run_id, {f"vqvae.{k}": v for k, v in cfg.model_dump().items()}
                                | {"grid": f"{grid[0]}x{grid[1]}", "image_size": size, "catalog_md5": catalog_md5,
                                   "num_images": len(paths)})
        started = time.perf_counter()
        history = _fit(model, images, cfg, log_metrics)
        if train_paths is paths:
            batches = (images[start:start + ENCODE_BATCH] for start in range(0, len(images), ENCODE_BATCH))
        else:
            batches = _image_batches(catalog_root, paths, size, cfg.loader_workers)
        codes, fidelity = _encode_all(model, batches, len(paths))
        used = torch.bincount(codes.flatten(), minlength=cfg.codebook_size) > 0
        metrics = {
            **fidelity,
            "perplexity": perplexity(codes, cfg.codebook_size),
            "codes_used": int(used.sum()),
            "dead_codes": int((~used).sum()),
            "codebook_usage": float(used.float().mean()),
            "codebook_size": cfg.codebook_size,
            "num_images": len(paths),
            "train_images": len(train_paths),
            "grid": f"{grid[0]}x{grid[1]}",
            "train_seconds": round(time.perf_counter() - started, 1),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out_dir / "vqvae.pt")
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out_dir / "history.json").write_text(json.dumps(history))
        pick = torch.linspace(0, len(images) - 1, min(cfg.reconstructions, len(images))).long()
        with torch.no_grad():
            recon, _, _ = model(_to_unit(images[pick]))
        _save_reconstructions(_to_unit(images[pick]), recon, out_dir / "reconstructions.png")
        write_patch_labels(labels_dir, codes.numpy(), paths, grid, size, cfg.codebook_size, catalog_md5,
                           extra={"vqvae": {k: metrics[k] for k in ("perplexity", "codes_used", "dead_codes")}})
        log_metrics({f"vqvae.{k}": v for k, v in metrics.items()}, cfg.steps)
        if tracking is not None:
            tracking.log_artifact(run_id, out_dir / "reconstructions.png", "vqvae")
            tracking.log_artifact(run_id, out_dir / "metrics.json", "vqvae")
            tracking.set_tags(run_id, {"patch_labels": str(labels_dir), "catalog_md5": catalog_md5})
    log.info("VQ-VAE: mse %.4f, colour error %.1f/255 on coloured cells (a grey reconstruction: %.1f), "
             "perplexity %.1f, %d/%d codes used", metrics["reconstruction_mse"], metrics["colour_error"],
             metrics["colour_error_grey"], metrics["perplexity"], metrics["codes_used"], cfg.codebook_size)
    return VQVAEResult(out_dir, labels_dir, metrics, run_id)
