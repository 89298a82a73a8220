"""KG-FLIP's BLIP-style model (SPEC §3).

- text mode: BERT with bidirectional self-attention (the unimodal text encoder);
- image-grounded encoder: each block runs self-attention → cross-attention to image tokens → FFN, with
  ``[ENC]`` as the first token, whose output feeds ITM and classification;
- image-grounded decoder: causal self-attention, started by ``[DEC]``; it shares every weight with the
  encoder (embeddings, cross-attention, FFN) except the self-attention layers, as in BLIP.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import BertModel, PreTrainedTokenizerBase

from fashionvlp.config import ModelConfig
from fashionvlp.models.bert_blocks import (CrossAttention, causal_mask, embed_text, feed_forward, key_mask,
                                           run_encoder, self_attention)
from fashionvlp.models.image_encoders import PatchEncoder
from fashionvlp.models.interface import (FusedFeatures, ImageFeatures, PredictionHead, TextFeatures,
                                         VisionLanguageModel)
from fashionvlp.models.registry import register_architecture
from fashionvlp.models.text_encoders import add_special_tokens

ENC, DEC = "[ENC]", "[DEC]"


@register_architecture("kgflip")
class KGFLIP(VisionLanguageModel):
    arch = "kgflip"
    capabilities = frozenset({"decode"})

    def __init__(self, cfg: ModelConfig, image_encoder: PatchEncoder, bert: BertModel,
                 tokenizer: PreTrainedTokenizerBase):
        hidden = bert.config.hidden_size
        super().__init__(hidden, cfg.contrastive_scale_init)
        ids = add_special_tokens(tokenizer, bert, [ENC, DEC])
        self.enc_token_id, self.dec_token_id = ids[ENC], ids[DEC]
        self.tokenizer = tokenizer
        self.image_encoder = image_encoder
        self.image_proj = nn.Linear(image_encoder.dim, hidden)
        self.image_norm = nn.LayerNorm(hidden, eps=bert.config.layer_norm_eps)
        self.text = bert
        heads, p = bert.config.num_attention_heads, bert.config.attention_probs_dropout_prob
        self.heads = heads
        self.cross_attention = nn.ModuleList(CrossAttention(hidden, hidden, heads, p, bert.config.layer_norm_eps)
                                             for _ in bert.encoder.layer)
        # BLIP initialises the decoder from the same BERT; only these self-attention layers are its own.
        self.decoder_self_attention = nn.ModuleList(copy.deepcopy(layer.attention) for layer in bert.encoder.layer)
        self.lm_head = PredictionHead(self.text.embeddings.word_embeddings, bert.config.layer_norm_eps)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.text.embeddings.word_embeddings

    def encode_image(self, pixels: torch.Tensor, image_keys: list[int] | None = None) -> ImageFeatures:
        patches = self.image_norm(self.image_proj(self.image_encoder(pixels, image_keys)))
        return ImageFeatures(global_=patches.mean(1), patches=patches)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        tokens = run_encoder(self.text, embed_text(self.text, input_ids), attention_mask)
        return TextFeatures(global_=tokens[:, 0], tokens=tokens)

    def _grounded(self, input_ids: torch.Tensor, first_token: int, self_attentions, mask: torch.Tensor,
                  image: ImageFeatures) -> torch.Tensor:
        input_ids = input_ids.clone()
        input_ids[:, 0] = first_token
        hidden = embed_text(self.text, input_ids)
        for layer, attention, cross in zip(self.text.encoder.layer, self_attentions, self.cross_attention):
            hidden = self_attention(attention, self.heads, hidden, mask)
            hidden = cross(hidden, image.patches, None)
            hidden = feed_forward(layer, hidden)
        return hidden

    def fuse(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image: ImageFeatures) -> FusedFeatures:
        attentions = [layer.attention for layer in self.text.encoder.layer]
        hidden = self._grounded(input_ids, self.enc_token_id, attentions, key_mask(attention_mask), image)
        return FusedFeatures(pooled=hidden[:, 0], embedding=hidden[:, 0], text_tokens=hidden, image_tokens=None)

    def decode(self, image: ImageFeatures, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits [B, L, V]; position t predicts token t+1."""
        hidden = self._grounded(input_ids, self.dec_token_id, self.decoder_self_attention,
                                causal_mask(attention_mask), image)
        return self.lm_head(hidden)

    # Used by tests to show the encoder is bidirectional and the decoder causal.
    def text_mode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return run_encoder(self.text, embed_text(self.text, input_ids), attention_mask)
