import os
from pathlib import Path

import pytest

# Two threads, as on CI: results are only bit-reproducible across processes with the same
# thread count, and the resume test compares two processes.
os.environ.setdefault("OMP_NUM_THREADS", "2")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def _engine(request, start):
    """A session-wide cluster engine, started once (or reused) and stopped at the end."""
    engine, why = start()
    if engine is None:
        pytest.skip(why)
    saved = {k: os.environ.get(k) for k in engine.env}
    os.environ.update(engine.env)

    def stop():
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if engine.stop:
            import subprocess

            subprocess.run(engine.stop, capture_output=True, timeout=120)

    request.addfinalizer(stop)
    return engine


@pytest.fixture(scope="session")
def slurm_engine(request):
    from cluster_engines import start_slurm

    return _engine(request, start_slurm)


@pytest.fixture(scope="session")
def ray_engine(request):
    from cluster_engines import start_ray

    return _engine(request, start_ray)


@pytest.fixture(params=["slurm", "ray"])
def cluster_engine(request):
    """Each real cluster engine in turn."""
    return request.getfixturevalue(f"{request.param}_engine")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test` runs two workers), the tests that share one engine run
    on one worker: the cluster tests (one Slurm and one Ray per worker would fight over the
    machine, and `ray stop` ends every head on it) and those on the one PostgreSQL
    database (they drop its tables)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"slurm_engine", "ray_engine", "cluster_engine"}:
            item.add_marker(pytest.mark.xdist_group("cluster"))
        elif "postgresql" in getattr(getattr(item, "callspec", None), "id", ""):
            item.add_marker(pytest.mark.xdist_group("postgres"))
