"""Validating a run config and reading the knob schema never import PyTorch.

A `rankwright wake` does both and must stay light (torch costs about 1 s and 250 MB), so the
model configs live in torch-free modules (`models._config`, `models.configs`) and the
trainer alone pairs them with their torch modules (`REGISTRY`).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from rankwright.ranking.models import MODEL_CONFIGS, REGISTRY, DNNConfig, configs

LIGHT = {
    "validate_run_config and knob_schema": (
        "from rankwright.ranking.config import validate_run_config\n"
        "from rankwright.ranking.knobs import knob_schema\n"
        "knob_schema('dcnv2')\n"
        "validate_run_config({'model': {'name': 'dcnv2'}}, source='x')\n"
        "from rankwright.ranking.errors import ConfigError\n"
        "for bad in ({'model': {'name': 'nope'}}, {'model': {'name': 'dcnv2', 'bogus': 1}}):\n"
        "    try:\n"
        "        validate_run_config(bad, source='x')\n"
        "    except ConfigError:\n"
        "        pass\n"
    ),
    "the model configs": "from rankwright.ranking.models import MODEL_CONFIGS, DCNv2Config, ModelConfigUnion",
    "the data and train configs": (
        "from rankwright.ranking.data import DataConfig, DataError\n"
        "from rankwright.ranking.train.config import TrainConfig"
    ),
    "a campaign's data shape, on file data and on the synthetic log": (
        "import pathlib, tempfile\n"
        "from rankwright.targets import builtin_target\n"
        "folder = pathlib.Path(tempfile.mkdtemp())\n"
        "(folder / 'train.csv').write_text('label,a,b\\n' + '1,x,y\\n0,z,y\\n' * 50)\n"
        "data = {'source': 'csv', 'train': str(folder / 'train.csv'),\n"
        "        'schema': {'label': 'label', 'categorical': ['a', 'b']}}\n"
        "assert builtin_target('dnn', {'data': data}).data_shape(1000.0)[:2] == (80.0, 2)\n"
        "assert builtin_target('dcnv2').data_shape()[1] > 0\n"
    ),
    "loading a campaign spec, as every wake does": (
        "import pathlib, tempfile\n"
        "from rankwright.agent.spec import load_campaign\n"
        "path = pathlib.Path(tempfile.mkdtemp()) / 'c.yaml'\n"
        "path.write_text('name: c\\nbudget: {amount: 1.0}\\n')\n"
        "load_campaign(path)\n"
    ),
}


def _imported_modules(code: str) -> list[str]:
    """Every module the code imports, in order, as `python -X importtime` reports them."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "python -X importtime printed nothing"
    return [line.rsplit("|", 1)[-1].strip() for line in lines[1:]]  # lines[0] is the header


@pytest.mark.parametrize("what", sorted(LIGHT))
def test_never_imports_torch(what):
    modules = _imported_modules(LIGHT[what])
    assert "pydantic" in modules  # the probe sees the imports
    heavy = [m for m in modules if m == "torch" or m.startswith("torch.")]
    assert not heavy, f"importing {what} loads PyTorch ({heavy[0]})"


def test_the_probe_sees_torch():
    """The check above can fail: the trainer's side does load torch."""
    assert "torch" in _imported_modules("from rankwright.ranking.models import REGISTRY")


def test_registry_pairs_every_model_with_its_torch_free_config():
    assert {name: config_cls for name, (config_cls, _) in REGISTRY.items()} == MODEL_CONFIGS
    assert sorted(MODEL_CONFIGS) == ["autoint_plus", "dcnv2", "deepfm", "dlrm", "dnn", "finalmlp", "fm", "lr"]


def test_old_import_paths_still_work():
    from rankwright.ranking.models._base import ModelConfig
    from rankwright.ranking.models.autoint import AutoIntPlusConfig
    from rankwright.ranking.models.dcnv2 import DCNv2Config
    from rankwright.ranking.models.dlrm import DLRMConfig
    from rankwright.ranking.models.dnn import DeepFMConfig
    from rankwright.ranking.models.dnn import DNNConfig as from_dnn
    from rankwright.ranking.models.finalmlp import FinalMLPConfig
    from rankwright.ranking.models.linear import FMConfig, LRConfig

    assert from_dnn is DNNConfig is configs.DNNConfig
    assert ModelConfig is configs.ModelConfig
    for cls in (AutoIntPlusConfig, DCNv2Config, DLRMConfig, DeepFMConfig, FinalMLPConfig, FMConfig, LRConfig):
        assert MODEL_CONFIGS[cls.model_fields["name"].default] is cls


def test_a_wake_with_nothing_to_decide_loads_neither_scipy_nor_alembic(tmp_path):
    """Opening a store that is at head and importing the wake's modules: no SciPy (a t
    quantile is imported when first needed), no Alembic (the revision is one query), no
    Optuna (exploitation imports it when it samples), no PyTorch."""
    from rankwright.store import open_store

    url = f"sqlite:///{tmp_path / 'at-head.db'}"
    open_store(url)  # created and upgraded here, in this process
    modules = _imported_modules(
        f"from rankwright.store import open_store\nopen_store({url!r}).campaign('c')\n"
        "import rankwright.agent.wake, rankwright.agent.decide, rankwright.agent.observe, rankwright.cli.campaign\n")
    assert "sqlalchemy" in modules  # the probe sees the imports
    heavy = [m for m in modules if m.split(".")[0] in ("scipy", "alembic", "optuna", "torch")]
    assert not heavy, f"a wake loads {heavy[:3]}"
