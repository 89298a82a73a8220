"""Pre-training loop on HF Accelerate.

CPU by default (whatever device Accelerate finds); mixed precision, DDP, FSDP and multi-node come from
``accelerate launch`` configs. Gradient accumulation, warmup + decay from ``transformers.get_scheduler``,
a checkpoint every N optimizer steps, and exact resume: model, optimizer, scheduler, RNG states (via
``Accelerator.save_state``) plus the data position (epoch, batches done) in ``TrainState``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fashionvlp.config import PretrainConfig
from fashionvlp.env import fix_threads
from fashionvlp.progress import progress_bar

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"


@dataclass
class TrainState:
    step: int = 0             # optimizer steps done
    micro_step: int = 0       # batches done (drives the objective choice)
    epoch: int = 0
    batch_in_epoch: int = 0   # data position inside the epoch
    samples: int = 0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class TrainResult:
    state: TrainState
    history: list[dict] = field(default_factory=list)
    resumed_from: int | None = None
    finished: bool = False
    suite: object = None          # the unwrapped ObjectiveSuite, trained
    accelerator: object = None


def use_cpu() -> bool:
    """CPU when there is no GPU (or `accelerate launch --cpu`). Accelerate only forms a multi-process CPU
    group (gloo, e.g. under ``torchrun --nproc_per_node 2``) when told ``cpu=True``."""
    return not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")


def checkpoint_dirs(out: Path) -> list[Path]:
    return sorted((out / CHECKPOINTS).glob("step_*"), key=lambda p: int(p.name.removeprefix("step_")))


def _param_groups(suite, cfg: PretrainConfig) -> list[dict]:
    """Text/fusion BERT at lr; image encoder and projections at lr × lr_multiplier, the objectives' heads at
    lr × lr_multiplier × head_lr_multiplier; no decay on norms/biases."""
    base_ids = {id(p) for p in suite.model.text.parameters()}
    if hasattr(suite.model, "fusion"):
        base_ids |= {id(p) for p in suite.model.fusion.parameters()}
    head_ids = {id(p) for p in suite.objectives.parameters()}
    groups: dict[tuple[float, bool], list] = defaultdict(list)
    seen: set[int] = set()
    for name, param in suite.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        no_decay = param.ndim < 2 or "LayerNorm" in name or "norm" in name.lower()
        scale = 1.0 if id(param) in base_ids else \
            cfg.lr_multiplier * (cfg.head_lr_multiplier if id(param) in head_ids else 1.0)
        groups[(scale, no_decay)].append(param)
    return [{"params": params, "lr": cfg.lr * scale, "weight_decay": 0.0 if no_decay else cfg.weight_decay}
            for (scale, no_decay), params in groups.items()]


def train(suite, dataset, sampler, collate, cfg: PretrainConfig, out: Path, tracking=None, run_id: str | None = None,
          config_fingerprint: str = "", stop_after: int | None = None, label: str = "pretrain") -> TrainResult:
    """Trains ``suite`` until ``cfg.steps`` optimizer steps (or ``stop_after`` more steps in this call)."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from transformers import get_scheduler

    accelerator = Accelerator(cpu=use_cpu(), mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    threads = fix_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    # The loader's own generator: starting an iterator draws a worker base seed, and drawing it from the
    # global RNG would shift dropout and masking after a resume (samples are seeded per index anyway).
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=cfg.num_workers, drop_last=True, persistent_workers=False,
                        generator=torch.Generator().manual_seed(cfg.seed))
    if len(loader) == 0:
        raise ValueError(f"the training split has {len(dataset)} samples, fewer than one batch of {cfg.batch_size}")
    optimizer = torch.optim.AdamW(_param_groups(suite, cfg), lr=cfg.lr)
    # Accelerate steps a prepared scheduler once per process per optimizer step.
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=cfg.warmup_steps * accelerator.num_processes,
                              num_training_steps=cfg.steps * accelerator.num_processes)
    suite, optimizer, loader, scheduler = accelerator.prepare(suite, optimizer, loader, scheduler)
    state = TrainState()
    accelerator.register_for_checkpointing(state)

    out.mkdir(parents=True, exist_ok=True)
    fingerprint_file = out / "config_fingerprint.txt"
    result = TrainResult(state)
    if accelerator.is_main_process:
        for partial in (out / CHECKPOINTS).glob(".partial-*"):
            shutil.rmtree(partial, ignore_errors=True)
    existing = checkpoint_dirs(out)
    if existing and cfg.resume and fingerprint_file.exists() and fingerprint_file.read_text() == config_fingerprint:
        accelerator.load_state(str(existing[-1]))
        result.resumed_from = state.step
        log.info("resumed from %s (step %d, epoch %d, batch %d)", existing[-1], state.step, state.epoch,
                 state.batch_in_epoch)
    elif existing:
        log.warning("discarding %d checkpoint(s) in %s: %s", len(existing), out / CHECKPOINTS,
                    "resume is off" if not cfg.resume else "they were made with another config")
        shutil.rmtree(out / CHECKPOINTS)
    fingerprint_file.write_text(config_fingerprint)
    if tracking is not None and accelerator.is_main_process:
        tracking.log_params(run_id, {"repro.seed": cfg.seed, "repro.torch_threads": threads["torch_threads"],
                                     "repro.cpu_count": threads["cpu_count"], "repro.torch": torch.__version__,
                                     "repro.processes": accelerator.num_processes})
    history_file = out / "history.jsonl"
    history = [json.loads(line) for line in history_file.read_text().splitlines()] if history_file.exists() else []
    history = [row for row in history if row["step"] <= state.step]  # drop rows past the checkpoint
    history_file.write_text("".join(json.dumps(r) + "\n" for r in history))
    result.history = history

    unwrapped = accelerator.unwrap_model(suite)
    window: dict[str, list[float]] = defaultdict(list)
    window_start, window_samples = time.perf_counter(), 0
    target = cfg.steps if stop_after is None else min(cfg.steps, state.step + stop_after)
    bar = progress_bar(cfg.steps, label, initial=state.step, disable=not accelerator.is_local_main_process)
    base_sampler = sampler
    while state.step < target:
        base_sampler.set_epoch(state.epoch)
        dataset.set_epoch(state.epoch)
        batches = accelerator.skip_first_batches(loader, state.batch_in_epoch) if state.batch_in_epoch else loader
        for batch in batches:
            names = unwrapped.choose(state.micro_step)
            with accelerator.accumulate(suite):
                loss, logs = suite(batch, names)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(suite.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state.micro_step += 1
            state.batch_in_epoch += 1
            batch_samples = len(batch["index"]) * accelerator.num_processes
            state.samples += batch_samples
            window_samples += batch_samples
            for key, value in logs.items():
                window[key].append(float(value.detach()))
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            bar.update(1)
            if state.step % cfg.log_every == 0 or state.step == target:
                elapsed = time.perf_counter() - window_start
                row = {"step": state.step, "epoch": state.epoch, "lr": scheduler.get_last_lr()[0],
                       "samples_per_s": window_samples / max(elapsed, 1e-9),
                       **{k: sum(v) / len(v) for k, v in window.items()}}
                if accelerator.is_main_process:
                    history.append(row)
                    with history_file.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    if tracking is not None:
                        tracking.log_metrics(run_id, {k: v for k, v in row.items() if k != "step"}, step=state.step)
                bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.startswith("loss/")})
                window.clear()
                window_start, window_samples = time.perf_counter(), 0
            if state.step % cfg.checkpoint_every == 0 or state.step == target:
                _save_checkpoint(accelerator, out, state.step, cfg.keep_checkpoints)
            if state.step >= target:
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
    bar.close()
    result.finished, result.suite, result.accelerator = state.step >= cfg.steps, unwrapped, accelerator
    return result


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> None:
    path = out / CHECKPOINTS / f"step_{step:07d}"
    if path.exists():
        return
    # Written under another name and renamed when complete: a process killed mid-save leaves only a
    # partial directory, which resume never picks up.
    partial = path.with_name(f".partial-{path.name}")
    # Pickled state: the shared TE/FE and tied heads are the same tensors, which safetensors would drop.
    accelerator.save_state(str(partial), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        os.replace(partial, path)
        for old in checkpoint_dirs(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
