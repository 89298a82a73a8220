import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fashionvlp.env import quiet_offline

quiet_offline()

REPO = Path(__file__).resolve().parent.parent
TINY = ["data.synth.num_products=140", "data.synth.image_size=64", "data.synth.num_outfits=30",
        "data.synth.workers=1"]


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory) -> Path:
    """A 140-product synthetic catalog, generated once per session; copy it before modifying."""
    from fashionvlp.config import load_params
    from fashionvlp.stages.data import synth

    out = tmp_path_factory.mktemp("tiny") / "catalog"
    return synth(load_params(REPO / "params.yaml", overrides=TINY), out)


@pytest.fixture
def catalog_copy(tiny_catalog, tmp_path) -> Path:
    dst = tmp_path / "catalog"
    shutil.copytree(tiny_catalog, dst)
    return dst


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# A model small enough for unit tests (seconds on 2 cores): micro ViT at 64 px (8×8 patches), 1-layer BERT,
# without the default's frozen image prior (its convolutions in every model cost the suite about 2 minutes);
# the exported models below, and the tests of the prior itself, have it.
TINY_MODEL = TINY + [
    "model.image.name=vit_micro_patch8", "model.image.image_size=64", "model.image.prior=null",
    "model.text.source=scratch", "model.text.max_length=24",
    "model.text.scratch.vocab_size=300", "model.text.scratch.hidden_size=32", "model.text.scratch.layers=1",
    "model.text.scratch.heads=2", "model.text.scratch.intermediate_size=64",
    "vqvae.steps=10", "vqvae.batch_size=16", "vqvae.hidden_channels=16", "vqvae.codebook_size=32",
    "pretrain.steps=4", "pretrain.batch_size=8", "pretrain.log_every=1", "pretrain.checkpoint_every=2",
    "pretrain.warmup_steps=1", "pretrain.pac.num_pseudo_attributes=20", "pretrain.pac.min_count=2",
    *[f"finetune.{task}.{key}" for task in ("xmr", "classification", "tgir", "ocir", "attributes", "captioning")
      for key in ("steps=3", "batch_size=4", "warmup_steps=1")],
]
KGFLIP = ["model.arch=kgflip", "pretrain.combine=sum",
          "pretrain.objectives={itc: 0, itm: 0, mlm: 0, mpfc: 0, mvc: 0, pac: 0, kg_mlim: 1, kg_itm: 1, lm: 1}"]


def tiny_params(tmp_path: Path, *extra: str):
    from fashionvlp.config import load_params

    return load_params(REPO / "params.yaml", overrides=TINY_MODEL + [f"paths.derived={tmp_path / 'derived'}",
                                                                     f"tracking.store={tmp_path / 'mlflow.db'}",
                                                                     f"tracking.artifact_root={tmp_path / 'artifacts'}",
                                                                     *extra])


@pytest.fixture(scope="session")
def tiny_patch_labels(tiny_catalog, tmp_path_factory) -> Path:
    """VQ-VAE patch labels for the tiny catalog at the TINY_MODEL grid, made once per session."""
    from fashionvlp.stages.vqvae import train_vqvae

    tmp = tmp_path_factory.mktemp("labels")
    return train_vqvae(tiny_params(tmp), tiny_catalog).labels_dir


EXPORT_ARCHS = {"fashionvil": [], "kgflip": KGFLIP}
_FINE_TUNED: dict = {}


def fine_tune_for_export(arch, tiny_catalog, tiny_patch_labels, tmp_path_factory):
    """Pre-trained (2 steps) and fine-tuned (3 steps) XMR, attribute and classification models, once per arch."""
    from fashionvlp.stages.finetune import finetune
    from fashionvlp.stages.pretrain import pretrain

    if arch not in _FINE_TUNED:
        tmp = tmp_path_factory.mktemp(arch)
        # the default's image path: ONNX parity and serving are checked with the frozen prior in the graphs
        params = tiny_params(tmp, *EXPORT_ARCHS[arch], "pretrain.steps=2", "evaluation.allow_fallback=true",
                             "model.image.prior=efficientnet_lite0_s16")
        model_dir = pretrain(params, tiny_catalog, tiny_patch_labels).model_dir
        sources = {role: finetune(params, task, model_dir, tiny_catalog).model_dir
                   for role, task in {"retrieval": "xmr", "attributes": "attributes",
                                      "categories": "classification"}.items()}
        _FINE_TUNED[arch] = (params, sources, tmp)
    return _FINE_TUNED[arch]


@pytest.fixture(scope="session")
def fashionvil_bundle(tiny_catalog, tiny_patch_labels, tmp_path_factory):
    """A FashionViL ONNX bundle of the tiny fine-tuned models: (params, bundle dir)."""
    from fashionvlp.stages.export import export

    params, sources, tmp = fine_tune_for_export("fashionvil", tiny_catalog, tiny_patch_labels, tmp_path_factory)
    return params, export(params, sources, tiny_catalog, out=tmp / "registry-bundle").out


def scratch_repo(tmp_path: Path, catalog: Path, params: list[str] | None = None) -> Path:
    """A git + DVC repository holding a copy of ``catalog`` as data/ and the project's params.yaml. With
    ``params`` (overrides), those values are written into params.yaml, and dvc.yaml and the package source
    (dvc.yaml's code deps) are copied in, so DVC's view of the stages matches what a run does."""
    import yaml

    from fashionvlp.config import load_params

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    shutil.copytree(catalog, repo / "data")
    if params is None:
        (repo / "params.yaml").write_text((REPO / "params.yaml").read_text())
        return repo
    values = load_params(REPO / "params.yaml", overrides=params).model_dump(mode="json", exclude={"root"})
    (repo / "params.yaml").write_text(yaml.safe_dump(values))
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    shutil.copytree(REPO / "src" / "fashionvlp", repo / "src" / "fashionvlp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def bundle_with_evidence(bundle: Path, out: Path, rates: dict[str, float], split: str = "test", units: int = 400,
                         seed: int = 0) -> tuple[Path, dict[str, float]]:
    """A copy of ``bundle`` whose evaluation outcomes say each gated metric (``task.HEADLINE``) hits at the
    given rate on the same ``units`` products; returns (bundle, metrics for register_bundle). The hits are
    nested — a higher rate hits every unit a lower one does plus more — as a better model would."""
    import numpy as np

    from fashionvlp.evaluation.outcomes import BUNDLE_DIR, MeanOutcome, outcomes_path, write_outcomes

    shutil.copytree(bundle, out)
    shutil.rmtree(out / BUNDLE_DIR, ignore_errors=True)
    draws = np.random.default_rng(seed).random(units)
    ids = [f"P{i:05d}" for i in range(units)]
    by_task: dict[str, dict] = {}
    for metric, rate in rates.items():
        task, name = metric.split(".", 1)
        by_task.setdefault(task, {})[name] = MeanOutcome.rows(ids, (draws < rate) * 100.0)
    metrics = {}
    for task, outcomes in by_task.items():
        write_outcomes(outcomes_path(out / BUNDLE_DIR, task), outcomes,
                       {"task": task, "split": split, "catalog_md5": "c0ffee", "protocols": ["p"], "seed": 0})
        metrics |= {f"{task}.{n}": float(o.statistic(np.ones((1, units)))[0]) for n, o in outcomes.items()}
    return out, metrics
