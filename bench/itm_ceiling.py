"""ITM against its prior and its ceiling: how well a pre-trained model's ITM head tells a product's text
from the hard negatives that pre-training gives it, next to an attribute oracle on the same pairs.

    python bench/itm_ceiling.py [--model derived/pretrain/fashionvil/model] [--catalog data] [--batches 100]

Pairs as pre-training makes them (``objectives/itm.py``): batches of 32 random train products (first view);
per image a negative text and per text a negative image, drawn ∝ softmax of the model's ITC logits, never the
same product: 1 positive and 2 negatives per product. On those pairs it prints the cross-entropy and the
accuracy of:
- the prior (always p(match) = 1/3): loss 0.637, accuracy 66.7%;
- the model's saved ITM head (``itm`` or ``kg_itm``);
- the subcategory oracle: p(match) is the share of positives among the pairs of one subcategory, 0 for pairs
  of two (what a model that knew only the subcategory could say);
- the oracle: a pair matches when the image's product and the text's are of the same subcategory and the text
  contradicts none of the image's labelled visible attributes (the schema's surface forms); its p(match) for
  such pairs is the share of positives among them, 0 otherwise (calibrated on the same pairs);
- the ITC cosine of the pair through a logistic regression fitted on the first 70% of the batches and scored
  on the rest: what the unimodal embeddings alone tell apart on these pairs.
And it probes what each unimodal embedding knows of the subcategory (logistic regression on the standardised
global embeddings, one half of the train products → the other): a fused head cannot match what neither side
encodes.

Each with a 95% bootstrap interval over batches. Why: a loss at the prior says nothing by itself; the oracle
says how far below it what the labels and the words show would take a model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.env import quiet_offline
from fashionvlp.evaluation import oracle
from fashionvlp.evaluation.bootstrap import format_interval, interval
from fashionvlp.evaluation.embed import embed_products, product_batches
from fashionvlp.evaluation.outcomes import MeanOutcome
from fashionvlp.models.registry import load_pretrained
from fashionvlp.tasks.xmr import itm_head

quiet_offline()
BATCH = 32


def same_subcategory(products) -> np.ndarray:
    subcategory = np.array([p.subcategory for p in products])
    return subcategory[:, None] == subcategory[None, :]


def consistent_pairs(schema, products) -> np.ndarray:
    """[image product, text product]: same subcategory and no labelled visible attribute contradicted."""
    columns = oracle._Columns(schema)
    labels = columns.labels([p.attributes for p in products])
    mentions = oracle._mention_matrix(columns, [oracle.mentioned(schema, p.text, p.category) for p in products])
    contradicted = columns.per_attribute(labels) @ columns.per_attribute(mentions).T \
        - np.minimum(labels @ mentions.T, columns.per_attribute(labels) @ columns.per_attribute(mentions).T)
    return (contradicted == 0) & same_subcategory(products)


def draw_pairs(image: np.ndarray, text: np.ndarray, scale: float, batches: int, seed: int) -> np.ndarray:
    """[batches, 3·32, 2] (image row, text row): positives, negative texts, negative images."""
    rng = np.random.default_rng(seed)
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    image, text = norm(image), norm(text)
    out = []
    for _ in range(batches):
        rows = rng.choice(len(image), BATCH, replace=False)
        logits = scale * image[rows] @ text[rows].T

        def hard(similarity):
            weights = np.exp(similarity - similarity.max(1, keepdims=True))
            np.fill_diagonal(weights, 0.0)
            weights /= weights.sum(1, keepdims=True)
            return np.array([rng.choice(BATCH, p=w) for w in weights])

        negative_text, negative_image = hard(logits), hard(logits.T)
        out.append(np.concatenate([np.stack([rows, rows], 1), np.stack([rows, rows[negative_text]], 1),
                                   np.stack([rows[negative_image], rows], 1)]))
    return np.stack(out)


@torch.no_grad()
def model_match_probability(model, head, catalog, products, pairs: np.ndarray, image_size: int,
                            max_length: int) -> np.ndarray:
    pixels = torch.cat([p for _, p, _ in product_batches(model, catalog, products, image_size, max_length,
                                                         with_text=False)])
    flat = pairs.reshape(-1, 2)
    out = []
    for start in range(0, len(flat), 96):
        chunk = flat[start:start + 96]
        enc = model.tokenizer([products[t].text for _, t in chunk], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
        pooled = model.fuse(enc.input_ids, enc.attention_mask, model.encode_image(pixels[chunk[:, 0]])).pooled
        out.append(torch.softmax(head(pooled), -1)[:, 1].numpy())
    return np.concatenate(out).reshape(pairs.shape[:2])


def report(label: str, p_match: np.ndarray, labels: np.ndarray) -> None:
    p = np.clip(p_match, 1e-7, 1 - 1e-7)
    loss = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    correct = ((p > 0.5) == labels.astype(bool)) * 100.0
    units = [f"batch-{b}" for b in range(len(p))]
    loss_ci = interval(MeanOutcome.rows(units, loss.mean(1)))
    acc_ci = interval(MeanOutcome.rows(units, correct.mean(1)))
    bounds = loss_ci.as_dict()
    print(f"  {label:<34} loss {loss_ci.value:.3f} [{bounds['ci_low']:.3f}, {bounds['ci_high']:.3f}]   "
          f"accuracy {format_interval(acc_ci.value, acc_ci.as_dict())}")


def itc_cosine_probability(image: np.ndarray, text: np.ndarray, pairs: np.ndarray, labels: np.ndarray,
                           fit_share: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """p(match) of the held-out batches from a logistic regression on the pair's ITC cosine, and their labels."""
    from sklearn.linear_model import LogisticRegression

    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    cosine = (norm(image)[pairs[..., 0]] * norm(text)[pairs[..., 1]]).sum(-1)
    cut = int(len(pairs) * fit_share)
    fitted = LogisticRegression().fit(cosine[:cut].reshape(-1, 1), labels[:cut].reshape(-1))
    return fitted.predict_proba(cosine[cut:].reshape(-1, 1))[:, 1].reshape(cosine[cut:].shape), labels[cut:]


def subcategory_probe(features: np.ndarray, products) -> float:
    """Held-out accuracy (%) of a logistic regression from the embedding to the subcategory, half → half."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    subcategory = np.array([p.subcategory for p in products])
    half = len(products) // 2
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features[:half], subcategory[:half])
    return 100.0 * float((probe.predict(features[half:]) == subcategory[half:]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("derived/pretrain/fashionvil/model"))
    ap.add_argument("--catalog", type=Path, default=Path("data"))
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    catalog = read_catalog(args.catalog)
    model = load_pretrained(args.model).eval()
    cfg = model.model_config
    products = [p for p in catalog.iter_products() if p.split == "train"]
    emb = embed_products(model, catalog, products, cfg.image.image_size, cfg.text.max_length)
    pairs = draw_pairs(emb.image, emb.text, float(model.contrastive_scale.detach() ** 2), args.batches, args.seed)
    labels = np.zeros(pairs.shape[:2])
    labels[:, :BATCH] = 1
    consistent = consistent_pairs(catalog.schema, products)[pairs[..., 0], pairs[..., 1]]
    same = same_subcategory(products)[pairs[..., 0], pairs[..., 1]]
    print(f"ITM on {args.model}: {args.batches} batches of {BATCH} train products ({args.catalog}), 1 positive and "
          f"2 hard negatives (∝ softmax of the model's ITC logits) each; 95% bootstrap over batches")
    print(f"  negatives of the same subcategory: {100 * same[:, BATCH:].mean():.1f}%; "
          f"the oracle cannot tell from a positive: {100 * consistent[:, BATCH:].mean():.1f}%; "
          f"positives it rejects (a text naming an unlabelled value): {100 * (1 - consistent[:, :BATCH].mean()):.1f}%")
    report("prior (p = 1/3)", np.full(labels.shape, 1 / 3), labels)
    report("model's ITM head", model_match_probability(model, itm_head(args.model, model.hidden_size), catalog,
                                                        products, pairs, cfg.image.image_size, cfg.text.max_length),
           labels)
    report("subcategory oracle", np.where(same, labels[same].mean(), 0.0), labels)
    report("oracle (labels and surface forms)", np.where(consistent, labels[consistent].mean(), 0.0), labels)
    report("ITC cosine, logistic (held-out 30%)", *itc_cosine_probability(emb.image, emb.text, pairs, labels))
    majority = 100.0 * max(np.unique([p.subcategory for p in products], return_counts=True)[1]) / len(products)
    print(f"  subcategory from the global embedding (linear probe, half of the train products → the other half; "
          f"majority {majority:.1f}%): image {subcategory_probe(emb.image, products):.1f}%, "
          f"text {subcategory_probe(emb.text, products):.1f}%")


if __name__ == "__main__":
    main()
