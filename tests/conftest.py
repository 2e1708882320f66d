import os
import signal
from pathlib import Path

import pytest

# Two threads, as on CI: results are only bit-reproducible across processes with the same
# thread count, and the resume test compares two processes.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# A shell's background job (`make test &`, nohup) starts with SIGINT ignored, and the agents
# the tests start would inherit that and ignore the Ctrl-C a test sends them: restore it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """An empty store's URL on each backend: a SQLite file, and the PostgreSQL server CI
    starts (RANKWRIGHT_TEST_POSTGRES), its tables dropped first."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rankwright.db'}"
    url = os.environ.get("RANKWRIGHT_TEST_POSTGRES")
    if not url:
        pytest.skip("RANKWRIGHT_TEST_POSTGRES is not set: no PostgreSQL server for this run")
    from sqlalchemy import create_engine

    from rankwright.store.models import Base

    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    return url


def _reload_ray_auth() -> None:
    """Ray reads its authentication settings once, when first used in a process: where a
    test imported Ray before the head's token was known, make it read them again."""
    import sys

    if "ray" in sys.modules:
        from ray._private.authentication_test_utils import reset_auth_token_state

        reset_auth_token_state()


def _engine(request, start):
    """A session-wide cluster engine, started once (or reused) and stopped at the end."""
    engine, why = start()
    if engine is None:
        pytest.skip(why)
    saved = {k: os.environ.get(k) for k in engine.env}
    os.environ.update(engine.env)
    _reload_ray_auth()

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
    """Each real cluster engine in turn, answering: a test after an outage test waits for the
    engine to take work again (Ray's job server comes back after its head)."""
    import time

    from cluster_engines import answers

    engine = request.getfixturevalue(f"{request.param}_engine")
    deadline = time.time() + 120
    while not answers(engine) and time.time() < deadline:
        time.sleep(1.0)
    return engine



def pytest_collection_modifyitems(config, items):
    """The tests on a real cluster engine are marked `cluster`: `make test` runs them in a
    process of their own after the rest (one Slurm and one Ray for the session; beside
    another worker's load Ray's job starts slow down past what the chaos test allows, and
    `ray stop` ends every head on the machine). The rest run on two pytest-xdist workers,
    where the tests on the one PostgreSQL database share a worker (they drop its tables)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"slurm_engine", "ray_engine", "cluster_engine"}:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.xdist_group("cluster"))
        elif "postgresql" in getattr(getattr(item, "callspec", None), "id", ""):
            item.add_marker(pytest.mark.xdist_group("postgres"))
