"""Training only the word-embedding rows the split uses (harness.embedding_rows) is AdamW on the whole
table: lookups and weight decay worked by hand, then a trial trained with it ends with the weights
and losses of one trained without it, weight decay on; it stands aside where it would not be exact."""

import pytest
import torch

from harness import embedding_rows
from harness.embedding_rows import UsedRows


def test_lookups_decay_and_restore_worked_by_hand():
    table = torch.nn.Embedding(5, 2, padding_idx=0)
    with torch.no_grad():
        table.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]))
    used = embedding_rows.used_ids([[1, 3, 0], [3, 3]], table)
    assert used.tolist() == [1, 3]  # the padding row is never trained
    rows = UsedRows(table, used)
    assert rows.rows.shape == (2, 2)
    rows.after_step(lr=0.1, weight_decay=0.5)  # each unused row: p (1 - 0.1 * 0.5) = 0.95 p
    rows.after_step(lr=0.2, weight_decay=0.5)  # then 0.9 p: 0.855 p in all
    with torch.no_grad():
        rows.rows += 1.0  # what the optimizer did to the used rows
    out = rows(torch.tensor([[1, 2], [4, 3]]))
    torch.testing.assert_close(out, torch.tensor([[[2.0, 3.0], [2.565, 3.42]], [[5.985, 6.84], [6.0, 7.0]]]))
    restored = rows.restore()
    assert restored is table
    expected = torch.tensor([[0.0, 0.0], [2.0, 3.0], [2.565, 3.42], [6.0, 7.0], [5.985, 6.84]])
    torch.testing.assert_close(table.weight.detach(), expected)


def test_gradients_reach_the_used_rows_only_as_the_whole_table_would_give_them():
    torch.manual_seed(0)
    table = torch.nn.Embedding(6, 3)
    ids = torch.tensor([[1, 4, 4], [2, 1, 5]])
    target = torch.randn(2, 3, 3)
    ((table(ids) - target) ** 2).sum().backward()
    rows = UsedRows(torch.nn.Embedding.from_pretrained(table.weight.detach().clone(), freeze=False),
                    torch.tensor([1, 2, 4, 5]))  # fmt: skip
    ((rows(ids) - target) ** 2).sum().backward()
    assert torch.equal(rows.rows.grad, table.weight.grad[[1, 2, 4, 5]])
    assert table.weight.grad[[0, 3]].abs().sum() == 0


def _trained(loaded, monkeypatch, used_rows: bool):
    """The tiny model after 2 epochs on 256 smoke sentiment examples, weight decay 0.1 and lr 1e-3 so
    that decay moves the unused rows; returns the model, the FitResult, the types of input embedding seen
    in training, the training split's input ids and the table before training."""
    from harness.batching import Columns
    from harness.config import TrialConfig
    from harness.data import tokenize
    from harness.models import resolve
    from harness.trainer import fit
    from harness.trial import set_seed

    if not used_rows:
        monkeypatch.setattr(embedding_rows, "train_used_rows", lambda *args: None)
    suite = loaded.suites.get("smoke")
    task = suite.task("sentiment")
    set_seed(1)
    tok, model = resolve("tiny", loaded.models).load(task.num_labels)
    start = model.get_input_embeddings().weight.detach().clone()
    tokenized = tokenize(task, suite.load(task, None), tok, 64, 256, 128)
    train, dev = (Columns(tokenized[s], tok.pad_token_id) for s in ("train", "validation"))
    cfg = TrialConfig(suite="smoke", task="sentiment", objective="ce", model="tiny", seed=1, epochs=2,
                      batch_size=16, max_train_samples=256, weight_decay=0.1)  # fmt: skip
    seen = []
    objective = loaded.objectives.get("ce")(task.num_labels)
    result = fit(cfg, 1e-3, model, objective, task, train, {"validation": dev},
                 lambda e: seen.append(type(model.get_input_embeddings()).__name__))  # fmt: skip
    return model, result, set(seen), train.fields["input_ids"], start


def test_a_trial_ends_with_the_weights_and_losses_of_the_whole_table(loaded, monkeypatch):
    whole, whole_result, whole_seen, _, _ = _trained(loaded, monkeypatch, used_rows=False)
    monkeypatch.undo()
    model, result, seen, input_ids, start = _trained(loaded, monkeypatch, used_rows=True)
    assert whole_seen == {"Embedding"} and seen == {"UsedRows"}  # it applied: the split uses few of the rows
    assert type(model.get_input_embeddings()) is torch.nn.Embedding  # put back, trainable, under its own name
    assert model.get_input_embeddings().weight.requires_grad
    assert model.state_dict().keys() == whole.state_dict().keys()
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-4, atol=1e-6, msg=name)
    table = model.get_input_embeddings()
    unused = torch.ones(len(start), dtype=torch.bool)
    unused[embedding_rows.used_ids(input_ids, table)] = False
    unused[table.padding_idx] = False
    assert 0 < unused.sum() < len(start)
    assert ((table.weight[unused] - start[unused]).abs().sum(-1) > 0).all()  # decay moved the rows no example uses
    assert [e["train_loss"] for e in result.epochs] == pytest.approx([e["train_loss"] for e in whole_result.epochs],
                                                                    abs=1e-5)  # fmt: skip


def _bert(**config):
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32, **config))  # fmt: skip


def test_it_stands_aside_where_it_would_not_be_exact_or_would_cost_memory():
    few = [[1, 2, 3]]
    assert isinstance(embedding_rows.train_used_rows(_bert(), few, plain_adamw=True), UsedRows)
    assert embedding_rows.train_used_rows(_bert(), few, plain_adamw=False) is None  # ZeRO's or fp16's copies
    too_many = [list(range(32))]  # 31 rows (0 pads) > 3/4 of 40
    assert embedding_rows.train_used_rows(_bert(), too_many, plain_adamw=True) is None
    frozen = _bert()
    frozen.get_input_embeddings().weight.requires_grad_(False)  # LoRA, or a frozen table
    assert embedding_rows.train_used_rows(frozen, few, plain_adamw=True) is None
    tied = _bert()
    tied.classifier.weight = tied.get_input_embeddings().weight  # shared with another layer
    assert embedding_rows.train_used_rows(tied, few, plain_adamw=True) is None
