"""harness.cpu_dropout keeps torch's dropout law and changes only the draws: keep rates within
binomial error of 1 - p (on each byte of a 64-bit word), no correlation between neighbours, kept
values scaled by exactly 1 / (1 - p) and the gradient by the same mask; seeded by torch's generator,
so activation checkpointing's replay gives the same gradients; attention equals softmax(q k^T / sqrt(d)
+ mask) v with the drawn mask; evaluation and restore() leave a model bit for bit as it was."""

import math

import pytest
import torch

from harness import cpu_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.75 + 0.5 / 256])
def test_keep_rate_is_one_minus_p_on_every_byte_of_each_word(p):
    # t = round(p 2^32): at p = 0.1 a draw whose top byte ties with t's is kept with probability 0.4
    # (t's low 24 bits are 0.6 of 2^24), so keeping (dropping) every tie moves the rate by 0.6 / 256
    # (0.4 / 256), 11 (7) sigma on 2 M draws; at 0.75 + 0.5/256 half the ties are kept; at 0.5 all
    # (t's low bits are 0)
    torch.manual_seed(0)
    keep = cpu_dropout.keep_mask((2_000_000,), p).double()
    expected = 1 - round(p * 2**32) / 2**32
    assert abs(keep.mean().item() - expected) < 5 * math.sqrt(p * (1 - p) / keep.numel())
    for byte in range(8):  # the eight bytes of every SFC64 word
        part = keep[byte::8]
        assert abs(part.mean().item() - expected) < 5 * math.sqrt(p * (1 - p) / part.numel())
    centred = keep - keep.mean()
    lag1 = (centred[:-1] * centred[1:]).mean() / centred.var()
    assert abs(lag1.item()) < 5 / math.sqrt(keep.numel())


def test_masks_follow_torchs_seed_and_differ_between_calls():
    torch.manual_seed(3)
    a, b = cpu_dropout.keep_mask((64, 64), 0.1), cpu_dropout.keep_mask((64, 64), 0.1)
    torch.manual_seed(3)
    assert torch.equal(cpu_dropout.keep_mask((64, 64), 0.1), a)
    assert not torch.equal(a, b)


def test_kept_values_are_scaled_by_one_over_one_minus_p_and_the_gradient_by_the_same_mask():
    x = torch.linspace(1, 2, 4000).requires_grad_()
    weights = torch.arange(4000.0)
    y = cpu_dropout.drop(x, 0.2)
    (y * weights).sum().backward()
    kept = y != 0
    assert 0.75 < kept.double().mean() < 0.85
    torch.testing.assert_close(y[kept], x.detach()[kept] / 0.8, rtol=1e-6, atol=0)
    torch.testing.assert_close(x.grad, kept * weights / 0.8, rtol=1e-6, atol=0)  # d(w.y)/dx = w keep / (1-p)


def test_zero_one_and_evaluation():
    x = torch.randn(100)
    assert cpu_dropout.drop(x, 0.0) is x
    assert cpu_dropout.drop(x, 0.5, training=False) is x
    assert torch.equal(cpu_dropout.drop(x, 1.0), torch.zeros(100))


@pytest.mark.parametrize("boolean", [True, False])
def test_attention_is_softmax_of_masked_scores_with_the_drawn_mask(boolean):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    attend = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    attend[1, ..., 3:] = False  # the second row's last two keys are padding
    mask = attend if boolean else torch.zeros(attend.shape, dtype=torch.float64).masked_fill(~attend, -1e9)
    module = torch.nn.Module()
    torch.manual_seed(5)
    out, _ = cpu_dropout.attention(module, q, k, v, mask, dropout=0.25, scaling=0.5)
    torch.manual_seed(5)
    keep = cpu_dropout.keep_mask((2, 3, 5, 5), 0.25)
    scores = (q @ k.transpose(-1, -2) * 0.5).masked_fill(~attend, float("-inf"))
    expected = (scores.softmax(-1) * keep / 0.75) @ v
    torch.testing.assert_close(out, expected.transpose(1, 2))
    assert out[1, :, :, :].abs().sum() > 0
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    torch.testing.assert_close(grads, torch.autograd.grad(expected.sum(), (q, k, v)))


@pytest.mark.parametrize("n", [1, 5, 15, 16, 20])
def test_softmax_padded_to_the_vector_width_is_torchs(n):
    x = torch.randn(2, 3, 4, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    x[0, 0, 0] = torch.finfo(torch.float64).min  # a row with every key masked: uniform over its n keys
    x.requires_grad_()
    ours, torchs = cpu_dropout.softmax(x), torch.softmax(x, -1)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, torchs)
    torch.testing.assert_close(ours[0, 0, 0], torch.full((n,), 1 / n, dtype=torch.float64))
    g = torch.randn(x.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, x, g), torch.autograd.grad(torchs, x, g))


def test_attention_without_dropout_is_sdpa_itself():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, ..., 4] = False
    module = torch.nn.Module()
    module.is_causal = False
    ours, _ = cpu_dropout.attention(module, q, k, v, mask, dropout=0.0, scaling=0.5)
    assert torch.equal(ours, sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=0.5)[0])


def _bert(**kw):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        attn_implementation="sdpa", **kw)  # fmt: skip
    return BertForSequenceClassification(config)


def _batch():
    ids = torch.randint(3, 50, (4, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    mask[3, 2:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def _train_logits(model, seed=7):
    model.train()
    torch.manual_seed(seed)
    return model(**_batch()).logits


def test_on_cpu_swaps_every_dropout_and_attention_and_restore_puts_them_back():
    model = _bert()
    before_train, before_eval = _train_logits(model), model.eval()(**_batch()).logits
    installed = cpu_dropout.on_cpu(model)
    assert installed is not None
    assert model.config._attn_implementation == cpu_dropout.ATTENTION
    assert len(installed.modules) == 2 * 3 + 2  # each layer's three (attention's holds only p), embeddings', head's
    drawn = []
    real = cpu_dropout.keep_mask
    cpu_dropout.keep_mask = lambda shape, p: drawn.append(tuple(shape)) or real(shape, p)
    try:
        ours = _train_logits(model)
    finally:
        cpu_dropout.keep_mask = real
    assert (4, 4, 9, 9) in drawn and (4, 9, 32) in drawn  # attention maps and hidden states
    assert len(drawn) == 2 + 2 * 2 + 2  # each layer's attention map and two hidden dropouts, embeddings, head
    assert not torch.equal(ours, before_train)
    assert torch.equal(model.eval()(**_batch()).logits, before_eval)  # evaluation: no dropout, SDPA as before
    installed.restore()
    assert model.config._attn_implementation == "sdpa"
    assert torch.equal(_train_logits(model), before_train)  # torch's dropout again, the same draws


def test_activation_checkpointing_replays_the_same_masks():
    def gradients(checkpointing: bool):
        model = _bert()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        cpu_dropout.on_cpu(model)
        _train_logits(model, seed=11).sum().backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    plain, replayed = gradients(False), gradients(True)
    assert plain.keys() == replayed.keys()
    for name in plain:
        torch.testing.assert_close(replayed[name], plain[name], rtol=1e-5, atol=1e-7)


def test_models_without_dropout_or_off_the_cpu_are_left_alone():
    model = _bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    assert cpu_dropout.on_cpu(model) is None
    assert model.config._attn_implementation == "sdpa"
    model = _bert(attention_probs_dropout_prob=0.0)  # hidden dropouts only: SDPA stays
    installed = cpu_dropout.on_cpu(model)
    assert installed is not None and installed.config is None
    assert model.config._attn_implementation == "sdpa"
    installed.restore()
    meta = _bert().to("meta")
    assert cpu_dropout.on_cpu(meta) is None
