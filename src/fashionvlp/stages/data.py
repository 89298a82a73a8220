"""Data stages: materialise the catalog (DVC pull or seeded regeneration), synthesise, validate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fashionvlp.config import Params
from fashionvlp.data.catalog_io import ImageLimits
from fashionvlp.data.versioning import DataVersion, DataVersionError, data_version, dvc_file_for, pull, workspace_matches

log = logging.getLogger(__name__)


def image_limits(params: Params) -> ImageLimits:
    v = params.validation
    return ImageLimits(min_side=v.image_min_side, max_side=v.image_max_side, max_bytes=v.image_max_bytes)


def synth(params: Params, out: Path | None = None) -> Path:
    from fashionvlp.data.synth.generate import synthesize

    return synthesize(params.data.synth, out or params.catalog_dir, image_limits(params))


def import_table(params: Params, table: Path, images: Path, mapping: Path, taxonomy: Path, out: Path | None = None,
                 max_reject: int = 0, report: Path | None = None) -> Path:
    """A shop's product table, images, column mapping and taxonomy → catalog (``data/catalog_import.py``)."""
    from fashionvlp.data.catalog_import import import_catalog, load_mapping, load_taxonomy

    return import_catalog(table, images, load_mapping(mapping), load_taxonomy(taxonomy), out or params.catalog_dir,
                          image_limits(params), max_reject, report)


def validation_dir(params: Params) -> Path:
    return params.derived_dir / "validation"


def validate(params: Params, catalog: Path | None = None, report_dir: Path | None = None):
    """Runs the GX suites; raises ``ValidationFailed`` (with the report path) when any expectation fails."""
    from fashionvlp.data.validation import ValidationFailed, summarize, validate_catalog

    result = validate_catalog(catalog or params.catalog_dir, report_dir or validation_dir(params), params.validation)
    if not result.success:
        raise ValidationFailed(summarize(result), result.report_md)
    return result


@dataclass(frozen=True)
class Materialized:
    catalog: Path
    how: str            # present | pulled | regenerated | generated
    version: DataVersion


def materialize(params: Params) -> Materialized:
    """Makes sure the catalog is on disk and is the version ``data.dvc`` pins.

    Order: keep a matching catalog; else ``dvc pull``; else regenerate the embedded catalog (it is
    byte-deterministic) and check it against the pin. A catalog on disk that differs from the pin is
    never overwritten: that is someone's data, and the error says how to pin or restore it.
    """
    repo, catalog = params.root, params.catalog_dir
    dvc_file = dvc_file_for(catalog)
    present = (catalog / "catalog.json").exists()
    if dvc_file is None:
        how = "present" if present else "generated"
        if not present:
            synth(params)
        return Materialized(catalog, how, data_version(repo, None))
    if present:
        if workspace_matches(repo, dvc_file):
            return Materialized(catalog, "present", data_version(repo, dvc_file))
        raise DataVersionError(
            f"{catalog} differs from the version pinned in {dvc_file.name}. Pin it with "
            f"`dvc add {catalog.name}` (and commit {dvc_file.name}), or restore the pinned one with "
            f"`dvc checkout {dvc_file.name}`.")
    ok, message = pull(repo, dvc_file)
    if ok and workspace_matches(repo, dvc_file):
        return Materialized(catalog, "pulled", data_version(repo, dvc_file))
    log.info("dvc pull did not provide the catalog (%s); regenerating it", message.splitlines()[-1] if message else "")
    synth(params)
    if not workspace_matches(repo, dvc_file):
        raise DataVersionError(
            f"the regenerated catalog in {catalog} does not match {dvc_file.name}: the data.synth params differ "
            f"from those that made the pin. Pin the new catalog with `dvc add {catalog.name}`, or reset data.synth.")
    return Materialized(catalog, "regenerated", data_version(repo, dvc_file))
