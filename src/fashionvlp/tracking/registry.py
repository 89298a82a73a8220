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

from fashionvlp.models.image_encoders import ModelInputError

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


def model_card(name: str, bundle: Path, metrics: dict[str, float], lineage: dict[str, str]) -> str:
    manifest = json.loads((bundle / "manifest.json").read_text())
    lines = [f"# {name}", "", f"Architecture: {manifest['arch']}. ONNX graphs: "
             + ", ".join(f"`{g['file']}` ({', '.join(g['inputs'])} → {', '.join(g['outputs'][:3])}"
                         + ("…" if len(g["outputs"]) > 3 else "") + ")" for g in manifest["graphs"].values()), "",
             "## Evaluation (test split unless the metric says otherwise)", "",
             "| metric | value |", "|---|---|", *[f"| {k} | {v:.2f} |" for k, v in sorted(metrics.items())], "",
             "## Lineage", "", *[f"- {k}: {v}" for k, v in sorted(lineage.items())], "",
             "Inputs: RGB images resized to the preprocessing size and normalised; text = title + '. ' + "
             "description, tokenised with the bundled tokenizer. Trained on a synthetic catalog unless the "
             "lineage says otherwise: not a production-quality model by itself."]
    return "\n".join(lines)


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
                                 signature=signature, input_example=example)
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


def promotion_gate(client: MlflowClient, name: str, margins: dict[str, float]) -> dict:
    """Moves ``champion`` to ``challenger`` only if the challenger beats the champion by at least each
    metric's margin (every metric in ``margins``; higher is better). A first version always wins."""
    challenger = _alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise RegistryError(f"registered model {name!r} has no {CHALLENGER!r} version: export and register first")
    champion = _alias_version(client, name, CHAMPION)
    margins = {metric_key(m): margin for m, margin in margins.items()}
    new = version_metrics(client, name, challenger)
    missing = [m for m in margins if m not in new]
    if missing:
        raise RegistryError(f"version {challenger} of {name!r} has no metric(s) {missing}; it has {sorted(new)}")
    if champion is None or champion == challenger:
        client.set_registered_model_alias(name, CHAMPION, challenger)
        return {"promoted": True, "challenger": challenger, "champion": challenger, "previous": champion,
                "reason": "no champion yet" if champion is None else "already champion", "comparison": {}}
    old = version_metrics(client, name, champion)
    comparison = {m: {"challenger": new[m], "champion": old.get(m, float("-inf")), "margin": margin,
                      "passed": new[m] >= old.get(m, float("-inf")) + margin} for m, margin in margins.items()}
    promoted = all(c["passed"] for c in comparison.values())
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger)
    failed = [m for m, c in comparison.items() if not c["passed"]]
    return {"promoted": promoted, "challenger": challenger, "champion": challenger if promoted else champion,
            "previous": champion, "comparison": comparison,
            "reason": "better by every margin" if promoted else f"not better by the margin on {', '.join(failed)}"}


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
