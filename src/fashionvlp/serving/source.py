"""Where the served bundle comes from: a registry alias (``models:/<name>@production``), a fixed registry
version (``models:/<name>/<version>``), or a bundle directory. ``current()`` is cheap and is polled for
hot reload; ``fetch()`` downloads a version once into the cache."""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fashionvlp.serving.bundle import BundleError, find_bundle, verify

log = logging.getLogger("fashionvlp.serving")

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
        """A local directory holding the bundle of ``resolved``, its files checked against the manifest's
        checksums: a cached copy that fails the check (a download cut short, a file altered) is dropped and
        downloaded again; a fresh download that fails it is a ``BundleError``."""
        if self.path is not None:
            return self.path
        target = self.cache_dir / "models" / self.name / resolved.version
        if (target / ".complete").is_file():
            try:
                verify(find_bundle(target))
                return target
            except BundleError as exc:
                log.warning("cached version %s fails its check (%s): downloading it again", resolved.version, exc)
        shutil.rmtree(target, ignore_errors=True)
        self._download(resolved.version, target)
        verify(find_bundle(target))
        (target / ".complete").touch()
        return target

    def _download(self, version: str, target: Path) -> None:
        import mlflow.artifacts

        target.mkdir(parents=True, exist_ok=True)
        # By version, not alias: the alias may move while this downloads.
        source = self.client.get_model_version_download_uri(self.name, version)
        moved = self._moved_store_path(source)
        if moved is not None:
            log.info("version %s: artifacts recorded at %s, found under the tracking store at %s", version,
                     source, moved)
            source = moved.as_uri()
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target), tracking_uri=self.registry_uri)

    def _moved_store_path(self, source: str) -> Path | None:
        """A local store records absolute artifact paths; when the store was moved or mounted elsewhere (the
        Dockerfile's ``mlflow/`` volume), the same artifacts are found relative to the store's database:
        the longest tail of the recorded path that exists under its directory. None when the recorded path
        exists, or the store is not a local sqlite file."""
        from urllib.parse import unquote, urlparse

        if not self.registry_uri.startswith("sqlite:///"):
            return None
        parsed = urlparse(source)
        if parsed.scheme not in ("", "file"):
            return None
        recorded = Path(unquote(parsed.path))
        if recorded.exists():
            return None
        store = Path(self.registry_uri.removeprefix("sqlite:///")).resolve().parent
        parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
        for start in range(len(parts)):
            candidate = store.joinpath(*parts[start:])
            if candidate.exists():
                return candidate
        raise BundleError(f"{self.spec}: the registry records its artifacts at {recorded}, which does not exist, "
                          f"and no tail of that path exists under the tracking store {store}")
