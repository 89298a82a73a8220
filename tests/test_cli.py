from typer.main import get_command
from typer.testing import CliRunner

from fashionvlp.cli import app


def _walk(command, path=()):
    yield path
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _walk(sub, path + (name,))


def test_every_subcommand_has_help():
    root = get_command(app)
    paths = list(_walk(root))
    assert ("data", "synth") in paths and ("data", "convert", "fashiongen") in paths
    for path in paths:
        res = CliRunner().invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "Usage" in res.output


def test_bad_override_is_a_clear_error():
    res = CliRunner().invoke(app, ["config", "show", "--set", "data.synth.num_products=abc"])
    assert res.exit_code == 2
    assert "data.synth.num_products" in res.output


def test_paper_presets_resolve_and_ask_for_local_weights(tiny_catalog, tmp_path):
    from fashionvlp.config import load_params
    from tests.conftest import REPO

    fv = load_params(REPO / "params.yaml", ["paper-fashionvil"])
    kg = load_params(REPO / "params.yaml", ["paper-kgflip"])
    assert (fv.model.image.name, fv.model.image.image_size, fv.model.text.max_length) == ("vit_base_patch16_224", 224, 75)
    assert fv.pretrain.lr == 1e-5 and fv.pretrain.lr_multiplier == 20 and fv.pretrain.warmup_steps == 15000
    assert fv.pretrain.batch_size * fv.pretrain.grad_accum == 256 and fv.pretrain.steps == 120000
    assert kg.model.arch == "kgflip" and kg.pretrain.combine == "sum" and kg.pretrain.lr == 3e-4
    assert set(kg.pretrain.active_objectives) == {"kg_mlim", "kg_itm", "lm"}
    res = CliRunner().invoke(app, ["pretrain", "--preset", "paper-fashionvil", "--no-track", "--catalog",
                                   str(tiny_catalog), "--out", str(tmp_path / "out"),
                                   "--set", "pretrain.objectives.mpfc=0"])
    assert res.exit_code == 1
    assert "vit_base_patch16_224.pth does not exist" in res.output
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_data_validate_prints_its_summary_without_library_info_lines(tiny_catalog, tmp_path):
    # Great Expectations pins INFO on some of its loggers; without -v only this project's lines show.
    import subprocess
    import sys

    from tests.conftest import REPO

    cmd = [sys.executable, "-m", "fashionvlp.cli", "data", "validate", "--catalog", str(tiny_catalog),
           "--report-dir", str(tmp_path / "report"), "--params", str(REPO / "params.yaml")]
    quiet = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert quiet.returncode == 0, quiet.stderr
    lines = (quiet.stdout + quiet.stderr).strip().splitlines()
    assert lines == [line for line in lines if "great_expectations" not in line] and len(lines) <= 3, lines
    assert lines[-1].startswith("catalog valid:")
    verbose = subprocess.run([*cmd[:3], "-v", *cmd[3:]], capture_output=True, text=True, cwd=REPO)
    assert "great_expectations" in verbose.stderr
