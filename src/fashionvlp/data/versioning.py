"""Data versions: the DVC pin of the catalog (``data.dvc``) and the git commit, read with the real tools."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml


class DataVersionError(RuntimeError):
    pass


@dataclass(frozen=True)
class DataVersion:
    dvc_file: str | None
    dvc_md5: str | None          # the pinned hash in the .dvc file
    workspace_matches: bool | None   # does the catalog on disk hash to the pin?
    git_sha: str | None
    git_dirty: bool | None



def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True)


def dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The DVC CLI of this interpreter's environment."""
    return _run([sys.executable, "-m", "dvc", *args], cwd)


def git_state(repo: Path) -> tuple[str | None, bool | None]:
    head = _run(["git", "rev-parse", "HEAD"], repo)
    if head.returncode != 0:
        return None, None
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], repo)
    return head.stdout.strip(), bool(dirty.stdout.strip())


def pinned_md5(dvc_file: Path) -> str:
    try:
        spec = yaml.safe_load(dvc_file.read_text())
        return spec["outs"][0]["md5"]
    except (OSError, KeyError, IndexError, TypeError) as exc:
        raise DataVersionError(f"{dvc_file}: cannot read the pinned hash ({exc})") from exc


def dir_md5(path: Path) -> str:
    """DVC 3's hash of a directory: md5 of the sorted JSON listing of its files' md5s, plus ``.dir``.

    Same bytes as ``dvc_data.hashfile.tree.Tree.as_bytes``; a test checks it against ``dvc add``. It is
    computed here because ``dvc status`` reports "not in cache" on a fresh clone even when the bytes match.
    """
    entries = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest = hashlib.md5()
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        entries.append({"md5": digest.hexdigest(), "relpath": file.relative_to(path).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def tracked_path(dvc_file: Path) -> Path:
    spec = yaml.safe_load(dvc_file.read_text())
    return dvc_file.parent / spec["outs"][0]["path"]


def workspace_matches(repo: Path, dvc_file: Path) -> bool:
    """True when the tracked directory on disk hashes to the pin in the .dvc file."""
    path = tracked_path(dvc_file)
    return path.is_dir() and dir_md5(path) == pinned_md5(dvc_file)


def data_version(repo: Path, dvc_file: Path | None) -> DataVersion:
    sha, dirty = git_state(repo)
    if dvc_file is None or not dvc_file.exists():
        return DataVersion(None, None, None, sha, dirty)
    return DataVersion(str(dvc_file.relative_to(repo)), pinned_md5(dvc_file), workspace_matches(repo, dvc_file),
                       sha, dirty)


def dvc_file_for(catalog_dir: Path) -> Path | None:
    """The ``.dvc`` file that tracks a catalog directory, if any (``data`` → ``data.dvc``)."""
    candidate = catalog_dir.parent / f"{catalog_dir.name}.dvc"
    return candidate if candidate.exists() else None


def pull(repo: Path, dvc_file: Path) -> tuple[bool, str]:
    res = dvc(["pull", str(dvc_file.relative_to(repo))], repo)
    return res.returncode == 0, (res.stderr or res.stdout).strip()


def stage_up_to_date(repo: Path, stage: str) -> bool:
    """``dvc status <stage>`` reports nothing: its lock matches the deps, params and outs on disk."""
    res = dvc(["status", stage, "--json"], repo)
    try:
        return res.returncode == 0 and json.loads(res.stdout or "{}") == {}
    except json.JSONDecodeError:
        return False


def commit_stages(repo: Path, stages: list[str]) -> Path:
    """``dvc commit -f <stages>``: records the outputs the stages' code just wrote (outside ``dvc repro``)
    in dvc.lock."""
    res = dvc(["commit", "-f", "-q", *stages], repo)
    if res.returncode != 0:
        raise DataVersionError(f"dvc commit failed in {repo}: {(res.stderr or res.stdout).strip()}")
    return repo / "dvc.lock"
