"""Learning-rate rule, optimizer choices and CPU bf16 autocast."""

import math

import pytest
import torch

from rankwright.ranking.config import validate_run_config
from rankwright.ranking.data import load_data
from rankwright.ranking.train.config import TrainConfig
from rankwright.ranking.train.optim import build_optimizer, learning_rate
from rankwright.ranking.train.trainer import Trainer


def test_warmup_is_linear_then_cosine_decays_to_the_floor():
    cfg = TrainConfig(learning_rate=0.01, warmup_steps=10, schedule="cosine", min_learning_rate=1e-4)
    rates = [learning_rate(cfg, step, 110, 1.0) for step in range(110)]
    assert rates[0] == pytest.approx(0.001) and rates[9] == pytest.approx(0.01)
    assert rates[10] == pytest.approx(0.01)
    assert rates[60] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[-1] >= 1e-4


def test_linear_and_plateau_rules():
    linear = TrainConfig(learning_rate=0.01, schedule="linear", min_learning_rate=0.0)
    assert learning_rate(linear, 50, 100, 1.0) == pytest.approx(0.005)
    plateau = TrainConfig(learning_rate=0.01, schedule="plateau")
    assert learning_rate(plateau, 99, 100, 0.1) == pytest.approx(0.001)


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                       ("adagrad", torch.optim.Adagrad)])
def test_optimizer_choice(name, cls):
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(params, TrainConfig(optimizer=name, weight_decay=0.01), torch.device("cpu"))
    assert type(opt) is cls and opt.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize("train", [
    {"optimizer": "adagrad", "learning_rate": 0.05},
    {"optimizer": "adamw", "learning_rate": 0.003, "weight_decay": 0.01, "schedule": "linear", "warmup_steps": 5},
    {"mixed_precision": "bf16"},
])
def test_training_variants_learn(tmp_path, train):
    config = validate_run_config({
        "data": {"source": "synthetic", "synthetic": {"rows": 10_000, "structure": "wide", "base_rate": 0.2,
                                                      "user_scale": 0.05, "ad_scale": 0.05}},
        "model": {"name": "dnn", "hidden_units": [32], "embedding_dim": 4},
        "train": {"epochs": 2, "batch_size": 256, "early_stopping_patience": None, **train},
    })
    data = load_data(config.data, cache_dir=None)
    result = Trainer(data, config.model, config.train).fit()
    assert result.valid.ne < 0.99 and result.valid.auc > 0.6
