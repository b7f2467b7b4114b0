"""Throughput of the vision-language metrics vs the bare image + text encoder forward; peak RSS.

    python benchmarks/alignment.py [--full] [--metrics clipscore,clipiqa,...] [--size 512]

Random weights (seeded), in the official checkpoint format. clipscore (ViT-B/32) and clipiqa
(RN50) always use their real architectures; pickscore, hpsv2 (ViT-H/14), imagereward and blipscore
(BLIP ViT-L) use the real ones with ``--full`` and reduced-depth configs of the same family
otherwise (a 2-core CPU needs minutes per ViT-H batch). For batch sizes 1 and 16 it prints
images/s of ``metric.score`` (decoding nothing: images are uint8 arrays; preprocessing,
tokenisation, scoring included) and of the bare encoders on ready tensors, the overhead
(score time / bare time − 1; CPU time of the process, which a shared, busy machine disturbs less
than wall time; wall in brackets) and the process's peak RSS. Each metric runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = ("clipscore", "clipiqa", "pickscore", "hpsv2", "imagereward", "blipscore")


def build(name: str, full: bool, tmp: Path):
    """(metric, bare(images, prompts) -> callable timing only the encoders)."""
    import open_clip
    import torch

    torch.manual_seed(0)
    if name in ("clipscore", "clipiqa", "hpsv2"):
        arch = {"clipscore": "ViT-B-32", "clipiqa": "RN50", "hpsv2": "ViT-H-14"}[name]
        if name == "hpsv2" and not full:
            arch = "ViT-H-14-bench"
            cfg = {"embed_dim": 1024, "vision_cfg": {"image_size": 224, "layers": 4, "width": 1280,
                                                     "head_width": 80, "patch_size": 14},
                   "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024,
                                "heads": 16, "layers": 4}}
            (tmp / f"{arch}.json").write_text(json.dumps(cfg))
            open_clip.add_model_config(tmp / f"{arch}.json")
        model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=name != "hpsv2")
        torch.save({"state_dict": model.state_dict()}, tmp / "w.pt")
        if name == "clipscore":
            from aigiqa.metrics.alignment.clipscore import CLIPScore as cls
            metric = cls(checkpoint=str(tmp / "w.pt"))
        elif name == "clipiqa":
            from aigiqa.metrics.alignment.clipiqa import CLIPIQA as cls
            metric = cls(checkpoint=str(tmp / "w.pt"))
        else:
            from aigiqa.metrics.alignment.hpsv2 import HPSv2 as cls
            metric = cls(checkpoint=str(tmp / "w.pt"), model=arch)
    elif name == "pickscore":
        import transformers

        from aigiqa.metrics.alignment.pickscore import PickScore, clip_h_config

        config = clip_h_config()
        if not full:
            config.vision_config.num_hidden_layers = 4
            config.text_config.num_hidden_layers = 4
        transformers.CLIPModel(config).save_pretrained(tmp / "pick")
        metric = PickScore(checkpoint=str(tmp / "pick"))
    else:
        metric = _blip_metric(name, full, tmp)
    return metric


def _blip_metric(name: str, full: bool, tmp: Path):
    import torch
    from transformers import BlipTextConfig, BlipVisionConfig
    from transformers.models.blip.modeling_blip import BlipVisionModel
    from transformers.models.blip.modeling_blip_text import BlipTextModel

    from aigiqa.metrics.alignment._blip import official_name
    from aigiqa.metrics.alignment.blipscore import BLIPScore
    from aigiqa.metrics.alignment.imagereward import ImageReward, mlp_head

    depth, text_depth = (24, 12) if full else (4, 4)
    vision = BlipVisionModel(BlipVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=depth, num_attention_heads=16,
        image_size=224, patch_size=16, layer_norm_eps=1e-6))
    text = BlipTextModel(BlipTextConfig(
        vocab_size=30524, hidden_size=768, encoder_hidden_size=1024, intermediate_size=3072,
        num_hidden_layers=text_depth, num_attention_heads=12, is_decoder=True,
        bos_token_id=None, sep_token_id=None), add_pooling_layer=False)
    state = {official_name("vision." + k): v for k, v in vision.state_dict().items()}
    state.update({official_name("text." + k): v for k, v in text.state_dict().items()})
    for proj, width in (("vision_proj", 1024), ("text_proj", 768)):
        layer = torch.nn.Linear(width, 256)
        state[f"{proj}.weight"], state[f"{proj}.bias"] = layer.weight, layer.bias
    words = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]"]
    words += ["[MASK]"] + [chr(c) for c in range(97, 123)] + [f"##{chr(c)}" for c in range(97, 123)]
    (tmp / "vocab.txt").write_text("\n".join(words) + "\n")
    if name == "imagereward":
        head = {f"mlp.layers.{k}": v for k, v in mlp_head(768).state_dict().items()}
        torch.save({**{f"blip.{k}": v for k, v in state.items()}, **head}, tmp / "ir.pt")
        return ImageReward(checkpoint=str(tmp / "ir.pt"), vocab=str(tmp / "vocab.txt"))
    torch.save({"model": state}, tmp / "blip.pth")
    return BLIPScore(checkpoint=str(tmp / "blip.pth"), vocab=str(tmp / "vocab.txt"))


def bare_forward(metric, pixels, prompts):
    """The image + text encoders of ``metric`` on ready tensors (what the scorer wraps)."""
    import torch

    from aigiqa.metrics.alignment import _blip

    name, model = metric.name, metric.model
    if name in ("clipscore", "hpsv2"):
        tokens = metric.tokenize(prompts)
        return lambda: (model.encode_image(pixels), model.encode_text(tokens))
    if name == "clipiqa":
        return lambda: metric.encode_image(pixels)
    if name == "pickscore":
        from aigiqa.metrics.alignment.pickscore import clip_token_ids

        ids, mask = clip_token_ids(prompts)
        return lambda: (model.get_image_features(pixel_values=pixels),
                        model.get_text_features(input_ids=ids, attention_mask=mask))
    ids, mask = _blip.tokenize(metric.tokenizer, prompts)
    if name == "blipscore":
        return lambda: (model.vision(pixel_values=pixels),
                        model.text(input_ids=ids, attention_mask=mask, is_decoder=False))

    def imagereward():
        emb = model.vision(pixel_values=pixels).last_hidden_state
        ones = torch.ones(emb.shape[:-1], dtype=torch.long)
        return model.text(input_ids=ids, attention_mask=mask, encoder_hidden_states=emb,
                          encoder_attention_mask=ones, is_decoder=False)

    return imagereward


def run_one(name: str, full: bool, size: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # the weights are read on the first score
        return _measure(build(name, full, Path(tmp)), name, full, size, repeats)


def _measure(metric, name: str, full: bool, size: int, repeats: int) -> dict:
    import torch

    rng = np.random.default_rng(0)
    result = {"metric": name, "full": full or name in ("clipscore", "clipiqa")}
    for batch in (1, 16):
        images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
        prompts = [f"a photo of a red car number {i} on a mountain road" for i in range(batch)]
        metric.options["batch_size"] = batch
        metric.score(images[:1], prompts[:1])  # build + warm up
        pixels = metric.preprocess(images)  # the model's input, as score makes it (not timed)
        bare = bare_forward(metric, pixels, prompts)
        t_score, t_bare = [], []
        for _ in range(repeats):  # interleaved, so that a busy machine slows both alike
            t_score.append(_timed(lambda im=images, pr=prompts: metric.score(im, pr)))
            with torch.inference_mode():
                t_bare.append(_timed(bare))
        (wall_s, cpu_s), (wall_b, cpu_b) = np.min(t_score, axis=0), np.min(t_bare, axis=0)
        result[f"b{batch}"] = {
            "score_img_s": batch / wall_s, "bare_img_s": batch / wall_b,
            "overhead_cpu": cpu_s / cpu_b - 1, "overhead_wall": wall_s / wall_b - 1,
        }
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process over all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: CPU time is not inflated by spinning workers)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_one(args.one, args.full, args.size, args.repeats)))
        return
    print(f"{'metric':<12}{'arch':<9}{'batch':>6}{'score img/s':>13}{'bare img/s':>12}"
          f"{'overhead CPU':>14}{'(wall)':>9}{'peak RSS MiB':>14}")
    for name in args.metrics.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--size", str(args.size),
               "--repeats", str(args.repeats), "--threads", str(args.threads)]
        cmd += ["--full"] if args.full else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        for batch in (1, 16):
            b = r[f"b{batch}"]
            print(f"{name:<12}{'full' if r['full'] else 'reduced':<9}{batch:>6}"
                  f"{b['score_img_s']:>13.2f}{b['bare_img_s']:>12.2f}{b['overhead_cpu']:>+14.1%}"
                  f"{b['overhead_wall']:>+9.1%}"
                  f"{r['peak_rss_mib']:>14.0f}")


if __name__ == "__main__":
    main()
