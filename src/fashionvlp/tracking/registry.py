"""The MLflow model registry: an exported ONNX bundle as one registered model version, the promotion
gate between the ``challenger`` and ``champion`` aliases, and ``production`` with rollback.

Only aliases are used (no stages). Every call names its run and model explicitly (``MlflowClient``).
The version's metrics are stored as version tags ``metric.<name>`` so the gate reads them without
touching runs; the production history is a registered-model tag, so rollback needs no other state.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow.pyfunc
import numpy as np
from mlflow.tracking import MlflowClient

from fashionvlp.errors import ModelInputError

CHALLENGER, CHAMPION, PRODUCTION = "challenger", "champion", "production"
HISTORY_TAG = "production.history"


def metric_key(name: str) -> str:
    """MLflow tag keys cannot hold "@": ``ATTR_R@90P`` is stored as ``ATTR_R_at_90P``."""
    return name.replace("@", "_at_")


class RegistryError(ModelInputError):
    """A registry request that cannot be met (no such alias or version, nothing to roll back to); the CLI
    reports it like any other bad input."""


class OnnxBundleModel(mlflow.pyfunc.PythonModel):
    """The bundle as a pyfunc model: ``predict`` embeds texts with ``text.onnx`` (the signature's use);
    serving reads the bundle's other graphs and files from ``artifacts/bundle``."""

    def load_context(self, context) -> None:
        from transformers import AutoTokenizer

        from fashionvlp.export.onnx_export import session

        self.bundle = Path(context.artifacts["bundle"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.bundle / "tokenizer"))
        self.max_length = json.loads((self.bundle / "preprocessing.json").read_text())["max_length"]
        self.text = session(self.bundle / "text.onnx")

    def predict(self, context, model_input, params=None) -> np.ndarray:
        texts = list(model_input["text"])
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        return self.text.run(["text_embedding"], {"input_ids": enc["input_ids"].astype(np.int64),
                                                  "attention_mask": enc["attention_mask"].astype(np.int64)})[0]


CI_SUFFIXES = (".ci_low", ".ci_high")


def _with_interval(metrics: dict[str, float], name: str) -> str:
    low, high = metrics.get(f"{name}.ci_low"), metrics.get(f"{name}.ci_high")
    return f"{metrics[name]:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else "")


def model_card(name: str, bundle: Path, metrics: dict[str, float], lineage: dict[str, str]) -> str:
    manifest = json.loads((bundle / "manifest.json").read_text())
    lines = [f"# {name}", "", f"Architecture: {manifest['arch']}. ONNX graphs: "
             + ", ".join(f"`{g['file']}` ({', '.join(g['inputs'])} → {', '.join(g['outputs'][:3])}"
                         + ("…" if len(g["outputs"]) > 3 else "") + ")" for g in manifest["graphs"].values()), "",
             "## Evaluation (test split unless the metric says otherwise)", "",
             "| metric | value [95% interval] |", "|---|---|",
             *[f"| {k} | {_with_interval(metrics, k)} |" for k in sorted(metrics) if not k.endswith(CI_SUFFIXES)], "",
             "## Lineage", "", *[f"- {k}: {v}" for k, v in sorted(lineage.items())], "",
             "Inputs: RGB images resized to the preprocessing size and normalised; text = title + '. ' + "
             "description, tokenised with the bundled tokenizer. Trained on a synthetic catalog unless the "
             "lineage says otherwise: not a production-quality model by itself."]
    return "\n".join(lines)


# What loading the pyfunc needs, pinned to what is installed. Named, not inferred: MLflow's inference
# imports the model in a subprocess (about 10 s a version) and can miss what the bundle loads lazily.
PYFUNC_REQUIREMENTS = ("mlflow", "onnxruntime-gpu", "transformers", "tokenizers", "numpy", "pandas")


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in PYFUNC_REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def register_bundle(client: MlflowClient, run_id: str, bundle: Path, name: str, metrics: dict[str, float],
                    lineage: dict[str, str]) -> str:
    """Logs the bundle as a pyfunc model in ``run_id``, registers it as a new version of ``name`` with
    metrics, lineage and a model card, and points ``challenger`` at it. Returns the version."""
    import pandas as pd
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": ["red midi dress with long sleeves", "black leather ankle boots"]})
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        model = OnnxBundleModel()
        model.load_context(type("Context", (), {"artifacts": {"bundle": str(bundle)}})())
        signature = infer_signature(example, model.predict(None, example))
        mlflow.pyfunc.save_model(str(local), python_model=OnnxBundleModel(), artifacts={"bundle": str(bundle)},
                                 signature=signature, input_example=example, pip_requirements=_requirements())
        client.log_artifacts(run_id, str(local), "registered_model")
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="fashionvlp ONNX bundles (encoders, attribute and "
                                                         "category heads) for serving")
    source = f"{client.get_run(run_id).info.artifact_uri}/registered_model"
    tags = {f"metric.{metric_key(k)}": f"{v:.6g}" for k, v in metrics.items()} | {f"lineage.{k}": str(v) for k, v in lineage.items()}
    version = client.create_model_version(name, source, run_id=run_id, tags=tags,
                                          description=model_card(name, bundle, metrics, lineage))
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return str(version.version)


def version_metrics(client: MlflowClient, name: str, version: str) -> dict[str, float]:
    tags = client.get_model_version(name, version).tags
    return {k.removeprefix("metric."): float(v) for k, v in tags.items() if k.startswith("metric.")}


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


FINGERPRINT_FIELDS = ("split", "catalog_md5", "protocols", "seed")


def version_evidence(client: MlflowClient, name: str, version: str, dst: Path) -> dict[str, tuple[dict, dict]]:
    """task → (headline → outcome, fingerprint), from the version's bundle; {} for a version without any."""
    import mlflow.artifacts

    from fashionvlp.evaluation.outcomes import BUNDLE_DIR, SUFFIX, read_outcomes

    source = client.get_model_version_download_uri(name, version).rstrip("/")
    bundles = [a.path for a in mlflow.artifacts.list_artifacts(artifact_uri=f"{source}/artifacts",
                                                               tracking_uri=client.tracking_uri) if a.is_dir]
    target = dst / version
    for bundle in bundles:
        found = [a for a in mlflow.artifacts.list_artifacts(artifact_uri=f"{source}/{bundle}/{BUNDLE_DIR}",
                                                            tracking_uri=client.tracking_uri) or []]
        if found:
            mlflow.artifacts.download_artifacts(artifact_uri=f"{source}/{bundle}/{BUNDLE_DIR}", dst_path=str(target),
                                                tracking_uri=client.tracking_uri)
    return {p.name.removesuffix(SUFFIX): read_outcomes(p) for p in sorted(target.rglob(f"*{SUFFIX}"))}


def _find(evidence: dict, metric: str):
    """The outcome and fingerprint of ``task.headline`` (either spelling of ``@``), or (None, None)."""
    task, _, headline = metric.partition(".")
    outcomes, fingerprint = evidence.get(task, ({}, None))
    match = next((o for h, o in outcomes.items() if metric_key(h) == metric_key(headline)), None)
    return match, fingerprint


def fingerprint_difference(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in FINGERPRINT_FIELDS if a.get(k) != b.get(k)]


def promotion_gate(client: MlflowClient, name: str, margins: dict[str, float], seed: int = 0,
                   resamples: int = 1000) -> dict:
    """Moves ``champion`` to ``challenger`` only on evidence: for every gated metric, the paired bootstrap of
    the per-unit difference (both versions' saved outcomes on the same evaluation units) must have a
    difference above the metric's margin *and* a 95% interval whose lower bound is above 0. Versions
    evaluated on other data, split, protocol or seed are refused, naming the difference. A first version
    always wins."""
    from fashionvlp.evaluation.bootstrap import PairingError, paired_difference

    challenger = _alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise RegistryError(f"registered model {name!r} has no {CHALLENGER!r} version: export and register first")
    champion = _alias_version(client, name, CHAMPION)
    new = version_metrics(client, name, challenger)
    missing = [m for m in margins if metric_key(m) not in new]
    if missing:
        raise RegistryError(f"version {challenger} of {name!r} has no metric(s) {missing}; it has {sorted(new)}")
    if champion is None or champion == challenger:
        client.set_registered_model_alias(name, CHAMPION, challenger)
        return {"promoted": True, "challenger": challenger, "champion": challenger, "previous": champion,
                "reason": "no champion yet" if champion is None else "already champion", "comparison": {}}
    with tempfile.TemporaryDirectory() as tmp:
        evidence = {v: version_evidence(client, name, v, Path(tmp)) for v in (challenger, champion)}
    comparison, refusals = {}, []
    for metric, margin in margins.items():
        ours, our_print = _find(evidence[challenger], metric)
        theirs, their_print = _find(evidence[champion], metric)
        if ours is None or theirs is None:
            lacking = challenger if ours is None else champion
            refusals.append(f"{metric}: version {lacking} has no per-unit evaluation outcomes to pair (registered "
                            "before the gate needed them, or exported without them); re-export it, or move "
                            "champion by hand")
            continue
        differs = fingerprint_difference(our_print, their_print)
        if differs:
            refusals.append(f"{metric}: the versions were evaluated differently ({'; '.join(differs)})")
            continue
        try:
            diff = paired_difference(ours, theirs, seed, resamples, what=metric)
        except PairingError as exc:
            refusals.append(str(exc))
            continue
        ones = np.ones((1, len(ours.units)))
        passed = diff.value > margin and diff.ci_low > 0
        comparison[metric] = {"challenger": float(ours.statistic(ones)[0]), "champion": float(theirs.statistic(ones)[0]),
                              "difference": diff.value, "ci_low": diff.ci_low, "ci_high": diff.ci_high,
                              "units": diff.units, "margin": margin, "passed": passed}
        if not passed:
            refusals.append(f"{metric}: difference {diff.value:+.2f} [{diff.ci_low:+.2f}, {diff.ci_high:+.2f}] "
                            + (f"is not above the margin {margin}" if diff.value <= margin
                               else "has a 95% interval reaching 0 or below"))
    promoted = not refusals
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger)
    reason = ("better on every gated metric by more than its margin, each 95% paired-bootstrap interval above 0"
              if promoted else "refused: " + "; ".join(refusals))
    return {"promoted": promoted, "challenger": challenger, "champion": challenger if promoted else champion,
            "previous": champion, "comparison": comparison, "reason": reason,
            "rule": "promote iff, for every gated metric, challenger − champion > margin and the 95% paired "
                    f"bootstrap interval's lower bound > 0 ({resamples} resamples, seed {seed})"}


def _history(client: MlflowClient, name: str) -> list[str]:
    return json.loads(client.get_registered_model(name).tags.get(HISTORY_TAG, "[]"))


def set_production(client: MlflowClient, name: str, version: str | None = None) -> str:
    """Points ``production`` at ``version`` (default: the champion) and records the move for rollback."""
    version = version or _alias_version(client, name, CHAMPION)
    if version is None:
        raise RegistryError(f"registered model {name!r} has no {CHAMPION!r}: run the promotion gate first")
    client.get_model_version(name, version)  # raises if the version does not exist
    history = _history(client, name) + [str(version)]
    client.set_registered_model_alias(name, PRODUCTION, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return str(version)


def rollback_production(client: MlflowClient, name: str) -> str:
    """Moves ``production`` back to the version it pointed at before the last move."""
    history = _history(client, name)
    if len(history) < 2:
        raise RegistryError(f"registered model {name!r} has no earlier production version to roll back to")
    history.pop()
    client.set_registered_model_alias(name, PRODUCTION, history[-1])
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return history[-1]
