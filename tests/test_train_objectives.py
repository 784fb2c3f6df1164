"""Training objectives on small tensors with known answers (SPEC §3)."""
from __future__ import annotations

import math
import random

import pytest
import torch

from alignkit.errors import AlignkitError
from alignkit.training import codeswitch, losses, model
from alignkit.training import objectives as ob
from alignkit.training.config import ObjectiveConfig
from alignkit.training.optim import RowAdam


# ----------------------------------------------------------------------------- EPT


def test_ept_is_zero_beyond_the_margin_with_zero_gradient():
    anchors = torch.zeros(2, 2)
    rows = torch.tensor([[3.0, 4.0], [0.0, 6.0]], requires_grad=True)  # distances 5 and 6
    loss = losses.embedding_push_loss(rows, anchors, margin=0.5, rho=10.0)  # margin·ρ = 5
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(rows.grad) == 0


def test_ept_inside_the_margin_has_known_value_and_descent_pushes_away_from_anchor():
    anchor = torch.tensor([[1.0, 1.0]])
    rows = torch.tensor([[1.0 + 0.6, 1.0 + 0.8]], requires_grad=True)  # distance 1
    loss = losses.embedding_push_loss(rows, anchor, margin=0.5, rho=1.0)
    assert loss.item() == pytest.approx(0.0)  # exactly at the margin... move closer:
    rows2 = torch.tensor([[1.3, 1.4]], requires_grad=True)  # distance 0.5
    loss2 = losses.embedding_push_loss(rows2, anchor, margin=1.0, rho=2.0)  # relu(1 - 0.5/2)
    assert loss2.item() == pytest.approx(0.75)
    loss2.backward()
    away = (rows2 - anchor).detach() / 0.5
    # gradient = -(1/ρ)·unit(row - anchor): descent moves along +unit, i.e. away from the anchor
    assert torch.allclose(-rows2.grad, away / 2.0)
    stepped = rows2.detach() - 0.1 * rows2.grad
    assert (stepped - anchor).norm() > (rows2.detach() - anchor).norm()


def test_ept_centroid_anchor_broadcasts_one_anchor_over_rows():
    rows = torch.tensor([[0.0, 0.1], [2.0, 0.0]])
    loss = losses.embedding_push_loss(rows, torch.zeros(2), margin=1.0, rho=1.0)
    assert loss.item() == pytest.approx((0.9 + 0.0) / 2)


def test_ept_margin_counts_from_where_a_row_starts():
    # rows start 2 and 4 from the anchor (ρ = 2: 1 and 2 in ρ units); now at 2.5 and 4 -> pushed 0.25 and 0
    rows = torch.tensor([[2.5, 0.0], [0.0, 4.0]], requires_grad=True)
    start = torch.tensor([1.0, 2.0])
    loss = losses.embedding_push_loss(rows, torch.zeros(2), margin=0.5, rho=2.0, start=start)
    assert loss.item() == pytest.approx(((0.5 - 0.25) + 0.5) / 2)
    assert torch.allclose(losses.push_distance(rows.detach(), torch.zeros(2), 2.0, start), torch.tensor([0.25, 0.0]))
    loss.backward()
    assert rows.grad[0, 0] < 0 and rows.grad[1, 1] < 0  # descent moves both rows away from the anchor


def _ept_ctx(anchor: str):
    clf = tiny_classifier().eval()
    w = clf.word_embeddings.weight
    anchors = ob.Anchors(w.data, torch.arange(5, 12), offset_seed=3)
    cfg = ObjectiveConfig(ept_anchor=anchor, ept_margin=0.3)
    return w, anchors, ob.StepContext(clf, tiny_batch(), model.TableView(w), anchors, cfg, {"ept"})


@pytest.mark.parametrize("anchor", ["original", "centroid"])
def test_ept_has_nonzero_gradient_on_every_batch_row_at_step_0(anchor):
    w, anchors, ctx = _ept_ctx(anchor)  # W = W⁰: the step-0 situation
    loss = ob.OBJECTIVES["ept"].loss(ctx)
    assert loss.item() == pytest.approx(0.3, abs=1e-6)  # nothing pushed yet: every row is m short
    loss.backward()
    ids = torch.unique(tiny_batch().input_ids[tiny_batch().content_mask])
    assert (w.grad[ids].norm(dim=1) > 0).all()
    others = torch.ones(len(w), dtype=torch.bool)
    others[ids] = False
    assert torch.count_nonzero(w.grad[others]) == 0


def test_original_anchor_offsets_are_tiny_seeded_and_per_row():
    w, anchors, _ = _ept_ctx("original")
    ids = torch.tensor([5, 9, 5])
    xi = anchors.offsets(ids)
    assert torch.allclose(xi.norm(dim=1), torch.full((3,), 1e-3 * anchors.rho))
    assert torch.equal(xi[0], xi[2]) and not torch.allclose(xi[0], xi[1])
    again = ob.Anchors(w.data, offset_seed=3).offsets(torch.tensor([9]))
    assert torch.equal(again[0], xi[1])
    assert not torch.allclose(ob.Anchors(w.data, offset_seed=4).offsets(torch.tensor([9]))[0], xi[1])


# ----------------------------------------------------------------------------- VME


def test_random_vme_stays_inside_its_ball_and_leaves_masked_tokens_alone():
    torch.manual_seed(0)
    mask = torch.tensor([[False, True, True, True, False]] * 64)
    d = losses.sample_in_ball((64, 5, 16), radius=0.7, mask=mask)
    norms = d.norm(dim=-1)
    assert norms.max().item() <= 0.7 + 1e-6
    assert torch.all(norms[~mask] == 0)
    # uniform in the 16-ball: E‖δ‖ = r·16/17
    assert norms[mask].mean().item() == pytest.approx(0.7 * 16 / 17, rel=0.03)


def test_pgd_stays_inside_the_ball_and_converges_to_the_loss_maximiser():
    torch.manual_seed(1)
    w = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    init = losses.sample_in_ball(w.shape, 0.5, mask)

    def lin(delta):  # linear loss: the maximiser in each ball is r·w/‖w‖
        return (delta * w).sum()
    d = losses.pgd_perturbation(lin, init, radius=0.5, steps=20, step_size=0.125, mask=mask)
    assert d.norm(dim=-1).max().item() <= 0.5 + 1e-6
    assert torch.all(d[~mask] == 0)
    cos = torch.nn.functional.cosine_similarity(d[mask], w[mask], dim=-1)
    assert cos.min().item() > 0.999  # on the sphere, pointing along the gradient
    assert torch.allclose(d[mask].norm(dim=-1), torch.full((int(mask.sum()),), 0.5), atol=1e-5)
    assert lin(d) > lin(init)


def test_project_to_ball_only_shrinks_long_vectors():
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    p = losses.project_to_ball(v, 1.0)
    assert torch.allclose(p, torch.tensor([[0.6, 0.8], [0.3, 0.4]]))


# ----------------------------------------------------------------------------- RT


def test_rt_is_ce_on_the_perturbed_logits_plus_optional_kl():
    clean = torch.tensor([[2.0, 0.0, 0.0]])
    pert = torch.tensor([[1.0, 1.0, 0.0]])
    y = torch.tensor([0])
    ce = -math.log(math.e / (2 * math.e + 1))
    assert losses.robust_loss(pert, y).item() == pytest.approx(ce, rel=1e-6)
    p = torch.softmax(clean, -1)[0]
    q = torch.softmax(pert, -1)[0]
    kl = float((p * (p / q).log()).sum())
    assert losses.robust_loss(pert, y, clean, kl_weight=0.5).item() == pytest.approx(ce + 0.5 * kl, rel=1e-6)
    assert losses.robust_loss(clean, y, clean, kl_weight=1.0).item() == pytest.approx(losses.task_loss(clean, y).item())


# ----------------------------------------------------------------------------- CL


def test_info_nce_equals_hand_computed_value_on_three_pairs():
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    p = torch.tensor([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [0.5, 1.0, 1.0]])
    tau = 0.5
    vecs = [v / v.norm() for v in torch.cat([a, p])]

    def cos(i, j):
        return float(vecs[i] @ vecs[j])
    total = 0.0
    for i in range(6):
        pos = (i + 3) % 6
        denom = sum(math.exp(cos(i, j) / tau) for j in range(6) if j != i)
        total += -math.log(math.exp(cos(i, pos) / tau) / denom)
    assert losses.info_nce_loss(a, p, tau).item() == pytest.approx(total / 6, rel=1e-5)


def test_variance_penalty_is_mean_squared_similarity_of_the_twelve_negative_pairs():
    torch.manual_seed(2)
    a, p = torch.randn(3, 4), torch.randn(3, 4)
    z = torch.nn.functional.normalize(torch.cat([a, p]), dim=-1)
    negs = [float(z[i] @ z[j]) for i in range(6) for j in range(i + 1, 6) if j - i != 3]
    assert len(negs) == 12 == losses.negative_similarities(a, p).numel()
    want = sum((s - 0.1) ** 2 for s in negs) / 12
    assert losses.variance_penalty(a, p, delta=0.1).item() == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------------------- APT (with a tiny encoder)


def tiny_classifier(seed: int = 0, dropout: float = 0.1):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
    enc = BertModel(cfg, add_pooling_layer=False)
    enc.set_attn_implementation("eager")
    model.disable_attention_dropout(enc)
    return model.PairClassifier(enc, 3)


def tiny_batch():
    ids = torch.tensor([[2, 5, 6, 7, 3, 8, 3], [2, 9, 3, 10, 11, 3, 0]])
    att = (ids != 0).long()
    special = (ids == 2) | (ids == 3) | (ids == 0)
    return model.PairBatch(ids, att, None, att.bool() & ~special, torch.tensor([0, 2]))


def test_apt_is_zero_when_embeddings_equal_w0_even_with_dropout_on():
    clf = tiny_classifier().train()
    w = clf.word_embeddings.weight
    anchors = ob.Anchors(w.data)
    cfg = ObjectiveConfig()
    ctx = ob.StepContext(clf, tiny_batch(), model.TableView(w), anchors, cfg, {"apt", "attentions"})
    loss = ob.OBJECTIVES["apt"].loss(ctx)
    assert loss.item() == 0.0


def test_apt_is_positive_once_embeddings_move_and_matches_kl_formula():
    clf = tiny_classifier().eval()
    w = clf.word_embeddings.weight
    anchors = ob.Anchors(w.data)
    with torch.no_grad():
        w.add_(0.5 * torch.randn_like(w))
    ctx = ob.StepContext(clf, tiny_batch(), model.TableView(w), anchors, ObjectiveConfig(apt_layers=(1,)),
                         {"apt", "attentions"})
    loss = ob.OBJECTIVES["apt"].loss(ctx)
    assert loss.item() > 0.0
    loss.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    a0, a = ctx.reference_attentions[0], ctx.clean.attentions[0].detach()
    att = tiny_batch().attention_mask
    kl = [float((a0[b, h, q] * (a0[b, h, q].clamp_min(1e-30).log() - a[b, h, q].clamp_min(1e-30).log())).sum())
          for b in range(2) for h in range(2) for q in range(7) if att[b, q]]
    assert loss.item() == pytest.approx(sum(kl) / len(kl), rel=1e-5)


def test_attention_pull_on_hand_made_distributions():
    a0 = torch.tensor([0.5, 0.5, 0.0]).view(1, 1, 1, 3)
    a = torch.tensor([0.9, 0.1, 0.0]).view(1, 1, 1, 3)
    want = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    got = losses.attention_pull_loss([a0], [a], torch.ones(1, 1))
    assert got.item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(AlignkitError, match="out of range"):
        ctx = ob.StepContext(tiny_classifier(), tiny_batch(), model.TableView(tiny_classifier().word_embeddings.weight),
                             ob.Anchors(torch.zeros(30, 16)), ObjectiveConfig(apt_layers=(3,)), {"apt"})
        ctx.layer_indices()


def test_step_context_vme_delta_respects_ball_and_special_tokens_in_both_modes():
    clf = tiny_classifier().train()
    w = clf.word_embeddings.weight
    anchors = ob.Anchors(w.data, keep_copy=False)
    b = tiny_batch()
    for mode in ("random", "adversarial"):
        cfg = ObjectiveConfig(epsilon=0.2, perturbation=mode, pgd_steps=2)
        ctx = ob.StepContext(clf, b, model.TableView(w), anchors, cfg, {"rt", "vme"})
        d = ctx.delta
        assert d.norm(dim=-1).max().item() <= 0.2 * anchors.rho + 1e-5
        assert torch.all(d[~b.content_mask] == 0)
        assert d[b.content_mask].norm(dim=-1).min().item() > 0


def test_combined_loss_is_the_weighted_sum_of_the_parts():
    clf = tiny_classifier().eval()
    w = clf.word_embeddings.weight
    weights = ob.resolve_variant("ept+apt+rt+cl", {"cl": 0.5, "vrn": 0.2})
    module = ob.TrainingObjective(clf, weights, ObjectiveConfig(), ob.Anchors(w.data, torch.arange(5, 12)))
    torch.manual_seed(0)
    total, parts = module(tiny_batch())
    assert set(parts) == {"task", "rt", "ept", "apt", "cl", "vrn"}
    assert total.item() == pytest.approx(sum(weights[k] * parts[k].item() for k in parts), rel=1e-6)


# ----------------------------------------------------------------------------- variants


def test_named_variants_resolve_to_the_spec_objectives():
    assert ob.resolve_variant("ft") == {"task": 1.0}
    assert set(ob.resolve_variant("rt+cl")) == {"task", "rt", "cl"}
    assert set(ob.resolve_variant("ept+apt+rt")) == {"task", "ept", "apt", "rt"}
    assert set(ob.resolve_variant("ept+apt+rt+cl")) == {"task", "ept", "apt", "rt", "cl"}
    assert ob.resolve_variant("rt+cl", {"cl": 0.25})["cl"] == 0.25
    assert set(ob.resolve_variant("cl+rt")) == {"task", "rt", "cl"}  # any combination of registered names


@pytest.mark.parametrize("variant, weights, msg", [
    ("ept+magic", None, "unknown variant"),
    ("rt", {"vrn": 0.1}, "variance penalty"),
    ("rt", {"nope": 1.0}, "unknown objective weight"),
])
def test_bad_variants_are_alignkit_errors(variant, weights, msg):
    with pytest.raises(AlignkitError, match=msg):
        ob.resolve_variant(variant, weights)


def test_registry_accepts_new_objectives_by_name():
    @ob.register_objective("l2test", "test-only: mean squared logits")
    def _l2(ctx):
        return ctx.clean.logits.pow(2).mean()
    try:
        weights = ob.resolve_variant("l2test", {"l2test": 0.5})
        assert weights == {"task": 1.0, "l2test": 0.5}
        clf = tiny_classifier().eval()
        w = clf.word_embeddings.weight
        total, parts = ob.TrainingObjective(clf, weights, ObjectiveConfig(), ob.Anchors(w.data, keep_copy=False))(tiny_batch())
        assert total.item() == pytest.approx(parts["task"].item() + 0.5 * parts["l2test"].item(), rel=1e-6)
        with pytest.raises(ValueError, match="twice"):
            ob.register_objective("l2test", "again")(_l2)
    finally:
        ob.OBJECTIVES.remove("l2test")


# ----------------------------------------------------------------------------- sparse table + row Adam


def test_sparse_table_view_gives_the_dense_gradient_on_touched_rows():
    torch.manual_seed(3)
    weight = torch.nn.Parameter(torch.randn(12, 4))
    ids = torch.tensor([[1, 5, 5, 7], [7, 2, 1, 1]])
    target = torch.randn(2, 4, 4)
    dense = model.TableView(weight)
    ((dense(ids) - target) ** 2).sum().backward()
    sparse = model.TableView.sparse(weight.detach(), [ids])
    ((sparse(ids) - target) ** 2).sum().backward()
    assert sparse.row_ids.tolist() == [1, 2, 5, 7]
    assert torch.allclose(sparse.rows.grad, weight.grad[sparse.row_ids])
    untouched = torch.ones(12, dtype=torch.bool)
    untouched[sparse.row_ids] = False
    assert torch.count_nonzero(weight.grad[untouched]) == 0


def test_row_adam_matches_torch_adam_on_rows_and_leaves_other_rows_untouched():
    torch.manual_seed(4)
    table = torch.randn(10, 3)
    ref = torch.nn.Parameter(table[[2, 6]].clone())
    opt = torch.optim.Adam([ref], lr=0.01)
    rows = RowAdam(table)
    before = table.clone()
    for _ in range(5):
        g = torch.randn(2, 3)
        ref.grad = g.clone()
        opt.step()
        rows.step(torch.tensor([2, 6]), g, lr=0.01)
    assert torch.allclose(table[[2, 6]], ref.detach(), atol=1e-6)
    others = [i for i in range(10) if i not in (2, 6)]
    assert torch.equal(table[others], before[others])


# ----------------------------------------------------------------------------- code-switching


class _FakeLexicon:
    def __init__(self, pairs, name):
        self.pairs = tuple(pairs)
        self.name = name
        self.sha256 = "0" * 64

    def sources(self):
        return list(dict.fromkeys(s for s, _ in self.pairs))

    def targets(self):
        return list(dict.fromkeys(t for _, t in self.pairs))


TRAIN = [("house", "nyumba"), ("dog", "mbwa"), ("water", "maji"), ("home", "kwao"), ("home", "kitabu")]
TEST = [("book", "kitabu"), ("cat", "paka"), ("tree", "mti")]


@pytest.fixture
def fake_lexicons(monkeypatch):
    import alignkit.inputs.lexicons as lx

    calls = []

    def fake_load(spec, split="test", **kw):
        calls.append((spec, split))
        return _FakeLexicon(TRAIN if split == "train" else TEST, f"{spec}.{split}")
    monkeypatch.setattr(lx, "load_lexicon", fake_load)
    return calls


def test_codeswitch_never_uses_test_split_words(fake_lexicons):
    sw = codeswitch.CodeSwitcher.from_lexicons(["en-sw"], prob=1.0)
    assert ("en-sw", "train") in fake_lexicons
    test_src = {s for s, _ in TEST}
    test_tgt = {t for _, t in TEST}
    rng = random.Random(0)
    text = "The house, the dog and the cat drink water at home under a tree with a book."
    for _ in range(20):
        out = sw.switch(text, rng)
        words = set(out.replace(",", " ").replace(".", " ").split())
        assert {"nyumba", "mbwa", "maji", "kwao"} <= words  # every train word switched (prob 1)
        assert test_src <= words  # test-split source words are never replaced
        assert not (words & test_tgt)  # ... and no test-split translation is ever inserted
    assert "kitabu" not in sw.table.get("home", [])  # a train pair whose target is a test word is dropped


def test_codeswitch_refuses_the_test_split_and_files(fake_lexicons, tmp_path):
    with pytest.raises(AlignkitError, match="only use the train split"):
        codeswitch.CodeSwitcher.from_lexicons(["en-sw"], prob=0.5, split="test")
    with pytest.raises(AlignkitError, match="shipped language pair"):
        codeswitch.CodeSwitcher.from_lexicons([str(tmp_path / "en-sw.test.tsv")], prob=0.5)
    assert all(split in ("train", "test") for _, split in fake_lexicons)


def test_codeswitch_is_reproducible_per_example_and_keeps_punctuation(fake_lexicons):
    sw = codeswitch.CodeSwitcher.from_lexicons(["en-sw"], prob=0.5)
    a = sw.switch("My house, my dog.", codeswitch.example_rng(1, 0, 7))
    b = sw.switch("My house, my dog.", codeswitch.example_rng(1, 0, 7))
    assert a == b and a.startswith("My ") and a.endswith(".") and "," in a


def test_codeswitch_with_a_real_shipped_lexicon_keeps_train_and_test_apart():
    from alignkit.inputs import lexicons as lx

    if "en-sw" not in lx.shipped_pairs():
        pytest.skip("no shipped en-sw lexicon yet")
    sw = codeswitch.CodeSwitcher.from_lexicons(["en-sw"], prob=1.0)
    test = lx.load_lexicon("en-sw", split="test")
    assert not set(sw.table) & {s.lower() for s in test.sources()}
    inserted = {t for ts in sw.table.values() for t in ts}
    assert not inserted & set(test.targets())
