"""Target extraction throughput: the real pipeline against the bare model forward, in one run.

    python bench/targets.py [--model tiny|realistic|7b] [--frames 512] [--precision fp32|bf16|int8|int4]
                            [--rollouts FILE] [--out FILE.json]

For a random model built locally (the tiny Llava of the tests, a "realistic" Llava-style model
with SmolVLM-256M-like dimensions, or a "7b" one with Molmo-7B-D's sizes: a Qwen2-7B-sized
language model behind a CLIP ViT-L/14 at 336 px, one crop per frame), on frames of a freshly
collected rollout file (or of ``--rollouts``, collected beforehand: a GPU machine then needs no
MetaWorld):
  - processor: preprocessing alone (resize, image processor, tokenizer), frames/s;
  - bare:      model forward + pooling alone on the same, pre-built batches, frames/s;
  - pipeline:  `encode_rows` as the targets stage runs it (HDF5 reads, preprocessing, in a
               loader worker if asked, forward, float16 writes), frames/s, and its ratio to bare
               and to processor + bare run one after the other;
  - MFU on CUDA (forward FLOPs estimated as 2 x parameters x tokens).
Results go to docs/benchmarks.md by hand, with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch
import transformers

from promptlam.config import VLMTarget, validate_config
from promptlam.data.rollout_file import RolloutFile
from promptlam.data.target_file import TargetWriter
from promptlam.plan import H100_BF16_DENSE_FLOPS
from promptlam.targets import encode_rows
from promptlam.vlm.encoder import FrameEncoder
from promptlam.vlm.families import get_family
from promptlam.vlm.families.llava import build_llava

PROMPT = "Do not describe background features. Focus on the robot arm and the {object}."


def logical_size(parameter: torch.nn.Parameter) -> int:
    """Weights in a parameter, also when bitsandbytes packs two 4-bit weights into a byte."""
    state = getattr(parameter, "quant_state", None)
    return state.shape.numel() if state is not None else parameter.numel()


IMAGE_SIZES = {"tiny": 32, "realistic": 112, "7b": 336}


def build_model(name: str, folder: Path, device: str) -> int:
    """Save the random Llava called ``name`` in ``folder`` unless one is there; its image size."""
    if (folder / "config.json").exists():
        return IMAGE_SIZES[name]
    if name == "tiny":
        get_family("llava").build_tiny(folder)
    elif name == "realistic":  # SmolVLM-256M-like: 12-layer 768-wide vision and language models
        build_llava(folder, width=768, layers=12, heads=12, kv_heads=4, image=112, patch=14)
    else:
        build_7b_llava(folder, device)
    return IMAGE_SIZES[name]


def build_7b_llava(folder: Path, device: str) -> None:
    """Molmo-7B-D's sizes: CLIP ViT-L/14 (24 layers, 1024 wide) at 336 px before Qwen2-7B's language
    model (28 layers, 3584 wide, 28 heads, 4 key-value heads, MLP 18944); made in bf16 on a GPU."""
    build_llava(folder, width=1024, layers=24, heads=16, kv_heads=4, image=336, patch=14, text_width=3584,
                text_layers=28, text_heads=28, text_intermediate=18944,
                dtype=torch.bfloat16 if device == "cuda" else torch.float32, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "realistic", "7b"), default="tiny")
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model-folder", type=Path,
                        help="keep the random model here and reuse it on the next run (default: a temporary folder)")
    parser.add_argument("--rollouts", type=Path, help="a rollout file to read frames from (default: collect one)")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device = "cuda" if torch.cuda.is_available() else "cpu"

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = args.model_folder or tmp / "model"
        image_size = build_model(args.model, folder, device)
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()  # the peak below is extraction's, not the build's
        rollouts_path = args.rollouts or tmp / "reach-v3.h5"
        if not args.rollouts:
            from promptlam.data.collect import collect  # MetaWorld: only when collecting here

            config = validate_config({"rollouts": {"train_trajectories": 64, "labelled_budgets": [1]}})
            collect(config, "reach-v3", "train", rollouts_path, trajectories=max(2, args.frames // 30),
                    progress=False)
        with RolloutFile(rollouts_path) as rollouts:
            n = min(args.frames, rollouts.n_frames)
            frames = rollouts["frames/distracted"][:n]
            task = rollouts.task

        target = VLMTarget(kind="vlm", family="llava", model=str(folder), prompt=PROMPT, precision=args.precision,
                           image_size=image_size, batch_size=args.batch_size)
        encoder = FrameEncoder(target, device=device)
        text = encoder.model_text(task)
        starts = range(0, n, args.batch_size)

        began = time.perf_counter()
        batches = [encoder.preprocess(frames[s:s + args.batch_size], text) for s in starts]
        processor_fps = n / (time.perf_counter() - began)
        encoder.encode(batches[0])  # warm-up

        def timed(function) -> float:
            if device == "cuda":
                torch.cuda.synchronize()
            began = time.perf_counter()
            function()
            if device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - began

        bare_seconds = timed(lambda: [encoder.encode(batch) for batch in batches])
        frame_shape = tuple(encoder.encode(batches[0]).shape[1:])
        with TargetWriter(tmp / "out.h5", n, frame_shape, {"n_frames": n}) as writer:
            pipeline_seconds = timed(lambda: encode_rows(encoder, rollouts_path, 0, n, text, writer.write,
                                                         args.batch_size, args.workers, progress=False))
        bare_again = timed(lambda: [encoder.encode(batch) for batch in batches])
        bare_fps = n / ((bare_seconds + bare_again) / 2)
        tokens = int(batches[0]["input_ids"].shape[1])
        parameters = sum(logical_size(p) for p in encoder.model.parameters())

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {device}"
                   + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""),
        "model": args.model, "parameters_millions": round(parameters / 1e6, 1), "tokens_per_frame": tokens,
        "image_size": image_size, "precision": args.precision, "batch_size": args.batch_size, "frames": n,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(), "loader_workers": args.workers,
        "processor_frames_per_s": round(processor_fps, 1),
        "bare_forward_frames_per_s": round(bare_fps, 1),
        "bare_before_after_frames_per_s": [round(n / bare_seconds, 1), round(n / bare_again, 1)],
        "pipeline_frames_per_s": round(n / pipeline_seconds, 1),
        "ratio_pipeline_to_bare": round((n / pipeline_seconds) / bare_fps, 3),
        # Against processor and forward run one after the other: what is left is the pipeline's own
        # overhead (reads, writes, statistics, batching).
        "ratio_pipeline_to_processor_plus_bare": round((n / pipeline_seconds) * (1 / processor_fps + 1 / bare_fps), 3),
    }
    if device == "cuda":
        # Forward FLOPs against the chip's dense bf16 peak, also for int8/int4 (bitsandbytes
        # dequantises the weights and multiplies in the compute dtype).
        result["mfu_bf16_h100"] = round(2 * parameters * tokens * bare_fps / H100_BF16_DENSE_FLOPS, 4)
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
