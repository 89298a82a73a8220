"""Downstream tasks, one module each, behind a registry (``base.TASKS``). Importing this package
registers them all; each names the objectives it fine-tunes with (and owns their heads) and the
protocol that evaluates it."""

from fashionvlp.tasks import attributes, captioning, classification, ocir, tgir, xmr  # noqa: F401
from fashionvlp.tasks.base import TASKS, DownstreamTask, get_task  # noqa: F401
