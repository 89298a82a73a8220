"""An exported ONNX bundle at run time: ONNX Runtime sessions on the preferred provider, the bundled
tokenizer and image preprocessing, label maps and attribute thresholds.

Nothing here imports torch, so a serving image needs only ONNX Runtime, tokenizers and Pillow. The
preprocessing repeats the training transform (RGB, bicubic resize to a square, [0,1], normalise);
``tests/serving`` checks the two agree.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger("fashionvlp.serving")

GRAPHS = ("image", "text", "attributes", "categories")


class BundleError(ValueError):
    """A bundle directory that is missing files or does not fit together."""


class InputError(ValueError):
    """A request item that cannot be used; ``field`` names it (``images[2]``, ``text``)."""

    def __init__(self, field_name: str, message: str, status: int = 422):
        super().__init__(f"{field_name}: {message}")
        self.field, self.message, self.status = field_name, message, status


@functools.cache
def cuda_driver() -> str | None:
    """Why CUDA cannot run here, or None. onnxruntime-gpu lists CUDA as available on any machine and, without
    a driver, prints a library error per session before falling back; asking only when a driver exists
    keeps the log to our one warning."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return f"no CUDA driver ({exc})"
    return None


def open_session(path: Path, providers: list[str] | None = None, intra_op_threads: int = 0):
    """An ONNX Runtime session on the first usable provider of ``providers`` (default CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    available = set(ort.get_available_providers())
    if cuda_driver() is not None:
        available -= {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
    wanted = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=wanted)


MANIFEST = "manifest.json"


def file_checksums(root: Path) -> dict[str, str]:
    """sha256 of every file of a bundle (relative path → hex digest), the manifest itself excepted."""
    root = Path(root)
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(root).as_posix()] = digest.hexdigest()
    return out


def seal(root: Path) -> None:
    """Writes the checksums of every file into the manifest: the export's last step."""
    manifest = json.loads((Path(root) / MANIFEST).read_text())
    manifest["checksums"] = file_checksums(root)
    (Path(root) / MANIFEST).write_text(json.dumps(manifest, indent=2))


def verify(root: Path) -> None:
    """``BundleError`` naming every file that is missing or differs from the manifest's checksum (a corrupt
    download, a truncated copy, weights altered in place). A bundle exported before checksums is let
    through with a warning."""
    root = Path(root)
    expected = json.loads((root / MANIFEST).read_text()).get("checksums")
    if expected is None:
        log.warning("bundle %s has no checksums (exported before they were added): its files are not verified",
                    root.name)
        return
    found = file_checksums(root)
    bad = sorted(name for name, digest in expected.items() if found.get(name) != digest)
    if bad:
        missing = [n for n in bad if n not in found]
        raise BundleError(f"bundle {root.name}: {len(bad)} file(s) differ from the manifest's checksums "
                          f"({', '.join(bad[:5])}{' …' if len(bad) > 5 else ''})"
                          + (f"; missing: {', '.join(missing[:5])}" if missing else ""))


def find_bundle(root: Path) -> Path:
    """The bundle inside ``root``: itself, or the ``manifest.json`` folder of a downloaded registry version."""
    root = Path(root)
    if (root / "manifest.json").is_file():
        return root
    found = sorted(p.parent for p in root.rglob("manifest.json") if (p.parent / "text.onnx").is_file())
    if not found:
        raise BundleError(f"{root} holds no exported bundle (no manifest.json beside text.onnx); "
                          f"create one with `fashionvlp export`")
    return found[0]


@dataclass
class Bundle:
    path: Path
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    intra_op_threads: int = 0
    int8: bool = False          # the encoders' dynamic-int8 graphs (export --int8) instead of fp32
    verified: bool = False      # its files were just checked against the manifest (``ModelSource.fetch``)

    def __post_init__(self) -> None:
        from transformers import AutoTokenizer

        self.path = find_bundle(self.path)
        missing = [f for f in (MANIFEST, "preprocessing.json", "labels.json", "tokenizer")
                   if not (self.path / f).exists()]
        if missing:
            raise BundleError(f"bundle {self.path} is missing {missing}")
        if not self.verified:
            verify(self.path)
        self.manifest = json.loads((self.path / "manifest.json").read_text())
        self.preprocessing = json.loads((self.path / "preprocessing.json").read_text())
        self.labels = json.loads((self.path / "labels.json").read_text())
        thresholds = self.path / "attribute_thresholds.json"
        self.thresholds = json.loads(thresholds.read_text())["thresholds"] if thresholds.is_file() else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path / "tokenizer"))
        files = {name: spec["file"] for name, spec in self.manifest["graphs"].items()}
        if self.int8:
            files |= {name: f"{name}.int8.onnx" for name in ("image", "text")}
            absent = [f for f in files.values() if not (self.path / f).is_file()]
            if absent:
                raise BundleError(f"bundle {self.path} has no {absent}: export it with `fashionvlp export --int8`")
        self.files = files
        self.sessions = {name: open_session(self.path / file, self.providers, self.intra_op_threads)
                         for name, file in files.items()}
        self.active_provider = self.sessions["text"].get_providers()[0]
        self.fallback_reason = None
        if self.providers and self.providers[0] != self.active_provider:
            self.fallback_reason = (cuda_driver() if self.providers[0] == "CUDAExecutionProvider" else None) \
                or f"{self.providers[0]} failed to start in ONNX Runtime"
        self.image_size = int(self.preprocessing["image_size"])
        self.mean = np.array(self.preprocessing["mean"], dtype=np.float32).reshape(3, 1, 1)
        self.std = np.array(self.preprocessing["std"], dtype=np.float32).reshape(3, 1, 1)
        self.max_length = int(self.preprocessing["max_length"])
        if self.providers and self.providers[0] != self.active_provider:
            # ONNX Runtime falls back to CPU without saying so; say it.
            log.warning("CPU FALLBACK: ONNX Runtime runs this bundle on %s, not the preferred %s (%s); "
                        "expect CPU latency (bundle %s)", self.active_provider, self.providers[0],
                        self.fallback_reason, self.path)
        else:
            log.info("ONNX Runtime provider: %s (bundle %s)", self.active_provider, self.path)

    @property
    def arch(self) -> str:
        return self.manifest.get("arch", "?")

    # --- inputs -----------------------------------------------------------------------------------
    def decode_image(self, data: bytes, field_name: str, max_pixels: int) -> Image.Image:
        """Client bytes → RGB image, or ``InputError`` naming ``field_name``: whatever a decoder raises on
        them is the client's input, never a server error."""
        try:
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise InputError(field_name, f"image is {width}×{height} = {width * height} pixels, over the "
                                                 f"limit of {max_pixels}", 413)
                image = probe.convert("RGB")
        except InputError:
            raise
        except Image.DecompressionBombError as exc:
            # Pillow refuses before our own check can read the size (over twice its MAX_IMAGE_PIXELS).
            raise InputError(field_name, f"image is over the limit of {max_pixels} pixels ({exc})", 413) from exc
        except Exception as exc:  # noqa: BLE001 — a decoder's failure on client bytes is a bad input
            reason = type(exc).__name__ if isinstance(exc, UnidentifiedImageError) else f"{type(exc).__name__}: {exc}"
            raise InputError(field_name, f"not a readable image ({reason})") from exc
        return image

    def pixels(self, image: Image.Image) -> np.ndarray:
        """[3,S,S] float32, the training transform."""
        resized = image.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
        array = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return ((array - self.mean) / self.std).astype(np.float32)

    def file_pixels(self, path: Path, field_name: str) -> np.ndarray:
        """A catalog image (trusted: no pixel limit) as model input."""
        return self.pixels(self.decode_image(Path(path).read_bytes(), field_name, 1 << 40))

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}

    # --- graphs (one batch each) ------------------------------------------------------------------
    def embed_images(self, pixels: list[np.ndarray]) -> np.ndarray:
        return self.sessions["image"].run(["image_embedding"], {"pixels": np.stack(pixels)})[0]

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.sessions["text"].run(["text_embedding"], self.tokenize(texts))[0]

    def _fused(self, graph: str, items: list[tuple[np.ndarray, str]]) -> list[np.ndarray]:
        if graph not in self.sessions:
            raise BundleError(f"bundle {self.path} has no {graph} graph")
        session = self.sessions[graph]
        inputs = {"pixels": np.stack([p for p, _ in items]), **self.tokenize([t for _, t in items])}
        return session.run([o.name for o in session.get_outputs()], inputs)

    def attribute_probabilities(self, items: list[tuple[np.ndarray, str]]) -> list[dict[str, np.ndarray]]:
        """Per item: attribute → probabilities over its values (schema order)."""
        names = list(self.labels["attributes"])
        outputs = self._fused("attributes", items)
        return [{name: outputs[a][i] for a, name in enumerate(names)} for i in range(len(items))]

    def category_logits(self, items: list[tuple[np.ndarray, str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        categories, subcategories = self._fused("categories", items)
        return list(zip(categories, subcategories))

    # --- decisions --------------------------------------------------------------------------------
    def applicable_attributes(self, category: str | None) -> list[str]:
        by_category = self.labels.get("attributes_by_category") or {}
        if category is None or category not in by_category:
            return list(self.labels["attributes"])
        return list(by_category[category])

    def attribute_decisions(self, probabilities: dict[str, np.ndarray], category: str | None) -> list[dict]:
        """Each applicable attribute's top value, its confidence and the saved 90%-precision threshold:
        ``accepted`` when the confidence clears it (no threshold saved: never accepted)."""
        out = []
        for name in self.applicable_attributes(category):
            probs = probabilities[name]
            best = int(np.argmax(probs))
            threshold = float(self.thresholds.get(name, float("inf")))
            confidence = float(probs[best])
            out.append({"attribute": name, "value": self.labels["attributes"][name][best],
                        "confidence": confidence, "threshold": threshold if np.isfinite(threshold) else None,
                        "accepted": bool(confidence >= threshold)})
        return out

    def category_decision(self, logits: tuple[np.ndarray, np.ndarray]) -> dict:
        out = {}
        for key, names, row in (("category", self.labels["categories"], logits[0]),
                                ("subcategory", self.labels["subcategories"], logits[1])):
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            best = int(np.argmax(probs))
            out[key] = {"value": names[best], "probability": float(probs[best])}
        return out
