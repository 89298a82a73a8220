"""Captioning (KG-FLIP's decoder): fine-tuned with LM on product titles; evaluated by greedy decoding
from the image, scored with corpus BLEU-4 (sacrebleu) against the title.

References pass through the same tokenizer round trip as the generated text (lower-casing, accent
and punctuation handling), so the score measures words, not tokenizer normalisation.
"""

from __future__ import annotations

import torch

from fashionvlp.evaluation.embed import product_batches
from fashionvlp.evaluation.metrics import bleu4
from fashionvlp.tasks.base import DownstreamTask, TaskEvaluation, register_task

EXAMPLES = 5


@torch.no_grad()
def generate(model, pixels: torch.Tensor, max_tokens: int) -> list[list[int]]:
    """Greedy decoding from [DEC] until [SEP] or ``max_tokens``; returns token ids without specials."""
    tokenizer = model.tokenizer
    image = model.encode_image(pixels)
    ids = torch.full((pixels.shape[0], 1), tokenizer.cls_token_id, dtype=torch.long)
    done = torch.zeros(pixels.shape[0], dtype=torch.bool)
    for _ in range(max_tokens - 1):
        logits = model.decode(image, ids, torch.ones_like(ids))[:, -1]
        next_ids = logits.argmax(-1).masked_fill(done, tokenizer.pad_token_id)
        ids = torch.cat([ids, next_ids[:, None]], dim=1)
        done |= next_ids == tokenizer.sep_token_id
        if done.all():
            break
    special = set(tokenizer.all_special_ids)
    return [[t for t in row if t not in special] for row in ids[:, 1:].tolist()]


def evaluate(ev: TaskEvaluation) -> dict:
    model, tokenizer = ev.model, ev.model.tokenizer
    model.eval()
    products = ev.products()
    hypotheses, references = [], []
    for chunk, pixels, _ in product_batches(model, ev.catalog, products, ev.image_size, ev.max_length, with_text=False):
        hypotheses += [tokenizer.decode(row) for row in generate(model, pixels, ev.max_length)]
        references += [tokenizer.decode(tokenizer(p.title, truncation=True, max_length=ev.max_length).input_ids,
                                        skip_special_tokens=True) for p in chunk]
    import sacrebleu

    precisions = sacrebleu.corpus_bleu(hypotheses, [references]).precisions
    path = ev.out / "plots" / "captioning_ngram_precision.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("n,precision\n" + "".join(f"{n},{p:.4f}\n" for n, p in enumerate(precisions, 1)))
    return {"products": len(products), "BLEU-4": bleu4(hypotheses, references),
            "ngram_precision": {str(n): p for n, p in enumerate(precisions, 1)},
            "examples": [{"product_id": p.product_id, "generated": h, "title": r}
                         for p, h, r in zip(products[:EXAMPLES], hypotheses, references)],
            "protocol": "greedy decoding from the first view; corpus BLEU-4 (sacrebleu 13a) against the title"}


register_task(DownstreamTask(
    name="captioning", description="title generation with the decoder, BLEU-4",
    objectives={"lm": 1.0}, evaluate=evaluate, headline=lambda m: {"BLEU-4": m["BLEU-4"]}))
