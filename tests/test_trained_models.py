"""unfold.models: each generated model against a plain-torch formula written from its paper,
InputAsData, FixedPoint's trace, and short seeded training runs on the bundled digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unfold as uf
from unfold.errors import InputError, UndeclaredSymbolError
from unfold.models import (
    CRATE, EnergyTransformer, HopfieldClassifier, LinearTransformer, PreconditionedGD, digits,
    YHWStack, icl_regression, patches, unpatch,
)
from unfold.models.crate import lasso_fit_energy
from unfold.models.train import accuracy, digit_batches, fit

DT = torch.float64


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ista(eta=0.1, lam=0.1, D=None):
    return uf.ProximalGradientStep(lasso_fit_energy(), uf.NonNegL1(lam), wrt="Z", step=eta,
                                   params={"D": D} if D is not None else None)


def test_input_as_data_is_crate_ista_formula():
    g = _g(0)
    D = torch.randn(6, 6, generator=g, dtype=DT) / 3
    Y = torch.randn(2, 6, 5, generator=g, dtype=DT)
    layer = uf.InputAsData(_ista(D=D), data="Y")
    ref = torch.relu(Y + 0.1 * D.T @ (Y - D @ Y) - 0.1 * 0.1)        # Yu et al. eq. (ISTA block)
    assert torch.allclose(layer(Y), ref, rtol=0, atol=1e-14)
    out, before, after = layer.energies(Y)
    fit_after = 0.5 * (Y - D @ out).pow(2).sum((-2, -1)) + 0.1 * out.abs().sum((-2, -1))
    assert torch.allclose(after, fit_after, rtol=0, atol=1e-12)
    assert torch.isinf(before).all()                                  # Y has negative entries: ι≥0 = ∞
    stacked = uf.Unrolled(layer, depth=2, tied=True)
    assert torch.allclose(stacked(Y), layer(layer(Y)), rtol=0, atol=0)


def test_input_as_data_bad_input():
    with pytest.raises(UndeclaredSymbolError, match="'Q' is not an input"):
        uf.InputAsData(_ista(), data="Q")
    with pytest.raises(InputError, match="'Z' is the state"):
        uf.InputAsData(_ista(), data="Z")
    with pytest.raises(InputError, match="'D' is registered"):
        uf.InputAsData(_ista(D=torch.eye(3, dtype=DT)), data="D")
    layer = uf.InputAsData(_ista(), data="Y")
    with pytest.raises(InputError, match="'Y' is the layer input"):
        layer(torch.zeros(3, 2, dtype=DT), Y=torch.zeros(3, 2, dtype=DT), D=torch.eye(3, dtype=DT))


def test_hopfield_deq_fixed_point_trace_and_equation():
    model = HopfieldClassifier(inputs=64, width=16, patterns=24, beta=2.0, tol=1e-12, max_iter=400).double()
    model.fixed_point.trace = True
    x = torch.rand(5, 8, 8, generator=_g(1), dtype=DT)
    with torch.no_grad():
        xi = model.hidden(x)
    info = model.fixed_point.info
    assert info.converged and len(info.residuals) == info.iterations
    assert info.energies.shape == (info.iterations + 1, 5)
    steps = info.energies[1:] - info.energies[:-1]
    assert float(steps.max()) <= 1e-12                                 # CCCP: never increases
    u = model.embed(x.flatten(1))[..., None]
    X = model.step.X
    assert torch.allclose(xi, u + X @ torch.softmax(2.0 * X.T @ xi, dim=-2), rtol=0, atol=1e-10)


def test_hopfield_deq_implicit_gradient_matches_unrolled_autograd():
    model = HopfieldClassifier(inputs=64, width=12, patterns=10, beta=1.0, tol=1e-13, max_iter=500).double()
    x = torch.rand(3, 8, 8, generator=_g(2), dtype=DT)
    y = torch.tensor([1, 4, 7])
    F.cross_entropy(model(x), y).backward()
    implicit = model.step.X.grad.clone()
    X = model.step.X.detach().clone().requires_grad_(True)
    u = model.embed(x.flatten(1))[..., None].detach()
    xi = u
    for _ in range(300):                                               # plain torch, from the paper
        xi = u + X @ torch.softmax(X.T @ xi, dim=-2)
    (g,) = torch.autograd.grad(F.cross_entropy(model.head(xi[..., 0]), y), X)
    assert torch.allclose(implicit, g, rtol=0, atol=1e-8)


def test_crate_layer_matches_the_paper_formulas():
    torch.manual_seed(0)
    model = CRATE(width=8, heads=2, depth=1, tokens=16, kappa=0.3, eta=0.1, lam=0.1).double()
    x = torch.rand(2, 8, 8, generator=_g(3), dtype=DT)
    layer = model.layers[0]
    Z = model.tokens_of(x)
    Zn = F.layer_norm(Z.mT, (8,), layer.ln_compress.weight, layer.ln_compress.bias).mT
    gamma, grad = 4 / 16, torch.zeros_like(Zn)
    for k in (1, 2):                                                   # ∇R^c, Yu et al. eq. 9
        U = layer.compress.U[k - 1]
        W = U.T @ Zn
        grad = grad + gamma * U @ W @ torch.linalg.inv(torch.eye(16, dtype=DT) + gamma * W.mT @ W)
    Zh = Zn - 0.3 * grad
    Y = F.layer_norm(Zh.mT, (8,), layer.ln_ista.weight, layer.ln_ista.bias).mT
    D = layer.ista.step.D
    ref = torch.relu(Y + 0.1 * D.T @ (Y - D @ Y) - 0.01)
    assert torch.allclose(layer(Z), ref, rtol=0, atol=1e-12)
    tr = model.trace(x)
    assert torch.all(tr["Rc_half"][0] < tr["Rc_in"][0])                  # the compression step descends
    assert torch.equal(tr["sparsity"][0], (ref == 0).double().mean((-2, -1)))


def test_energy_transformer_update_is_the_energy_gradient():
    model = EnergyTransformer(width=8, heads=2, head_dim=4, memories=6, steps=2, alpha=0.1).double()
    x = torch.randn(2, 16, 8, generator=_g(4), dtype=DT)
    p = {k: v.detach() for k, v in model.block.named_parameters()}
    beta = float(model.block.beta)

    def energy(g):                                                     # Hoover et al. eq. 2 + 5, plain torch
        e = -0.5 * torch.relu(g @ p["Xi"]).pow(2).sum()
        for h in (0, 1):                                               # heads: index 0 of (H, K, D)
            s = beta * (g @ p["WQ"][h].T) @ (g @ p["WK"][h].T).T
            e = e - torch.logsumexp(s, dim=1).sum() / beta
        return e

    g = model.layer_norm(x).detach()
    ref = x - 0.1 * torch.stack([torch.func.grad(energy)(gi) for gi in g])
    assert torch.allclose(model.update(x), ref, rtol=0, atol=1e-12)
    energies = model.trajectory(patches(x[..., :4].reshape(2, 8, 8)), torch.zeros(2, 16, dtype=torch.bool))
    assert energies.shape == (3, 2)


def test_energy_transformer_at_the_paper_configuration_is_one_generated_layer():
    """Hoover et al.'s image configuration (D = 768, 12 heads of 64, β = 1/8, M = 3072): the heads are
    one (12, 64, 768) parameter of the one generated block; its update equals autograd of the energy
    written from the paper, and the energy falls over the 12 inference steps."""
    model = EnergyTransformer.paper_configuration(patch_dim=4, tokens=16).double()
    shapes = {k: tuple(v.shape) for k, v in model.block.named_parameters()}
    assert shapes == {"WQ": (12, 64, 768), "WK": (12, 64, 768), "Xi": (768, 3072)}
    assert model.steps == 12 and model.alpha == 0.1 and float(model.block.beta) == 0.125
    p = {k: v.detach() for k, v in model.block.named_parameters()}

    def energy(g):                                                     # Hoover et al. eq. 2 + 5, plain torch
        e = -0.5 * torch.relu(g @ p["Xi"]).pow(2).sum()
        s = 0.125 * (g @ p["WQ"].mT) @ (g @ p["WK"].mT).mT    # (head, query, key)
        return e - torch.logsumexp(s, dim=-1).sum() / 0.125

    x = torch.randn(2, 16, 768, generator=_g(9), dtype=DT)
    g = model.layer_norm(x).detach()
    ref = x - 0.1 * torch.stack([torch.func.grad(energy)(gi) for gi in g])
    assert torch.allclose(model.update(x), ref, rtol=0, atol=1e-10)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :4] = True
    E = model.trajectory(torch.rand(2, 16, 4, generator=_g(10), dtype=DT), mask)
    assert E.shape == (13, 2) and bool((E[1:] < E[:-1]).all())


def test_linear_transformer_with_the_gd_construction_is_one_gd_step():
    d, n, eta = 4, 12, 0.3
    task = icl_regression(6, n, d, seed=5, dtype=DT)
    lsa = LinearTransformer(d, layers=1).double()
    with torch.no_grad():                                              # von Oswald et al. Prop. 1 weights
        lsa.W_KQ[0].zero_()
        lsa.W_KQ[0][:d, :d] = torch.eye(d)
        lsa.W_PV[0].zero_()
        lsa.W_PV[0][d, d] = -eta                                      # the y-slot accumulates −ΔW x_q
    gd = PreconditionedGD(d, steps=1).double()
    with torch.no_grad():
        gd.preconditioners()[0].copy_(eta * torch.eye(d, dtype=DT))
    ref = eta / n * (task["y"] @ task["X"].mT @ task["xq"])[..., 0, 0]   # ŷ = η/n Σ y_i x_iᵀ x_q
    assert torch.allclose(gd(task), ref, rtol=0, atol=1e-13)
    assert torch.allclose(lsa(task), ref, rtol=0, atol=1e-13)


def test_sparse_linear_transformer_is_preconditioned_gd_for_any_weights():
    """Ahn et al.'s parameterisation (W_PV = [[0,0],[0,1]], W_KQ = [[A,0],[0,0]]): three layers with random,
    non-symmetric A_ℓ predict what three preconditioned GD steps Γ_ℓ = −A_ℓ predict, both the generated
    steps and GD written here in plain torch (w ← w − Γ_ℓᵀ ∇R(w), ∇R(w) = (1/n) X(Xᵀw − yᵀ))."""
    d, n = 4, 9
    S = torch.diag(torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=DT))
    task = icl_regression(7, n, d, seed=11, dtype=DT, cov=S, task_cov=torch.linalg.inv(S))
    lsa = LinearTransformer(d, layers=3, init_scale=0.3, sparse=True, seed=2).double()
    assert {k for k, _ in lsa.named_parameters()} == {"A.0", "A.1", "A.2"}
    gd = PreconditionedGD(d, steps=3).double()
    with torch.no_grad():
        for G, P in zip(lsa.preconditioners(), gd.preconditioners()):
            P.copy_(G)
    w = torch.zeros(7, d, 1, dtype=DT)
    for A in lsa.A:
        G = -A.detach()
        w = w - G.T @ task["X"] @ (task["X"].mT @ w - task["y"].mT) / n
    ref = (task["xq"].mT @ w)[..., 0, 0]
    assert not torch.allclose(lsa.A[0], lsa.A[0].T)
    assert torch.allclose(lsa(task), ref, rtol=0, atol=1e-12)
    assert torch.allclose(gd(task), ref, rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="sparse=True"):
        LinearTransformer(d, layers=1).preconditioners()
    with pytest.raises(uf.errors.ShapeMismatchError, match="task_cov must be 4×4"):
        icl_regression(2, n, d, task_cov=torch.eye(3))


def test_associative_recall_data_and_hopfield_recall_energies():
    seq, target = uf.models.associative_recall(50, 5, 12, seed=3)
    keys, values, query = seq[:, 0:10:2], seq[:, 1:10:2], seq[:, -1]
    assert all(len(set(k.tolist())) == 5 for k in keys) and bool(((values >= 12) & (values < 24)).all())
    for b in range(50):                                               # the target is the value stored with q
        (i,) = (keys[b] == query[b]).nonzero()[0].tolist()
        assert int(target[b]) == int(values[b, i])
    model = uf.models.HopfieldRecall(12, width=8, heads=2, update_steps=3, seed=1).double()
    assert model(seq).shape == (50, 12)
    hop = model.hopfield
    R, Y = model.tokens(seq)
    beta = float(hop.beta[0])
    Xi = torch.einsum("bte,hpe->bhtp", R, hop.WQ) + hop.bq                # plain torch, Ramsauer et al.
    K = torch.einsum("bte,hpe->bhtp", Y, hop.WK) + hop.bk
    ref = []
    for _ in range(4):
        ref.append((0.5 * Xi.pow(2).sum((-1, -2)) - torch.logsumexp(beta * Xi @ K.mT, -1).sum(-1) / beta).sum(-1))
        Xi = torch.softmax(beta * Xi @ K.mT, -1) @ K
    E = model.energies(seq)
    assert torch.allclose(E, torch.stack(ref).detach(), rtol=0, atol=1e-10)
    assert bool((E[1:] <= E[:-1] + 1e-12).all())                     # CCCP: never increases


def test_yhw_stack_layers_match_the_paper_formulas():
    model = YHWStack(width=6, depth=2, alpha_att=0.3, alpha_ffn=0.5).double()
    x = torch.rand(2, 8, 8, generator=_g(7), dtype=DT)
    Y = model.tokens_of(x)
    G = model.Ws.T @ model.Ws
    S = Y @ G @ Y.mT
    att = 0.7 * Y + 0.3 * torch.softmax(S - 0.5 * torch.diagonal(S, dim1=-2, dim2=-1)[..., None, :], dim=-1) @ Y
    W = (model.M + model.M.T) / 2
    ffn = torch.relu(att @ (0.5 * torch.eye(6, dtype=DT) - 0.5 * W) + 0.5 * model.b.T)   # Yang et al. FFN step
    (Yh, Y1), _ = model.layers(x)
    assert torch.allclose(Yh, att, rtol=0, atol=1e-12) and torch.allclose(Y1, ffn, rtol=0, atol=1e-12)
    e1 = model.energy_curve(x)["E1"]
    assert all(bool((e1[k + 1] <= e1[k] + 1e-12).all()) for k in (0, 2))  # attention MM steps descend E₁


def test_models_are_plain_modules():
    model = CRATE(width=8, heads=2, depth=2)
    keys = set(model.state_dict())
    assert {"layers.0.compress.U", "layers.1.ista.step.D", "head.weight"} <= keys
    assert model.state_dict()["layers.0.compress.U"].shape == (2, 8, 4)          # (heads, d, p): one head axis
    copy = CRATE(width=8, heads=2, depth=2, seed=1)
    copy.load_state_dict(model.state_dict())
    x = torch.rand(3, 8, 8, generator=_g(6))
    assert torch.equal(copy(x), model(x))
    assert model.double()(x.double()).dtype == DT


def test_digits_data_and_patches():
    data = digits(seed=0)
    assert data.x_train.shape[1:] == (8, 8) and len(data.x_train) + len(data.x_test) == 1797
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0
    assert torch.equal(unpatch(patches(data.x_test)), data.x_test)
    assert torch.equal(patches(data.x_test)[0, 1], data.x_test[0, :2, 2:4].flatten())


def test_short_training_is_seeded_and_learns():
    data = digits(seed=0)

    def run():
        torch.manual_seed(0)
        model = HopfieldClassifier(width=32, patterns=32, seed=0)
        log = fit(model, lambda m, b: F.cross_entropy(m(b[0]), b[1]),
                  digit_batches(data.x_train, data.y_train, 64, seed=0), epochs=3, progress=False)
        return model, log

    model, log = run()
    _, again = run()
    assert log.losses == again.losses
    assert accuracy(model, data.x_test, data.y_test) >= 0.85


def test_state_dicts_with_per_head_keys_still_load():
    """The older layout (one parameter per head: U1…UK, WQ1…WQH, WK1…WKH) loads into the head-axis
    parameters, head h at index h − 1, and gives the same outputs."""
    x = torch.rand(2, 8, 8, generator=_g(7))
    crate = CRATE(width=8, heads=2, depth=2)
    old = {}
    for k, v in crate.state_dict().items():
        if k.endswith("compress.U"):
            old.update({f"{k}{h + 1}": v[h].clone() for h in range(v.shape[0])})
        else:
            old[k] = v
    fresh = CRATE(width=8, heads=2, depth=2, seed=5)
    fresh.load_state_dict(old)
    assert torch.equal(fresh(x), crate(x))
    et = EnergyTransformer(width=8, heads=2, head_dim=4, memories=16, steps=2)
    old = {}
    for k, v in et.state_dict().items():
        if k in ("block.WQ", "block.WK"):
            old.update({f"{k}{h + 1}": v[h].clone() for h in range(v.shape[0])})
        else:
            old[k] = v
    fresh_et = EnergyTransformer(width=8, heads=2, head_dim=4, memories=16, steps=2, seed=5)
    fresh_et.load_state_dict(old)
    p = torch.rand(2, 16, 4, generator=_g(8))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :4] = True
    assert torch.equal(fresh_et(p, mask), et(p, mask))
    with pytest.raises(RuntimeError, match="WQ"):                     # an incomplete head family is reported
        fresh_et.load_state_dict({k: v for k, v in old.items() if k != "block.WQ2"})
