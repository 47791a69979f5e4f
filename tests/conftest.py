from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hf_config_dir() -> Path:
    return FIXTURES / "hf_configs"
