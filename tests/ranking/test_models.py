"""The model zoo: shapes, learning, regularization, fused embeddings, config schema."""

from __future__ import annotations

import typing

import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter, ValidationError
from torch import nn

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models import (
    REGISTRY,
    DCNv2Config,
    DLRMConfig,
    FinalMLPConfig,
    ModelConfigUnion,
    build_model,
)
from rankwright.ranking.models.layers import (
    MLP,
    BatchNorm1d,
    Dropout,
    DotInteraction,
    FeatureEmbedding,
    fm_interaction,
)

NAMES = sorted(REGISTRY)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batches: one intra-op thread is fastest and avoids spin-waiting on busy CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


META_CAT = FeatureMeta(("user", "item", "hour", "city"), (200, 50, 24, 7))
META_MIXED = FeatureMeta(("user", "item", "hour", "city"), (200, 50, 24, 7), ("price", "age"))
METAS = {"categorical_only": META_CAT, "with_numeric": META_MIXED}

# small widths keep the suite fast; every model-specific tower is shrunk the same way
SMALL = {
    "dnn": {"hidden_units": (64, 64)},
    "deepfm": {"hidden_units": (64, 64)},
    "dcnv2": {"hidden_units": (64, 64), "num_cross_layers": 2},
    "dlrm": {"bottom_hidden_units": (16,), "top_hidden_units": (64, 64)},
    "autoint_plus": {"hidden_units": (64, 64), "attention_layers": 2, "attention_dim": 16, "num_heads": 2},
    "finalmlp": {
        "mlp1_hidden_units": (64, 64),
        "mlp2_hidden_units": (32,),
        "fs_hidden_units": (32,),
        "num_heads": 4,
        "fs1_context": ("user",),
        "fs2_context": ("item",),
    },
}
NO_DROPOUT = {
    "dnn": {"dropout": 0.0},
    "deepfm": {"dropout": 0.0},
    "dcnv2": {"dropout": 0.0},
    "dlrm": {"bottom_dropout": 0.0, "top_dropout": 0.0},
    "autoint_plus": {"dropout": 0.0},
    "finalmlp": {"mlp1_dropout": 0.0, "mlp2_dropout": 0.0},
}


def make_config(name: str, **overrides: typing.Any):
    config_cls, _ = REGISTRY[name]
    return config_cls(**{"embedding_dim": 8, **SMALL.get(name, {}), **overrides})


def make_batch(meta: FeatureMeta, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, c, (n,), generator=g) for c in meta.cardinalities], dim=1)
    num = torch.randn(n, meta.num_numeric, generator=g)
    return cat, num


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("meta_key", sorted(METAS))
@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_finite(name: str, meta_key: str) -> None:
    torch.manual_seed(0)
    meta = METAS[meta_key]
    model = build_model(meta, make_config(name))
    cat, num = make_batch(meta, 32)
    out = model(cat, num)
    assert out.shape == (32,)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    model.eval()
    with torch.no_grad():
        a, b = model(cat, num), model(cat, num)
    assert a.shape == (32,) and torch.equal(a, b), "eval mode must be deterministic"
    out.sum().backward()  # every model is differentiable end to end
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.embedding_parameters())


@pytest.mark.parametrize("name", NAMES)
def test_default_config_builds(name: str) -> None:
    config_cls, _ = REGISTRY[name]
    defaults = {"fs1_context": ("user",), "fs2_context": ("item",)} if name == "finalmlp" else {}
    model = build_model(META_MIXED, config_cls(**defaults))
    cat, num = make_batch(META_MIXED, 16)
    assert model(cat, num).shape == (16,)


# --------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", NAMES)
def test_adam_steps_reduce_loss(name: str) -> None:
    """A learnable signal on random data: a few full-batch Adam steps lower the loss."""
    torch.manual_seed(0)
    meta = META_MIXED
    cat, num = make_batch(meta, 512, seed=1)
    label = ((cat[:, 2] < 12) ^ (num[:, 0] > 0)).float()
    model = build_model(meta, make_config(name, **NO_DROPOUT.get(name, {}), embedding_init_std=0.01))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(model(cat, num), label)

    first = loss().item()
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first - 0.01


@pytest.mark.parametrize("name", NAMES)
def test_overfits_tiny_batch_with_random_labels(name: str) -> None:
    """64 rows with coin-flip labels can only be fitted by memorising them."""
    torch.manual_seed(0)
    meta = META_MIXED
    g = torch.Generator().manual_seed(7)
    cat, num = make_batch(meta, 64, seed=3)
    cat[:, 0] = torch.randperm(meta.cardinalities[0], generator=g)[:64]  # a row-identifying field
    label = torch.randint(0, 2, (64,), generator=g).float()
    model = build_model(meta, make_config(name, **NO_DROPOUT.get(name, {}), embedding_init_std=0.1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = F.binary_cross_entropy_with_logits(model(cat, num), label).item()
    for _ in range(200):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(model(cat, num), label).backward()
        opt.step()
    model.eval()  # evaluated with BatchNorm running statistics, as at inference
    with torch.no_grad():
        final = F.binary_cross_entropy_with_logits(model(cat, num), label).item()
    assert start > 0.6
    assert final < 0.2, f"{name} did not memorise: log loss {start:.3f} -> {final:.3f}"


# --------------------------------------------------------------------------- regularization
@pytest.mark.parametrize("name", NAMES)
def test_regularization(name: str) -> None:
    meta = META_MIXED
    none = build_model(meta, make_config(name))
    assert none.regularization().item() == 0.0
    emb = build_model(meta, make_config(name, embedding_l2=0.1))
    assert emb.embedding_parameters(), "every model keeps its tables in FeatureEmbedding"
    expected = sum(0.05 * p.pow(2).sum().item() for p in emb.embedding_parameters())
    assert emb.regularization().item() == pytest.approx(expected, rel=1e-5)
    assert emb.regularization().item() > 0
    net = build_model(meta, make_config(name, net_l2=0.1))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1)  # LR/FM only have a zero-initialised bias outside the tables
    emb_only = sum(0.05 * p.pow(2).sum().item() for p in net.embedding_parameters())
    assert net.regularization().item() > 0 and emb_only > 0  # tables are excluded from net_l2 ...
    assert net.regularization().item() == pytest.approx(
        sum(0.05 * p.pow(2).sum().item() for p in net.parameters()) - emb_only, rel=1e-4
    )  # ... and every other parameter is included


def test_embedding_l2_counts_numeric_weights_and_lr_tables() -> None:
    model = build_model(META_MIXED, make_config("deepfm", embedding_l2=1.0))
    tables = model.embedding_parameters()
    shapes = sorted(tuple(p.shape) for p in tables)
    assert shapes == sorted([(281, 8), (2, 8), (281, 1), (2, 1)])


# --------------------------------------------------------------------------- layers
@pytest.mark.parametrize("meta_key", sorted(METAS))
def test_fused_embedding_matches_separate_tables(meta_key: str) -> None:
    torch.manual_seed(0)
    meta = METAS[meta_key]
    layer = FeatureEmbedding(meta, 5, init_std=0.5)
    weight = layer.table.weight.detach()
    separate = []
    start = 0
    for card in meta.cardinalities:
        table = nn.Embedding(card, 5)
        table.weight.data.copy_(weight[start : start + card])
        separate.append(table)
        start += card
    assert start == weight.shape[0]
    cat, num = make_batch(meta, 50)
    cat[:3] = torch.tensor([c - 1 for c in meta.cardinalities])  # last id of every field
    cat[3:6] = 0  # OOV bucket of every field
    expected = [table(cat[:, f]) for f, table in enumerate(separate)]
    expected += [num[:, j : j + 1] * layer.numeric_weight[j] for j in range(meta.num_numeric)]
    torch.testing.assert_close(layer(cat, num), torch.stack(expected, dim=1))
    assert layer(cat, num).shape == (50, meta.num_fields, 5)


def test_fm_interaction_and_dot_interaction_match_pairwise_loops() -> None:
    torch.manual_seed(0)
    emb = torch.randn(6, 5, 3)
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    dots = torch.stack([(emb[:, i] * emb[:, j]).sum(-1) for i, j in pairs], dim=1)
    torch.testing.assert_close(fm_interaction(emb), dots.sum(1))
    torch.testing.assert_close(DotInteraction(5)(emb), dots)


@pytest.mark.parametrize("p", [0.1, 0.4])
def test_fast_dropout_matches_nn_dropout_statistics(p: float) -> None:
    layer = Dropout(p)
    x = torch.ones(1000, 1000, requires_grad=True)
    torch.manual_seed(0)
    out = layer(x)
    dropped = (out == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.003)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)  # inverted scaling keeps the mean
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach())  # gradient flows exactly through the kept units
    torch.manual_seed(0)
    torch.testing.assert_close(layer(x), out)  # reproducible from torch's seed
    assert not torch.equal(layer(x), out)  # and fresh per call
    layer.eval()
    assert layer(x) is x
    assert Dropout(0.0).train()(x) is x


def test_batch_norm_statistics_start_from_the_first_batch() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 8) * 1e-3 + 0.5
    layer = BatchNorm1d(8).train()
    layer(x)
    torch.testing.assert_close(layer.running_mean, x.mean(0))
    torch.testing.assert_close(layer.running_var, x.var(0))  # unbiased, as the stock layer keeps it
    y = x * 2
    layer(y)  # later batches: the stock 10% update
    torch.testing.assert_close(layer.running_var, 0.9 * x.var(0) + 0.1 * y.var(0))
    restored = BatchNorm1d(8)
    restored.load_state_dict(layer.state_dict())
    restored.train()(x)  # a resumed run is already primed: no second first batch
    torch.testing.assert_close(restored.running_var, 0.9 * layer.running_var + 0.1 * x.var(0))


def test_an_mlp_on_tiny_inputs_predicts_in_eval_as_it_trained() -> None:
    """Inputs at the 1e-4 embedding init's scale: the stock layer's running variance starts at 1
    and stays thousands of times too large for ~100 steps, so eval mode flattens the MLP
    (the Frappe DCNv2 collapse); primed statistics keep eval close to training."""
    torch.manual_seed(0)
    x = torch.randn(512, 16) * 3e-3

    @torch.no_grad()
    def gap(mlp: nn.Module) -> float:
        mlp.train()
        for _ in range(5):
            mlp(x)
        train_out = mlp(x)
        mlp.eval()
        return float((mlp(x) - train_out).abs().mean() / train_out.abs().mean())

    torch.manual_seed(1)
    primed = MLP(16, (32, 32), batch_norm=True, out_dim=1)
    torch.manual_seed(1)
    stock = MLP(16, (32, 32), batch_norm=True, out_dim=1)
    stock[1] = nn.BatchNorm1d(32)
    stock[4] = nn.BatchNorm1d(32)
    assert gap(primed) < 0.05
    assert gap(stock) > 0.5  # the failure the priming removes


def test_embedding_init_follows_config() -> None:
    torch.manual_seed(0)
    layer = FeatureEmbedding(FeatureMeta(("a",), (20000,), ("x",)), 10, init_std=1e-4)
    assert layer.table.weight.std().item() == pytest.approx(1e-4, rel=0.05)


def test_dlrm_without_numeric_fields_skips_bottom_mlp() -> None:
    model = build_model(META_CAT, make_config("dlrm"))
    assert model.bottom is None
    model = build_model(META_MIXED, make_config("dlrm", interaction="cat"))
    assert model.bottom is not None
    cat, num = make_batch(META_MIXED, 8)
    assert model(cat, num).shape == (8,)


@pytest.mark.parametrize("structure", ["parallel", "stacked", "crossnet_only"])
@pytest.mark.parametrize("mix", [False, True])
def test_dcnv2_structures(structure: str, mix: bool) -> None:
    config = make_config("dcnv2", structure=structure, use_low_rank_mixture=mix, low_rank=4, num_experts=3)
    model = build_model(META_MIXED, config)
    cat, num = make_batch(META_MIXED, 16)
    out = model(cat, num)
    assert out.shape == (16,) and torch.isfinite(out).all()


def test_finalmlp_without_feature_selection_and_bad_context() -> None:
    model = build_model(META_MIXED, make_config("finalmlp", use_fs=False))
    cat, num = make_batch(META_MIXED, 8)
    assert model(cat, num).shape == (8,)
    with pytest.raises(ValueError, match="nope"):
        build_model(META_MIXED, make_config("finalmlp", fs1_context=("nope",)))


# --------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", NAMES)
def test_config_rejects_bad_values_and_unknown_keys(name: str) -> None:
    config_cls, _ = REGISTRY[name]
    with pytest.raises(ValidationError):
        config_cls(embedding_dim=0)
    with pytest.raises(ValidationError):
        config_cls(not_a_knob=1)
    dropout_fields = [f for f in config_cls.model_fields if f.endswith("dropout")]
    for field in dropout_fields:
        with pytest.raises(ValidationError):
            config_cls(**{field: 1.5})
    config = config_cls()
    with pytest.raises(ValidationError):  # frozen
        config.embedding_dim = 3  # type: ignore[misc]


def test_config_specific_validation() -> None:
    with pytest.raises(ValidationError):
        DCNv2Config(dropout=1.5)
    with pytest.raises(ValidationError):
        DCNv2Config(structure="sideways")
    with pytest.raises(ValidationError):
        DCNv2Config(activation="tanh")
    with pytest.raises(ValidationError):
        DCNv2Config(hidden_units=())
    with pytest.raises(ValidationError):
        FinalMLPConfig(mlp1_hidden_units=(400,), num_heads=3)
    with pytest.raises(ValidationError):
        REGISTRY["autoint_plus"][0](attention_dim=10, num_heads=3)
    assert DCNv2Config(hidden_units=[32, 16]).hidden_units == (32, 16)  # lists become tuples


def test_discriminated_union_picks_config_class() -> None:
    adapter = TypeAdapter(ModelConfigUnion)
    config = adapter.validate_python({"name": "dcnv2", "num_cross_layers": 2, "hidden_units": [64, 32]})
    assert isinstance(config, DCNv2Config)
    assert config.num_cross_layers == 2 and config.hidden_units == (64, 32)
    dlrm = adapter.validate_json('{"name": "dlrm", "interaction": "cat"}')
    assert isinstance(dlrm, DLRMConfig)
    for name in NAMES:
        assert type(adapter.validate_python({"name": name})) is REGISTRY[name][0]
        roundtrip = adapter.validate_json(REGISTRY[name][0]().model_dump_json())
        assert roundtrip == REGISTRY[name][0]()
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "dcnv2", "num_cross_layers": 99})
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "transformer9000"})


def test_union_covers_registry() -> None:
    union = typing.get_args(ModelConfigUnion)[0]
    members = typing.get_args(union)
    assert sorted(m.model_fields["name"].default for m in members) == NAMES
    for name, (config_cls, _) in REGISTRY.items():
        assert config_cls.model_fields["name"].default == name


@pytest.mark.parametrize("name", NAMES)
def test_schema_describes_every_knob(name: str) -> None:
    config_cls, _ = REGISTRY[name]
    schema = config_cls.model_json_schema()
    assert schema["properties"]["name"].get("const", schema["properties"]["name"].get("enum", [None])[0]) == name
    for field, prop in schema["properties"].items():
        if field == "name":
            continue
        assert prop.get("description"), f"{name}.{field} has no description"
        typed = "type" in prop or "enum" in prop or "anyOf" in prop or "const" in prop
        assert typed, f"{name}.{field} has no type in the schema"
    for field in ("embedding_dim", "dropout", "num_cross_layers"):
        if field in schema["properties"]:
            prop = schema["properties"][field]
            assert any(k in prop for k in ("minimum", "exclusiveMinimum")), f"{name}.{field} is unbounded"
            assert any(k in prop for k in ("maximum", "exclusiveMaximum")), f"{name}.{field} is unbounded"
