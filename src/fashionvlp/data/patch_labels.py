"""MPFC's targets: one VQ-VAE code per image-encoder patch, written once per catalog version.

Layout of the directory (a DVC-tracked stage output):
    codes.npy    int16 [num_images, grid_h·grid_w], row-major over the grid
    images.json  image paths (relative to the catalog), one per row of codes.npy
    meta.json    grid, image_size, codebook_size, catalog_md5, vqvae summary
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionvlp.errors import ModelInputError


@dataclass
class PatchLabels:
    root: Path
    grid: tuple[int, int]
    image_size: int
    codebook_size: int
    catalog_md5: str
    codes: np.ndarray
    row_of: dict[str, int]

    def codes_for(self, image_path: str) -> np.ndarray:
        try:
            return self.codes[self.row_of[image_path]]
        except KeyError:
            raise ModelInputError(f"patch labels in {self.root} have no codes for image {image_path} "
                                  "(regenerate them: `fashionvlp vqvae`)") from None

    def check(self, grid: tuple[int, int], image_size: int, catalog_md5: str) -> None:
        """Fails before training when the labels were made for another grid, image size or catalog."""
        if tuple(grid) != self.grid:
            raise ModelInputError(f"patch labels in {self.root} are for a {self.grid[0]}×{self.grid[1]} grid, but the "
                                  f"image encoder produces {grid[0]}×{grid[1]} patches: rerun `fashionvlp vqvae` "
                                  "with the same model.image settings")
        if image_size != self.image_size:
            raise ModelInputError(f"patch labels in {self.root} were made at {self.image_size} px, the model "
                                  f"reads {image_size} px images: rerun `fashionvlp vqvae`")
        if catalog_md5 != self.catalog_md5:
            raise ModelInputError(f"patch labels in {self.root} were made from catalog version {self.catalog_md5}, "
                                  f"but the catalog is now {catalog_md5}: rerun `fashionvlp vqvae` (or `dvc repro`)")


def write_patch_labels(out: Path, codes: np.ndarray, images: list[str], grid: tuple[int, int], image_size: int,
                       codebook_size: int, catalog_md5: str, extra: dict | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "codes.npy", codes.astype(np.int16))
    (out / "images.json").write_text(json.dumps(images))
    meta = {"grid": list(grid), "image_size": image_size, "codebook_size": codebook_size,
            "catalog_md5": catalog_md5, "num_images": len(images), **(extra or {})}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def read_patch_labels(root: Path) -> PatchLabels:
    root = Path(root)
    missing = [f for f in ("codes.npy", "images.json", "meta.json") if not (root / f).is_file()]
    if missing:
        raise ModelInputError(f"{root} holds no patch labels (missing {', '.join(missing)}): run `fashionvlp vqvae` "
                              "first, or switch MPFC off (pretrain.objectives.mpfc=0)")
    meta = json.loads((root / "meta.json").read_text())
    images = json.loads((root / "images.json").read_text())
    codes = np.load(root / "codes.npy")
    return PatchLabels(root=root, grid=tuple(meta["grid"]), image_size=meta["image_size"],
                       codebook_size=meta["codebook_size"], catalog_md5=meta["catalog_md5"], codes=codes,
                       row_of={p: i for i, p in enumerate(images)})
