"""The serving configuration (``deploy/serving.yaml``): which model, where it binds, micro-batching,
request limits and hot reload. Separate from ``params.yaml`` because a serving image ships without the
training configuration; ``--set`` overrides work the same way."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError

from fashionvlp.config import (ConfigError, Rooted, StrictModel, _merge, _read_yaml, format_validation_error,
                               parse_override)


class IndexConfig(StrictModel):
    # The catalog whose products text→image search returns; null serves no search endpoint.
    catalog: Path | None = Path("data")
    splits: list[str] = Field(default_factory=lambda: ["train", "val", "test"])
    batch_size: int = Field(64, ge=1)


class BatchingConfig(StrictModel):
    # Concurrent requests are merged into one ONNX Runtime call of at most max_batch_size items, waiting at
    # most max_wait_ms for the batch to fill. Disabled: each request runs on its own.
    enabled: bool = True
    max_batch_size: int = Field(32, ge=1, le=1024)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)


class LimitsConfig(StrictModel):
    max_body_bytes: int = Field(8_000_000, ge=1024)
    max_items: int = Field(32, ge=1)               # texts or images in one request
    max_text_chars: int = Field(2000, ge=1)
    max_image_pixels: int = Field(25_000_000, ge=1)  # decoded width × height (decompression bombs)
    max_k: int = Field(100, ge=1)


class ReloadConfig(StrictModel):
    # How often the registry alias is checked; 0 turns hot reload off.
    poll_seconds: float = Field(10.0, ge=0)
    # How long a replaced model keeps answering the requests it already accepted.
    drain_seconds: float = Field(30.0, ge=0)


class ServingConfig(Rooted):
    # models:/<name>@<alias>, models:/<name>/<version>, or an exported bundle directory.
    model: str = "models:/fashionvlp-fashionvil@production"
    # null: $MLFLOW_TRACKING_URI, else the repository's local store. Relative sqlite paths are from root.
    tracking_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # ONNX Runtime execution providers in order of preference; the active one is reported in /readyz.
    providers: list[str] = Field(default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    intra_op_threads: int = Field(0, ge=0)         # 0: ONNX Runtime's default (all cores)
    int8: bool = False                             # serve the encoders' int8 graphs (bundle exported with --int8)
    cache_dir: Path = Path("derived/serving")      # downloaded versions and catalog indexes
    index: IndexConfig = Field(default_factory=IndexConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    reload: ReloadConfig = Field(default_factory=ReloadConfig)

    @property
    def registry_uri(self) -> str:
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow/mlflow.db"
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            return f"sqlite:///{self.resolve(uri.removeprefix('sqlite:///'))}"
        return uri


def load_serving_config(path: Path | str = "deploy/serving.yaml", overrides: list[str] | tuple[str, ...] = ()) -> ServingConfig:
    """The YAML file, then ``key.path=value`` overrides; relative paths resolve from the repository root
    (the parent of ``deploy/``)."""
    path = Path(path).resolve()
    tree = _read_yaml(path)
    for item in overrides:
        tree = _merge(tree, parse_override(item))
    tree.setdefault("root", str(path.parent.parent if path.parent.name == "deploy" else path.parent))
    try:
        return ServingConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{path} + overrides")) from exc
