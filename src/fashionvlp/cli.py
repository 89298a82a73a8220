"""``fashionvlp``: one CLI whose subcommands are the pipeline stages (each a thin call into ``stages``)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fashionvlp.env import quiet_offline  # noqa: E402

quiet_offline()

from fashionvlp.config import ConfigError, Params, load_params  # noqa: E402

app = typer.Typer(help="Fashion vision-and-language pre-training, fine-tuning and serving (FashionViL, KG-FLIP).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Catalog stages: synthesise, convert, validate, version.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert a real dataset into a catalog.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
data_app.add_typer(convert_app, name="convert")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml with every stage's defaults.")]
PresetOpt = Annotated[Optional[list[str]], typer.Option("--preset", help="Named overlay from configs/<name>.yaml.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override one value, e.g. data.synth.num_products=500.")]


def _params(params: Path, preset: Optional[list[str]], overrides: Optional[list[str]]) -> Params:
    try:
        return load_params(params, preset or [], overrides or [])
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(fn):
    """Turns expected failures (bad input, failed validation) into a clear message and exit code 1."""
    from fashionvlp.data.catalog_io import CatalogError, CatalogNotFound
    from fashionvlp.data.versioning import DataVersionError

    try:
        return fn()
    except (CatalogError, CatalogNotFound, DataVersionError, FileExistsError) as exc:
        _fail(str(exc), 1)
    except RuntimeError as exc:
        if type(exc).__name__ == "ValidationFailed":
            _fail(str(exc), 1)
        raise


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@config_app.command("show")
def config_show(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved configuration (params.yaml + presets + --set) as JSON."""
    p = _params(params, preset, set_)
    typer.echo(json.dumps(p.model_dump(mode="json"), indent=2))


@data_app.command("synth")
def data_synth(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
               out: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None) -> None:
    """Generate the embedded synthetic fashion catalog (seeded, byte-deterministic)."""
    from fashionvlp.stages.data import synth

    p = _params(params, preset, set_)
    path = _run(lambda: synth(p, out))
    typer.echo(f"wrote synthetic catalog ({p.data.synth.num_products} products) to {path}")


@data_app.command("validate")
def data_validate(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
                  catalog: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None,
                  report_dir: Annotated[Optional[Path], typer.Option(help="Where report.json/report.md go.")] = None) -> None:
    """Validate a catalog with Great Expectations; exit 1 with a report when an expectation fails."""
    from fashionvlp.data.validation import summarize
    from fashionvlp.stages.data import validate

    p = _params(params, preset, set_)
    result = _run(lambda: validate(p, catalog, report_dir))
    typer.echo(summarize(result))


@data_app.command("materialize")
def data_materialize(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Put the pinned catalog on disk: keep it, `dvc pull` it, or regenerate it and check it against data.dvc."""
    from fashionvlp.stages.data import materialize

    p = _params(params, preset, set_)
    result = _run(lambda: materialize(p))
    typer.echo(f"catalog {result.catalog}: {result.how}; dvc md5 {result.version.dvc_md5}, git {result.version.git_sha}")


@data_app.command("version")
def data_version_cmd(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Print the catalog's data version: the DVC pin, whether the workspace matches it, and the git sha."""
    from fashionvlp.data.versioning import data_version, dvc_file_for

    p = _params(params, preset, set_)
    version = _run(lambda: data_version(p.root, dvc_file_for(p.catalog_dir)))
    typer.echo(json.dumps(version.__dict__, indent=2))


@convert_app.command("fashiongen")
def convert_fashiongen_cmd(out: Annotated[Path, typer.Option(help="Catalog directory to write.")],
                           train: Annotated[Optional[Path], typer.Option(help="fashiongen_256_256_train.h5")] = None,
                           val: Annotated[Optional[Path], typer.Option(help="h5 file for the val split")] = None,
                           test: Annotated[Optional[Path], typer.Option(help="fashiongen_256_256_validation.h5 (the papers' test set)")] = None,
                           params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """FashionGen h5 files → catalog (views grouped by product id)."""
    from fashionvlp.data.converters.fashiongen import convert_fashiongen
    from fashionvlp.stages.data import image_limits

    files = {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v is not None}
    if not files:
        _fail("give at least one of --train, --val, --test")
    p = _params(params, None, set_)
    path = _run(lambda: convert_fashiongen(files, out, image_limits(p)))
    typer.echo(f"wrote FashionGen catalog to {path}")


@convert_app.command("fashioniq")
def convert_fashioniq_cmd(root: Annotated[Path, typer.Argument(help="FashionIQ root (captions/, image_splits/, images/)")],
                          out: Annotated[Path, typer.Option(help="Catalog directory to write.")],
                          params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """FashionIQ captions and splits → catalog with triplets."""
    from fashionvlp.data.converters.fashioniq import convert_fashioniq
    from fashionvlp.stages.data import image_limits

    p = _params(params, None, set_)
    path = _run(lambda: convert_fashioniq(root, out, image_limits(p)))
    typer.echo(f"wrote FashionIQ catalog to {path}")


@convert_app.command("polyvore")
def convert_polyvore_cmd(root: Annotated[Path, typer.Argument(help="Polyvore Outfits root")],
                         out: Annotated[Path, typer.Option(help="Catalog directory to write.")],
                         variant: Annotated[str, typer.Option(help="nondisjoint or disjoint")] = "nondisjoint",
                         params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Polyvore Outfits → catalog with outfits."""
    from fashionvlp.data.converters.polyvore import convert_polyvore
    from fashionvlp.stages.data import image_limits

    p = _params(params, None, set_)
    path = _run(lambda: convert_polyvore(root, out, variant, image_limits(p)))
    typer.echo(f"wrote Polyvore catalog to {path}")


if __name__ == "__main__":
    sys.exit(app())
