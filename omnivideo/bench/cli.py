"""`omnivideo bench ...`: every benchmark as one command of one click group.

Each command configures its benchmark's dataclass from its options and runs it through the shared
tail (omnivideo/bench/runner.py): JSON + report.md + plot under --out (docs/benchmarks/<area> by
default), rewritten after each measured size so a run cut short keeps what it measured. Benchmark
modules are imported inside their command: `omnivideo --help` stays fast and a CPU machine never
imports what only a GPU run needs.

    omnivideo bench decode --small --out /tmp/decode       # CPU schema check
    omnivideo bench ingest --tokens 32768 65536 --no-hf    # on a GPU
    omnivideo bench ingest --family qwen3_vl --tokens 32768 --video ''   # Qwen3-VL-8B shapes
"""
import json
import os
from dataclasses import replace
from pathlib import Path

import click
import torch

from omnivideo.bench.runner import (BenchCommand, finish, from_json_option, out_option, print_targets,
                                    small_option)


@click.group()
def bench():
    """Benchmarks (GPU for real numbers); each writes JSON + report + plot under docs/benchmarks/.

    Example: python launcher.py bench video --out docs/benchmarks/video
    """


def _given(**values) -> dict:
    """The options the user gave (None / empty left out), repeatable ones as tuples."""
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items() if v not in (None, ())}


def _interpret_on_cpu() -> None:
    # CPU runs of the kernel benches use the Triton interpreter, which must be on before kernels are imported
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


@bench.command("prefill-selection", cls=BenchCommand)
@click.argument("qk", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@out_option("docs/benchmarks/prefill/selection")
@click.option("--chunk", type=int, default=4096, show_default=True, help="Prefill chunk (the engine's).")
@click.option("--min-keys", type=int, default=4096, show_default=True, help="Fewer keys: the chunk runs dense.")
@click.option("--rows", type=int, default=96, show_default=True, help="Sampled query rows per chunk.")
@click.option("--frame-tokens", type=int, default=256, show_default=True,
              help="Visual tokens of one frame group (sets the local window: 2x, >= 512).")
def prefill_selection(qk, out, chunk, min_keys, rows, frame_tokens):
    """OmniSparse selection on a `bench capture` file, chunked as the engine runs it (CPU or GPU)."""
    _interpret_on_cpu()
    from omnivideo.bench.prefill.selection import SelectionConfig, run_selection

    run_selection(qk, out, SelectionConfig(chunk=chunk, min_keys=min_keys, rows=rows, frame_tokens=frame_tokens))


@bench.command("prefill", cls=BenchCommand)
@out_option("docs/benchmarks/prefill")
@small_option("toy sizes that run on CPU")
@click.option("--lengths", default=None, help="Comma-separated token counts, e.g. 16384,32768.")
@click.option("--qk", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Q/K/V written by `bench capture`: measure on it instead of the structured workload.")
@click.option("--densities", default=None, help="Comma-separated forced densities, e.g. 0.25,0.5.")
def prefill(out, small, lengths, qk, densities):
    """OmniSparse prefill kernels vs SDPA over densities and lengths, plus recall/fidelity (GPU)."""
    _interpret_on_cpu()
    from omnivideo.bench.prefill.kernels import run_kernel_bench

    result = run_kernel_bench(tuple(int(x) for x in lengths.split(",")) if lengths else None,
                              tuple(float(x) for x in densities.split(",")) if densities else None,
                              out_dir=out, small=small, qk=qk)
    print_targets(result["targets"])


@bench.command("prefill-e2e", cls=BenchCommand)
@out_option("docs/benchmarks/prefill")
@small_option()
@click.option("--lengths", type=int, multiple=True, help="Visual tokens, multiples of 256.")
@click.option("--densities", type=float, multiple=True, help="Extra forced densities.")
@click.option("--chunk-size", type=int, default=None, help="Prefill chunk (engine default 4096).")
@click.option("--repeats", type=int, default=None, help="Runs per variant; the last is reported.")
@click.option("--no-before", is_flag=True, help="Skip the masked dense path.")
@from_json_option("prefill_e2e.json")
def prefill_e2e(out, small, lengths, densities, chunk_size, repeats, no_before, from_json):
    """End-to-end prefill of a random-weight 7B (NF4) at 32K/64K: dense vs sparse, by part (GPU)."""
    from omnivideo.bench.prefill.e2e import SMALL, E2EConfig, run
    from omnivideo.bench.prefill.e2e_report import write_e2e_report

    if from_json:
        write_e2e_report(json.loads(from_json.read_text()), out)
        return
    cfg = replace(SMALL if small else E2EConfig(), **_given(lengths=lengths, densities=densities,
                                                            chunk_size=chunk_size, repeats=repeats))
    result = run(replace(cfg, before=False) if no_before else cfg, out)
    print_targets(result["acceptance"], digits=2)


@bench.command("slimming", cls=BenchCommand)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder (default docs/benchmarks/slimming, and its captured/ subfolder with --qk).")
@click.option("--frames", type=int, default=None, help="Frame groups of the structured workload.")
@click.option("--layers", type=int, default=None, help="Independent layers of the structured workload.")
@click.option("--seed", type=int, default=None)
@click.option("--qk", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A `bench capture --question ... --answer-tokens N` file: real Q/K instead of the workload.")
def slimming(out, frames, layers, seed, qk):
    """Decode-time KV slimming (mechanism 3): visual-KV size ratio and attention error."""
    _interpret_on_cpu()
    torch.set_num_threads(os.cpu_count() or 1)
    from omnivideo.bench.slimming.report import report_markdown, write_report
    from omnivideo.bench.slimming.slimming import SlimmingBench, run

    config = SlimmingBench(**_given(frames=frames, layers=layers, seed=seed))
    if qk is not None:
        from omnivideo.bench.slimming.captured import captured_slimming

        config, inputs, workload = captured_slimming(qk, config)
        result = run(config, inputs, workload)
    else:
        result = run(config)
    write_report(result, out or Path("docs/benchmarks/slimming") / ("captured" if qk is not None else ""))
    click.echo(report_markdown(result))


@bench.command("video", cls=BenchCommand)
@out_option("docs/benchmarks/video")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the generated 1-hour video is kept between runs (default: a temp folder).")
@click.option("--video", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Benchmark this file instead of the generated one.")
def video(out, work, video):
    """Sampling 64 frames from a generated 1-hour 1080p H.264 file vs decoding it through (CPU, ~6 min)."""
    from omnivideo.bench.video.sampling import DEFAULT_WORK, make_hour_video, run_bench

    result = (run_bench(video, out) if video else
              run_bench(make_hour_video(work or DEFAULT_WORK), out, keyint=250))
    print_targets(result["targets"], digits=2)


@bench.command("cache", cls=BenchCommand)
@out_option("docs/benchmarks/cache")
@click.option("--model", default="tiny", show_default=True)
@click.option("--tokens", type=int, default=65536, show_default=True, help="Target visual tokens (the clip is sized for it).")
@click.option("--seconds", type=float, default=256.0, show_default=True)
@click.option("--fps", type=float, default=2.0, show_default=True)
@click.option("--attention", default="dense", show_default=True)
@click.option("--repeats", type=int, default=2, show_default=True)
@click.option("--disk-gib", type=float, default=1.0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def cache(out, **settings):
    """Cold vs warm time to first token and KV load throughput against the disk's read speed."""
    from omnivideo.bench.cache.ttft import CacheBench, run

    result = run(CacheBench(**settings), out)
    click.echo(f"cold {result['cold_ttft_s']:.3f}s  warm {result['warm_ttft_s']:.3f}s  "
               f"ratio {result['warm_over_cold']:.3f}  ({result['visual_tokens']} visual tokens)")


@bench.command("decode", cls=BenchCommand)
@out_option("docs/benchmarks/decode")
@small_option("tiny model on CPU, two short contexts")
@click.option("--contexts", type=int, multiple=True, help="Context lengths in tokens.")
@click.option("--new-tokens", type=int, default=None, help="Timed decode steps per variant.")
@click.option("--stream-context", type=int, default=None, help="Host-memory prefix tokens (0 skips).")
@click.option("--no-hf", is_flag=True, help="Skip the HF generate baseline.")
@click.option("--family", type=click.Choice(["qwen2_5_vl", "qwen3_vl"]), default="qwen2_5_vl", show_default=True,
              help="Model shapes: Qwen2.5-VL-7B or Qwen3-VL-8B (random weights; with --small the tiny model of it).")
@from_json_option("decode.json")
def decode(out, small, contexts, new_tokens, stream_context, no_hf, family, from_json):
    """Decode ms/token at 8K-128K: ours (dense KV, slimmed) vs HF generate (GPU)."""
    from omnivideo.bench.decode.decode import SMALL, DecodeBench, run
    from omnivideo.bench.decode.report import report_markdown, write_report

    base = SMALL if small else DecodeBench()
    if family == "qwen3_vl":
        base = replace(base, size="tiny-qwen3-vl" if small else "qwen3-vl-8b")
    config = replace(base, hf=base.hf and not no_hf,
                     **_given(contexts=contexts, new_tokens=new_tokens, stream_context=stream_context))
    finish(out, from_json, config, run, write_report, report_markdown)


@bench.command("ingest", cls=BenchCommand)
@out_option("docs/benchmarks/ingest")
@small_option("tiny model on CPU, two short sizes")
@click.option("--tokens", type=int, multiple=True, help="Visual token counts.")
@click.option("--repeats", type=int, default=None, help="Timed runs per (variant, size) after the warm-up.")
@click.option("--video", default=None, help="The end-to-end video file ('' skips it).")
@click.option("--no-hf", is_flag=True, help="Skip the transformers baseline.")
@click.option("--force-density", type=float, default=None, help="Bench only: sparse prefill keeps this share of blocks.")
@click.option("--preset", "presets", type=click.Choice(["dense", "balanced", "fast"]), multiple=True,
              help="Attention presets of our variants (default dense and balanced).")
@click.option("--prefill-linears", "linears", type=click.Choice(["bf16", "fp8"]), multiple=True,
              help="Prefill linears per preset (default bf16; fp8 adds ours_<preset>_fp8).")
@click.option("--family", type=click.Choice(["qwen2_5_vl", "qwen3_vl"]), default="qwen2_5_vl", show_default=True,
              help="Model shapes: Qwen2.5-VL-7B or Qwen3-VL-8B (random weights, NF4; with --small the tiny model of it).")
@from_json_option("ingest.json")
def ingest(out, small, tokens, repeats, video, no_hf, force_density, presets, linears, family, from_json):
    """Cold time to first token by stage: ours vs transformers + bitsandbytes (GPU)."""
    from omnivideo.bench.ingest.ingest import SMALL, IngestBench, run, with_family
    from omnivideo.bench.ingest.report import report_markdown, write_report

    base = with_family(SMALL if small else IngestBench(), family)
    config = replace(base, hf=base.hf and not no_hf, **_given(tokens=tokens, repeats=repeats,
                                                              force_density=force_density, presets=presets,
                                                              linears=linears))
    if video is not None:
        config = replace(config, video=video or None)
    finish(out, from_json, config, run, write_report, report_markdown)


@bench.command("vision", cls=BenchCommand)
@out_option("docs/benchmarks/vision")
@small_option("tiny model on CPU, two small videos")
@click.option("--tokens", type=int, multiple=True, help="Visual token counts.")
@click.option("--repeats", type=int, default=None, help="Timed runs per variant and size.")
@click.option("--no-sdpa", is_flag=True, help="Skip transformers' sdpa baseline.")
@from_json_option("vision.json")
def vision(out, small, tokens, repeats, no_sdpa, from_json):
    """Vision tower: one varlen attention launch per block vs transformers' sdpa loop (GPU)."""
    from omnivideo.bench.vision.report import report_markdown, write_report
    from omnivideo.bench.vision.tower import SMALL, VisionBench, run

    base = SMALL if small else VisionBench()
    config = replace(base, sdpa=base.sdpa and not no_sdpa, **_given(tokens=tokens, repeats=repeats))
    finish(out, from_json, config, run, write_report, report_markdown)


@bench.command("capture", cls=BenchCommand)
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="safetensors file to write.")
@click.option("--model", default="tiny", show_default=True, help="Hub id, checkpoint dir or tiny.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="OmniVideo data dir (models are under it).")
@click.option("--layers", type=int, multiple=True, help="Decoder layers (default: first, middle, last).")
@click.option("--kv-heads", type=int, default=None, help="Keep the first n KV heads and their query groups.")
@click.option("--max-tokens", type=int, default=None, help="Keep the first n prefix tokens.")
@click.option("--question", default=None, help="Also capture this question's turn (for `bench slimming --qk`).")
@click.option("--answer-tokens", type=int, default=0, show_default=True, help="Greedy tokens decoded after the question.")
@click.option("--fps", type=float, default=2.0, show_default=True)
@click.option("--max-frames", type=int, default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--quant", default="auto", show_default=True)
def capture(video, out, model, data_dir, layers, kv_heads, max_tokens, question, answer_tokens, **load):
    """Capture real Q/K/V of a video prefix (and a question's turn) from any checkpoint."""
    from omnivideo.bench.capture import CaptureConfig, capture as run_capture

    config = CaptureConfig(layers=tuple(layers) or None, kv_heads=kv_heads, max_tokens=max_tokens,
                           question=question, answer_tokens=answer_tokens)
    click.echo(json.dumps(run_capture(video, out, model=model, data_dir=data_dir, config=config, **load)))


@bench.command("accuracy", cls=BenchCommand)
@click.argument("questions", type=click.Path(dir_okay=False, path_type=Path))
@out_option("docs/benchmarks/accuracy")
@click.option("--model", default="synth", show_default=True, help="Hub id, local checkpoint dir, or an alias.")
@click.option("--attention", type=click.Choice(["dense", "balanced", "fast"]), default="dense", show_default=True)
@click.option("--gamma-decode", type=float, default=1.0, show_default=True)
@click.option("--fps", type=float, default=2.0, show_default=True)
@click.option("--max-frames", type=int, default=None)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto", show_default=True)
@click.option("--quant", type=click.Choice(["auto", "nf4", "none"]), default="auto", show_default=True)
@click.option("--max-new-tokens", type=int, default=24, show_default=True)
@click.option("--limit", type=int, default=None, help="Ask only the first N questions.")
@click.option("--prefill-linears", type=click.Choice(["bf16", "fp8"]), default="bf16", show_default=True,
              help="The video prefill's linears (fp8: FP8 tensor cores, emulated on a CPU).")
@from_json_option("accuracy.json")
@click.pass_context
def accuracy(ctx, questions, out, from_json, **settings):
    """Accuracy of any checkpoint and setting on a questions JSONL (synthetic kinds or multiple choice).

    Example: python launcher.py bench accuracy heldout/questions.jsonl --model synth --attention balanced
    """
    from omnivideo.bench.accuracy.harness import AccuracyBench, run
    from omnivideo.bench.accuracy.report import report_markdown, write_report

    data_dir = ctx.find_root().obj["data_dir"]
    config = AccuracyBench(questions=questions, **settings)
    finish(out, from_json, config, lambda bench, on_progress: run(bench, data_dir, on_progress), write_report,
           report_markdown)
