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
