"Shared fixtures for the repository-level tests."
import sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def root(): return ROOT

@pytest.fixture
def venv_bin(): return Path(sys.executable).parent
