"""The training loop of one stage: resumable, time-boxed, logged, evaluated, exported.

An invocation trains from the saved step (or 0) until `cfg.steps` or until its time budget
(`cfg.max_minutes`, minus what saving and the final evaluation need) runs out, then writes
`state.pt` (resumable) and `model/` (a loadable bf16 checkpoint). When the last step is done it also
evaluates on held-out videos and writes `eval.json`. Files in `cfg.out_dir`:

    state.pt  model/  loss_curve.json  loss_curve.png  eval.json  summary.json

    result = Trainer(cfg).run()      # {"status": "done" | "paused", "step": ..., ...}
"""
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from omnivideo.app.answer import SYSTEM_PROMPT
from omnivideo.engine.prompt import ChatFormat
from omnivideo.train.checkpoint import STATE_NAME, init_weights, load_state, save_state, set_rng_state
from omnivideo.train.config import TrainConfig, config_to_dict
from omnivideo.train.curve import write_curve
from omnivideo.train.evaluate import evaluate
from omnivideo.train.aux import AuxHeads
from omnivideo.train.batch import batch_answer_loss, batch_video_embeddings
from omnivideo.train.model import build_model, count_parameters, export_checkpoint
from omnivideo.train.optim import freeze_tower, make_optimizer, make_scheduler
from omnivideo.train.samples import sample_stream
from omnivideo.train.tokenizer import build_synth_tokenizer
from omnivideo.train.sparse_attention import install_sparse_training_attention, model_density
from omnivideo.train.vision_attention import install_batched_vision_attention

SAVE_RESERVE_S = 20.0       # time kept for the last state.pt + model/ export


class Trainer:
    def __init__(self, cfg: TrainConfig, resume_state: dict | None = None, started: float | None = None):
        self.cfg = cfg
        self.started = started or time.monotonic()
        self.out = Path(cfg.out_dir)
        self.device = torch.device(cfg.device)
        self.tokenizer = build_synth_tokenizer()
        self.chat = ChatFormat(self.tokenizer, system=SYSTEM_PROMPT)
        self.model = build_model(cfg.model, self.tokenizer, seed=cfg.seed)
        if resume_state is None and cfg.init_from:
            self.model.load_state_dict(init_weights(cfg.init_from))
        if resume_state is not None:
            self.model.load_state_dict(resume_state["model"])
        install_batched_vision_attention(self.model)
        if cfg.sparse_gamma > 0:
            from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams

            install_sparse_training_attention(self.model, SparseParams(gamma=cfg.sparse_gamma))
        self.model.to(self.device).train()
        if not cfg.train_tower:
            freeze_tower(self.model)
            self.model.model.visual.eval()
        self.aux = None
        if cfg.aux_weight > 0:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 1)
                self.aux = AuxHeads(cfg.model.hidden)
            if resume_state is not None:
                self.aux.load_state_dict(resume_state["extra"]["aux"])
            self.aux.to(self.device)
        self.optimizer = make_optimizer(self.model, cfg, extra=self.aux)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.step, self.history = 0, []
        if resume_state is not None:
            self._restore(resume_state)
        self.window: list[tuple[float, dict]] = []

    def _restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.lr_lambdas[0].total = self.cfg.steps   # a resume may extend the run
        self.step, self.history = state["step"], list(state["history"])
        set_rng_state(state["rng"])

    # -- one optimizer step -------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def train_step(self, samples) -> tuple[float, dict]:
        """Forward/backward over `samples` (accumulated), clip, step. Returns (loss, per-kind loss sums)."""
        kinds: dict[str, list[float]] = {}
        total = 0.0
        micro = self.cfg.micro_batch
        for chunk in (samples[i:i + micro] for i in range(0, len(samples), micro)):
            with self._autocast():
                embeds = batch_video_embeddings(self.model, chunk, self.device, self.cfg.train_tower)
                loss, per_target = batch_answer_loss(self.model, chunk, self.cfg.train_tower, self.device, embeds)
                density = model_density(self.model)
                if density is not None:       # training-aware sparsity: the kept share of this forward
                    kinds.setdefault("sparse_density", []).append(density)
                objective = loss
                if self.aux is not None:
                    labels = torch.cat([s.token_labels for s in chunk])
                    aux = self.aux.loss(embeds, labels)
                    objective = loss + self.cfg.aux_weight * aux
                    kinds.setdefault("aux", []).append(float(aux.detach()))
            (objective * len(chunk) / len(samples)).backward()
            total += float(loss.detach()) * len(chunk) / len(samples)
            for sample, losses in zip(chunk, per_target):
                for kind, value in zip(sample.target_kinds, losses.tolist()):
                    kinds.setdefault(kind, []).append(value)
        params = [p for p in self.model.parameters() if p.requires_grad]
        params += list(self.aux.parameters()) if self.aux is not None else []
        torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return total, {k: sum(v) / len(v) for k, v in kinds.items()}

    # -- bookkeeping --------------------------------------------------------------------------
    def _log(self, loss: float, kinds: dict, seconds: float) -> None:
        self.window.append((loss, kinds, seconds))
        if self.step % self.cfg.log_every and self.step != self.cfg.steps:
            return
        names = sorted({k for _, ks, _ in self.window for k in ks})
        row = {"step": self.step, "loss": sum(w[0] for w in self.window) / len(self.window),
               "lr": self.scheduler.get_last_lr()[0],
               "s_per_step": sum(w[2] for w in self.window) / len(self.window),
               "kinds": {k: sum(ks[k] for _, ks, _ in self.window if k in ks) /
                         sum(1 for _, ks, _ in self.window if k in ks) for k in names}}
        self.history.append(row)
        self.window = []

    def save(self) -> None:
        extra = {"aux": self.aux.state_dict()} if self.aux is not None else {}
        save_state(self.out / STATE_NAME, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                   step=self.step, history=self.history, config=config_to_dict(self.cfg), extra=extra)
        export_checkpoint(self.model, self.tokenizer, self.out / "model",
                          record={"stage": self.cfg.stage, "step": self.step, "config": config_to_dict(self.cfg)})
        write_curve(self.out, self.history, title=f"stage {self.cfg.stage}")

    def run_eval(self) -> dict:
        seeds = range(self.cfg.eval_seed, self.cfg.eval_seed + self.cfg.eval_videos)
        with tqdm(total=len(seeds), desc="eval", leave=False) as bar:
            report = evaluate(self.model, self.tokenizer, self.cfg.data, seeds, progress=bar.update)
        self.history.append({"step": self.step, "eval": report})
        return report

    def _time_left(self, reserve: float) -> bool:
        return time.monotonic() - self.started + reserve < self.cfg.max_minutes * 60

    # -- the loop -----------------------------------------------------------------------------
    def run(self, until_step: int | None = None) -> dict:
        """Train to `cfg.steps` (or pause at `until_step`, or when the time budget runs out)."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        params = count_parameters(self.model)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"stage {cfg.stage}", dynamic_ncols=True)
        stream = sample_stream(cfg, self.chat, first_step=self.step)
        step_s, status = 0.0, "done"
        eval_reserve = 0.0
        for samples in stream:
            # stop early enough to save (and, before the last step, to evaluate) inside the budget
            # (a held-out video costs about a step plus its render in this process, until measured)
            eval_cost = eval_reserve or cfg.eval_videos * (step_s / cfg.batch + 0.3)
            reserve = SAVE_RESERVE_S + 2 * step_s + eval_cost
            if not self._time_left(reserve) or (until_step is not None and self.step >= until_step):
                status = "paused"
                break
            t0 = time.monotonic()
            loss, kinds = self.train_step(samples)
            step_s = time.monotonic() - t0 if step_s == 0 else 0.9 * step_s + 0.1 * (time.monotonic() - t0)
            self._log(loss, kinds, time.monotonic() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.1e}")
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                t_eval = time.monotonic()
                self.run_eval()
                eval_reserve = time.monotonic() - t_eval
            if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save()
            if self.step >= cfg.steps:
                break
        bar.close()
        report = self.run_eval() if status == "done" and cfg.eval_videos else None
        self.save()
        summary = {"status": status, "stage": cfg.stage, "step": self.step, "steps": cfg.steps,
                   "parameters": params, "seconds": round(time.monotonic() - self.started, 1),
                   "s_per_step": round(step_s, 4), "out_dir": str(self.out), "eval": report}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        if report is not None:
            (self.out / "eval.json").write_text(json.dumps(report, indent=2))
        return summary
