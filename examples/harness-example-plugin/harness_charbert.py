"""A third-party model for cmi-harness: ``char-bert``, a small random BERT reading characters.

It shows the model contract (see harness.models): ``ModelSpec.load(num_labels)`` returns
``(tokenizer, model for sequence classification)``, is called inside each trial after the trial's
seed is set (so nothing is built at import), and must work offline; ``defaults`` are the trial
settings the model wants unless the user overrides them, ``layers`` its depth (what ``:half``
halves). A Hub model needs one line instead: ``pretrained("org/name", "description", "short-name")``.
"""

import string

from harness import ModelSpec, hookimpl, pretrained

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARACTERS = list(string.ascii_lowercase + string.digits + string.punctuation) + ["▁"]


def _tokenizer():
    """Lower-cased characters, spaces as ``▁``: any English text tokenizes, nothing is learned."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + CHARACTERS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=512,
    )  # fmt: skip


def _load(num_labels: int):
    from transformers import BertConfig, BertForSequenceClassification

    tok = _tokenizer()
    config = BertConfig(
        vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
        max_position_embeddings=512, num_labels=num_labels, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    return tok, BertForSequenceClassification(config)


@hookimpl
def harness_models():
    return [
        ModelSpec(
            "char-bert",
            "2-layer random BERT over characters (an example model plugin)",
            _load,
            defaults={"lr": 2e-3},
            layers=2,
        ),  # fmt: skip
        pretrained(
            "distilroberta-base", "DistilRoBERTa-base from the Hub (an example of one line)", "distilroberta", layers=6
        ),  # fmt: skip
    ]
