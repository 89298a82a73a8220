"""Where the served bundle comes from: a registry alias (``models:/<name>@production``), a fixed registry
version (``models:/<name>/<version>``), or a bundle directory. ``current()`` is cheap and is polled for
hot reload; ``fetch()`` downloads a version once into the cache."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fashionvlp.serving.bundle import BundleError

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class Resolved:
    version: str        # registry version, or "path" for a directory
    uri: str            # what it was resolved from


class ModelSource:
    def __init__(self, spec: str, registry_uri: str, cache_dir: Path):
        self.spec, self.registry_uri, self.cache_dir = spec, registry_uri, Path(cache_dir)
        match = MODEL_URI.match(spec)
        if spec.startswith("models:/") and not match:
            raise BundleError(f"model {spec!r}: expected models:/<name>@<alias>, models:/<name>/<version> or a path")
        self.name = match["name"] if match else None
        self.alias = match["alias"] if match else None
        self.pinned = match["version"] if match else None
        self.path = None if match else Path(spec)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.registry_uri, registry_uri=self.registry_uri)
        return self._client

    @property
    def follows_alias(self) -> bool:
        return self.alias is not None

    def current(self) -> Resolved:
        import mlflow.exceptions

        if self.path is not None:
            if not self.path.exists():
                raise BundleError(f"model path {self.path} does not exist")
            return Resolved("path", str(self.path))
        if self.pinned:
            return Resolved(self.pinned, self.spec)
        try:
            version = self.client.get_model_version_by_alias(self.name, self.alias).version
        except mlflow.exceptions.MlflowException as exc:
            raise BundleError(f"{self.spec}: no such registered model or alias in {self.registry_uri} "
                              f"({exc.message.splitlines()[0]}); register and promote one first: "
                              f"fashionvlp export --register; fashionvlp promote; fashionvlp production set") from exc
        return Resolved(str(version), self.spec)

    def fetch(self, resolved: Resolved) -> Path:
        """A local directory holding the bundle of ``resolved``."""
        if self.path is not None:
            return self.path
        import mlflow.artifacts

        target = self.cache_dir / "models" / self.name / resolved.version
        if not (target / ".complete").is_file():
            target.mkdir(parents=True, exist_ok=True)
            # By version, not alias: the alias may move while this downloads.
            source = self.client.get_model_version_download_uri(self.name, resolved.version)
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target),
                                                tracking_uri=self.registry_uri)
            (target / ".complete").touch()
        return target
