"""The last layer computed at [CLS] only (harness.last_layer) changes the work, not the model: with
dropout off, the same logits and the same gradient for every parameter as the whole layer, on padded
batches, for BERT, RoBERTa and DistilBERT, eager and SDPA attention, under LoRA; its feed-forward block sees one
position; models whose head reads another position are left alone."""

import copy

import pytest
import torch

from harness import last_layer


def _bert(attention: str):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation=attention)  # fmt: skip
    return BertForSequenceClassification(config)


def _roberta(attention: str):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=70, num_labels=2, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, pad_token_id=1, attn_implementation=attention)  # fmt: skip
    return RobertaForSequenceClassification(config)


def _distilbert(attention: str):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64,
                              num_labels=2, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0,
                              attn_implementation=attention)  # fmt: skip
    return DistilBertForSequenceClassification(config)


def _batch(num_labels: int):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 50, (6, 11), generator=g)
    mask = torch.ones_like(ids)
    for row, length in enumerate([11, 4, 9, 2, 11, 7]):  # padded rows, as a length-grouped batch has
        mask[row, length:] = 0
        ids[row, length:] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, num_labels, (6,), generator=g)}


def _logits_and_grads(model, batch):
    model.train()
    out = model(**batch)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("build", [_bert, _roberta, _distilbert])
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_same_logits_and_gradients_as_the_whole_layer(build, attention):
    torch.manual_seed(0)
    whole = build(attention)
    trimmed = copy.deepcopy(whole)
    assert last_layer.at_first_token(trimmed)
    batch = _batch(whole.config.num_labels)
    logits, grads = _logits_and_grads(whole, batch)
    trimmed_logits, trimmed_grads = _logits_and_grads(trimmed, batch)
    torch.testing.assert_close(trimmed_logits, logits, rtol=1e-5, atol=1e-6)
    assert trimmed_grads.keys() == grads.keys() and len(grads) == len(list(whole.parameters()))
    for name, grad in grads.items():
        torch.testing.assert_close(trimmed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert trimmed.state_dict().keys() == whole.state_dict().keys()


def test_the_last_feed_forward_block_sees_one_position():
    model = _bert("sdpa")
    last_layer.at_first_token(model)
    widths = {}
    for i, layer in enumerate(model.bert.encoder.layer):
        layer.intermediate.dense.register_forward_hook(lambda m, args, out, i=i: widths.__setitem__(i, args[0].shape))
    model(**_batch(3))
    assert widths == {0: (6, 11, 32), 1: (6, 11, 32), 2: (6, 1, 32)}


def test_under_lora_the_base_model_is_trimmed_and_unchanged_in_its_results():
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(0)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["query", "value"])
    whole = get_peft_model(_bert("sdpa"), config)
    trimmed = copy.deepcopy(whole)
    assert last_layer.at_first_token(trimmed)
    batch = _batch(3)
    logits, grads = _logits_and_grads(whole, batch)
    trimmed_logits, trimmed_grads = _logits_and_grads(trimmed, batch)
    torch.testing.assert_close(trimmed_logits, logits, rtol=1e-5, atol=1e-6)
    assert any("lora" in name for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(trimmed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_models_reading_another_position_are_left_alone():
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForSequenceClassification

    llama = LlamaForSequenceClassification(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=2, num_attention_heads=4, pad_token_id=0))  # fmt: skip
    bare = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64))  # fmt: skip
    assert not last_layer.at_first_token(llama)  # pools its last non-pad token
    assert not last_layer.at_first_token(bare)  # no classifier: every position is an output
    assert all("forward" not in vars(m) for m in [*llama.modules(), *bare.modules()])
