import pytest

from tests.conftest import KGFLIP, tiny_params

ARCH = {"fashionvil": [], "kgflip": KGFLIP}
_MADE: dict = {}


def fine_tune_for_export(arch, tiny_catalog, tiny_patch_labels, tmp_path_factory):
    """Pre-trained (2 steps) and fine-tuned (3 steps) XMR, attribute and classification models, once per arch."""
    from fashionvlp.stages.finetune import finetune
    from fashionvlp.stages.pretrain import pretrain

    if arch not in _MADE:
        tmp = tmp_path_factory.mktemp(arch)
        params = tiny_params(tmp, *ARCH[arch], "pretrain.steps=2", "evaluation.allow_fallback=true")
        model_dir = pretrain(params, tiny_catalog, tiny_patch_labels).model_dir
        sources = {role: finetune(params, task, model_dir, tiny_catalog).model_dir
                   for role, task in {"retrieval": "xmr", "attributes": "attributes",
                                      "categories": "classification"}.items()}
        _MADE[arch] = (params, sources, tmp)
    return _MADE[arch]


@pytest.fixture(scope="session", params=list(ARCH))
def fine_tuned(request, tiny_catalog, tiny_patch_labels, tmp_path_factory):
    return fine_tune_for_export(request.param, tiny_catalog, tiny_patch_labels, tmp_path_factory)


@pytest.fixture(scope="session")
def fashionvil_bundle(tiny_catalog, tiny_patch_labels, tmp_path_factory):
    from fashionvlp.stages.export import export

    params, sources, tmp = fine_tune_for_export("fashionvil", tiny_catalog, tiny_patch_labels, tmp_path_factory)
    return params, export(params, sources, tiny_catalog, out=tmp / "registry-bundle").out
