"""Token-id perturbations for training: special tokens, padding, length, severity, kinds."""

from __future__ import annotations

import pytest
import torch

from robust_mmr_pipeline.perturb import TOKEN_FRACTIONS, TOKEN_KINDS, perturb_token_ids

VOCAB = 1000
PAD, CLS, SEP, UNK, MASK = 0, 1, 2, 3, 4
SPECIAL_IDS = (PAD, CLS, SEP, UNK, MASK)


def _batch(batch: int = 32, length: int = 48, seed: int = 0) -> dict[str, torch.Tensor]:
    """[CLS] tokens [SEP] [PAD]... with a random length per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, VOCAB, (batch, length), generator=g)
    lengths = torch.randint(length // 3, length, (batch,), generator=g)
    positions = torch.arange(length)[None]
    attention = (positions < lengths[:, None]).long()
    ids = torch.where(attention.bool(), ids, torch.full_like(ids, PAD))
    ids[:, 0] = CLS
    ids[torch.arange(batch), lengths - 1] = SEP
    special = ((ids == CLS) | (ids == SEP) | (ids == PAD)).long()
    return {"input_ids": ids, "attention_mask": attention, "special_tokens_mask": special}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kinds", [("replace",), ("dropout",), ("swap",), TOKEN_KINDS])
def test_special_tokens_and_padding_untouched(kinds: tuple[str, ...]) -> None:
    batch = _batch()
    ids, special = batch["input_ids"], batch["special_tokens_mask"]
    out, changed = perturb_token_ids(
        ids, 5, special, VOCAB, _gen(), kinds=kinds, dropout_token_id=UNK
    )
    assert out.shape == ids.shape and out.dtype == torch.long and out.device == ids.device
    assert changed.dtype == torch.bool and changed.shape == ids.shape
    assert torch.equal(out[special.bool()], ids[special.bool()])
    assert not changed[special.bool()].any()
    assert torch.equal(changed, out != ids)
    assert changed.any()


def test_padding_untouched_via_attention_mask() -> None:
    """Padding that the special-tokens mask does not flag is still left alone."""
    batch = _batch()
    ids, attention = batch["input_ids"], batch["attention_mask"]
    special = ((ids == CLS) | (ids == SEP)).long()  # padding not flagged
    out, changed = perturb_token_ids(
        ids,
        5,
        special,
        VOCAB,
        _gen(),
        kinds=TOKEN_KINDS,
        attention_mask=attention,
        dropout_token_id=MASK,
    )
    assert not changed[attention == 0].any()
    assert torch.equal(out[attention == 0], ids[attention == 0])


def test_changed_fraction_grows_with_severity_and_is_nested() -> None:
    batch = _batch(batch=64, length=64)
    ids, special = batch["input_ids"], batch["special_tokens_mask"]
    ordinary = special == 0
    fractions, previous = [], torch.zeros_like(ids, dtype=torch.bool)
    for severity in range(1, 6):
        _, changed = perturb_token_ids(
            ids,
            severity,
            special,
            VOCAB,
            _gen(4),
            kinds=("replace", "dropout"),
            dropout_token_id=UNK,
        )
        fraction = float(changed[ordinary].float().mean())
        assert abs(fraction - TOKEN_FRACTIONS[severity - 1]) < 0.03, (severity, fraction)
        assert not (previous & ~changed).any()  # positions changed before stay changed
        fractions.append(fraction)
        previous = changed
    assert fractions == sorted(fractions) and fractions[0] < fractions[-1]


def test_deterministic_with_generator_and_global_rng() -> None:
    batch = _batch()
    args = (batch["input_ids"], 3, batch["special_tokens_mask"], VOCAB)
    a = perturb_token_ids(*args, _gen(9))
    b = perturb_token_ids(*args, _gen(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = perturb_token_ids(*args, _gen(10))
    assert not torch.equal(a[0], c[0])
    torch.manual_seed(3)
    d = perturb_token_ids(*args)
    torch.manual_seed(3)
    e = perturb_token_ids(*args)
    assert torch.equal(d[0], e[0])


def test_mixed_severities_per_row() -> None:
    batch = _batch(batch=6)
    ids, special = batch["input_ids"], batch["special_tokens_mask"]
    severity = torch.tensor([0, 1, 2, 3, 4, 5])
    mixed, changed = perturb_token_ids(ids, severity, special, VOCAB, _gen(2))
    assert not changed[0].any() and torch.equal(mixed[0], ids[0])
    for row, level in enumerate(severity.tolist()):
        uniform, _ = perturb_token_ids(ids, level, special, VOCAB, _gen(2))
        assert torch.equal(mixed[row], uniform[row])


def test_replace_never_draws_the_original_or_excluded_ids() -> None:
    batch = _batch(batch=64, length=64)
    ids, special = batch["input_ids"], batch["special_tokens_mask"]
    out, changed = perturb_token_ids(
        ids, 5, special, VOCAB, _gen(1), kinds=("replace",), excluded_ids=SPECIAL_IDS
    )
    chosen_fraction = float(changed[special == 0].float().mean())
    assert abs(chosen_fraction - TOKEN_FRACTIONS[-1]) < 0.03  # every chosen id changed
    new_ids = out[changed]
    assert not torch.isin(new_ids, torch.tensor(SPECIAL_IDS)).any()
    assert int(new_ids.min()) >= 0 and int(new_ids.max()) < VOCAB


def test_dropout_writes_the_given_id() -> None:
    batch = _batch()
    out, changed = perturb_token_ids(
        batch["input_ids"],
        4,
        batch["special_tokens_mask"],
        VOCAB,
        _gen(),
        kinds=("dropout",),
        dropout_token_id=MASK,
    )
    assert changed.any()
    assert (out[changed] == MASK).all()


def test_swap_exchanges_neighbours() -> None:
    """Swap-only changes are mostly exchanged neighbour pairs (the rest fell back to replace)."""
    batch = _batch()
    ids, special = batch["input_ids"], batch["special_tokens_mask"]
    out, changed = perturb_token_ids(ids, 5, special, VOCAB, _gen(6), kinds=("swap",))
    nxt = torch.zeros_like(changed)
    nxt[:, :-1] = (out[:, :-1] == ids[:, 1:]) & (out[:, 1:] == ids[:, :-1])
    pair = nxt.clone()
    pair[:, 1:] |= nxt[:, :-1]  # both members of a swapped pair
    explained = changed & pair
    assert int(changed.sum()) > 0
    assert int(explained.sum()) > 0.5 * int(changed.sum())
    assert int(explained.sum()) % 2 == 0 or (ids[:, 1:] == ids[:, :-1]).any()


def test_invalid_arguments() -> None:
    batch = _batch(batch=2)
    ids, special = batch["input_ids"], batch["special_tokens_mask"]
    with pytest.raises(ValueError, match="dropout_token_id"):
        perturb_token_ids(ids, 1, special, VOCAB, kinds=("dropout",))
    with pytest.raises(ValueError, match="kinds"):
        perturb_token_ids(ids, 1, special, VOCAB, kinds=("shuffle",))
    with pytest.raises(ValueError, match="long"):
        perturb_token_ids(ids.int(), 1, special, VOCAB)
    with pytest.raises(ValueError, match="shape"):
        perturb_token_ids(ids, 1, special[:, :3], VOCAB)
    with pytest.raises(ValueError, match=r"0\.\.5"):
        perturb_token_ids(ids, 7, special, VOCAB)


def test_no_special_mask_and_single_token_rows() -> None:
    ids = torch.randint(10, VOCAB, (3, 1))
    out, changed = perturb_token_ids(ids, 5, None, VOCAB, _gen(), kinds=("swap",))
    assert out.shape == ids.shape  # swap falls back to replace when there is no neighbour
    assert torch.equal(changed, out != ids)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_with_cpu_generator() -> None:
    batch = _batch()
    ids, special = batch["input_ids"].cuda(), batch["special_tokens_mask"].cuda()
    out, changed = perturb_token_ids(ids, 3, special, VOCAB, _gen(1))
    ref, ref_changed = perturb_token_ids(
        batch["input_ids"], 3, batch["special_tokens_mask"], VOCAB, _gen(1)
    )
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), ref) and torch.equal(changed.cpu(), ref_changed)
