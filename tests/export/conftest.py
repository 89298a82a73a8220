import pytest

from tests.conftest import EXPORT_ARCHS, fine_tune_for_export


@pytest.fixture(scope="session", params=list(EXPORT_ARCHS))
def fine_tuned(request, tiny_catalog, tiny_patch_labels, tmp_path_factory):
    return fine_tune_for_export(request.param, tiny_catalog, tiny_patch_labels, tmp_path_factory)
