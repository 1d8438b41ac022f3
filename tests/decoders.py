"""Tiny random decoder classifiers saved as Hugging Face model folders, as a user's checkpoint would be:
Llama-, Qwen2- and GPT-2-shaped, with a byte-level BPE tokenizer trained here on the smoke suite's
text. The Llama and GPT-2 ones ship without a pad token, as their real checkpoints do."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def corpus() -> list[str]:
    from harness import plugins

    smoke = plugins.load(()).suites.get("smoke")
    out = []
    for task in smoke.tasks:
        train = smoke.load(task, None).splits["train"]
        out += list(train["text_a"]) + [t for t in (train["text_b"] if task.pair else []) if t]
    return out


def tokenizer(pad: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>" if pad else None
    )


def build(kind: str, root: Path) -> Path:
    """``root/kind``: a saved ``kind`` (llama, qwen2, gpt2) sequence classifier, 4 layers, hidden 32."""
    import torch
    import transformers as tf

    pad = kind == "qwen2"
    tok = tokenizer(pad)
    common = {
        "vocab_size": len(tok),
        "num_labels": 2,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    if pad:
        common["pad_token_id"] = tok.pad_token_id
    if kind == "gpt2":
        config = tf.GPT2Config(n_embd=32, n_layer=4, n_head=4, n_positions=128, **common)
        cls = tf.GPT2ForSequenceClassification
    else:
        shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "max_position_embeddings": 128}  # fmt: skip
        if kind == "qwen2":
            config = tf.Qwen2Config(**shape, use_sliding_window=True, sliding_window=16, max_window_layers=2, **common)
            cls = tf.Qwen2ForSequenceClassification
        else:
            config = tf.LlamaConfig(**shape, **common)
            cls = tf.LlamaForSequenceClassification
    torch.manual_seed(0)
    model = cls(config)
    out = root / kind
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
