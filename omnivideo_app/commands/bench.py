"""`bench ...`: benchmarks that write JSON + a report with a plot under docs/benchmarks/.

Each subcommand runs a module of `omnivideo_app.bench` as `python -m` would, with the remaining
arguments (`bench prefill --help` shows the module's own options).
"""
import importlib.util
import runpy
import sys

import click

BENCHES = {
    "prefill": ("omnivideo_app.bench.prefill_kernels",
                "OmniSparse prefill kernels vs SDPA over densities and lengths, plus recall/fidelity (GPU)."),
    "prefill-e2e": ("omnivideo_app.bench.prefill_e2e",
                    "End-to-end prefill of a random-weight 7B (NF4) at 32K/64K: dense vs sparse, by part (GPU)."),
    "slimming": ("omnivideo_app.bench.slimming",
                 "Decode-time KV slimming (mechanism 3): visual-KV size ratio and attention error."),
    "video": ("omnivideo_app.bench.video_sampling",
              "Sampling 64 frames from a generated 1-hour 1080p H.264 file vs decoding it through."),
    "cache": ("omnivideo_app.bench.cache_ttft",
              "Cold vs warm time to first token and KV load throughput against the disk's read speed."),
    "decode": ("omnivideo_app.bench.decode",
               "Decode ms/token at 8K-128K: ours (dense KV, slimmed) vs HF generate (GPU)."),
    "ingest": ("omnivideo_app.bench.ingest",
               "Cold time to first token by stage: ours vs transformers + bitsandbytes (GPU)."),
    "vision": ("omnivideo_app.bench.vision_tower",
               "Vision tower: one varlen attention launch per block vs transformers' sdpa loop (GPU)."),
    "capture": ("omnivideo_app.bench.capture",
                "Capture real Q/K from a checkpoint for the prefill benchmark."),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def register(cli, *, model_options, build_config):
    @cli.group()
    def bench():
        """Benchmarks (GPU for real numbers); each writes JSON + report + plot under docs/benchmarks/.

        Example: python launcher.py bench video --out docs/benchmarks/video
        """

    for name, (module, doc) in BENCHES.items():
        if not _available(module):
            continue

        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def command(args, _module=module, _name=name):
            saved = sys.argv
            sys.argv = [f"omnivideo bench {_name}", *args]
            try:
                runpy.run_module(_module, run_name="__main__", alter_sys=True)
            finally:
                sys.argv = saved

        command.__doc__ = f"{doc}\n\nArguments after the name go to `python -m {module}` (its options: `bench NAME -- --help`)."
        bench.command(name, context_settings={"ignore_unknown_options": True})(command)
