"""Reusable blocks for every model family (audiocraft's `modules/`): import from here.

attention (MultiHeadAttention, causal_mask) · rope (RotaryEmbedding) · transformer (Block,
CrossBlock, Transformer, MLP, init_weights) · embeddings (CompoundEmbedding, CompoundHeads,
Embedding) ·
sampling (sample, filter_logits) · losses (compound_cross_entropy) · config (ModelConfig).
"""

from musicdata.models.modules.attention import MultiHeadAttention, causal_mask
from musicdata.models.modules.config import ModelConfig
from musicdata.models.modules.embeddings import CompoundEmbedding, CompoundHeads, Embedding
from musicdata.models.modules.losses import compound_cross_entropy
from musicdata.models.modules.rope import RotaryEmbedding
from musicdata.models.modules.sampling import filter_logits, sample
from musicdata.models.modules.transformer import MLP, Block, CrossBlock, Transformer, init_weights

__all__ = [
    "MLP",
    "Block",
    "CompoundEmbedding",
    "CompoundHeads",
    "CrossBlock",
    "Embedding",
    "ModelConfig",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "Transformer",
    "causal_mask",
    "compound_cross_entropy",
    "filter_logits",
    "init_weights",
    "sample",
]
