import pytest
import torch

from benchlab import plugins


@pytest.fixture(scope="session")
def registry():
    return plugins.get_registry()


@pytest.fixture(scope="session")
def digits(registry):
    return registry.create("datasets", "digits").load()


@pytest.fixture(autouse=True)
def _single_thread_determinism():
    # Tests compare numbers across runs: keep torch's thread count fixed. One thread: the suite also
    # runs subprocesses and worker pools, and oversubscribing 2 cores slows small models 10x.
    torch.set_num_threads(1)
    yield


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
