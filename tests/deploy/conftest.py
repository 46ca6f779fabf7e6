"""The deployment as it is run: a copy of compose.yaml and k8s/ beside the secrets that
`natsbank deploy keys` writes (throwaway ones here, never the repository's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy import manifests


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding compose.yaml, k8s/ and k8s/secrets/ (generated)."""
    return manifests.deployment_copy(tmp_path_factory.mktemp("deployment"))


@pytest.fixture(scope="session")
def k8s(deployment: Path) -> list[dict]:
    """The manifests as `kubectl apply -k k8s/` would send them."""
    return manifests.render_k8s(deployment)
