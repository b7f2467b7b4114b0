"""Equality check of the classic learned IQA models against their official code (not a test).

The official model files are NOT part of this project. Extract them into a scratch folder
(``git show HEAD:<path> > DIR/<file>``, see ``REFERENCE_FILES``) and run

    AIGIQA_REF_DIR=/tmp/ref_arch python benchmarks/learned_reference.py [arch ...] [--fixtures]

For every architecture the reference model is built with seeded random weights, its state dict
is loaded strictly into ours (through the metric's ``convert_state_dict``), and both score the same
random images *including preprocessing*; the largest absolute difference is printed and must be
<= 1e-4. ``--fixtures`` (re)writes tests/fixtures/<arch>_state_dict.json ({key: shape} of the
reference state dict as released), which the committed tests compare our model against.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
TOL = 1e-4

#: scratch file <- (official repository, path at HEAD)
REFERENCE_FILES = {
    "cnniqa_ref.py": ("lidq92/CNNIQA", "test_demo.py"),
    "IQADataset.py": ("lidq92/CNNIQA", "IQADataset.py"),
    "CNNIQA-LIVE": ("lidq92/CNNIQA", "models/CNNIQA-LIVE"),
    "hyperiqa_ref.py": ("SSL92/hyperIQA", "models.py"),
    "DBCNN.py": ("zwx8981/DBCNN-PyTorch", "DBCNN.py"),
    "SCNN.py": ("zwx8981/DBCNN-PyTorch", "SCNN.py"),
    "scnn.pkl": ("zwx8981/DBCNN-PyTorch", "pretrained_scnn/scnn.pkl"),
    "stairiqa_ref.py": ("sunwei925/StairIQA", "models/ResNet_staircase.py"),
    "maniqa/models/maniqa.py": ("IIGROUP/MANIQA", "models/maniqa.py"),
    "maniqa/models/swin.py": ("IIGROUP/MANIQA", "models/swin.py"),
    "pyiqa/musiq_arch.py": ("chaofengc/IQA-PyTorch", "pyiqa/archs/musiq_arch.py"),
    "pyiqa/multiscale_trans_util.py": ("chaofengc/IQA-PyTorch",
                                       "pyiqa/data/multiscale_trans_util.py"),
    "pyiqa/padding.py": ("chaofengc/IQA-PyTorch", "pyiqa/matlab_utils/padding.py"),
}
#: MANIQA's official code also needs ``einops``: ``pip install --target DIR/site einops``.


def _images(seed: int, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Smooth random RGB images (h, w) so that resizing matters."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        small = rng.integers(0, 256, size=(max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        big = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))
        noise = rng.integers(-20, 21, size=big.shape)
        out.append(np.clip(big.astype(int) + noise, 0, 255).astype(np.uint8))
    return out


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Seeded random values for every parameter and BN buffer (so BN is not the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                fan = t[0].numel() if t.ndim > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) / max(1.0, fan) ** 0.5)


def _import_py3(name: str, ref: Path) -> types.ModuleType:
    """Import a scratch file, fixing ``cuda(async=True)`` (a syntax error since Python 3.7) and
    loading the S-CNN weights on the CPU."""
    source = (ref / f"{name}.py").read_text().replace("async=True", "non_blocking=True")
    source = source.replace("torch.load(scnn_root)", "torch.load(scnn_root, map_location='cpu')")
    module = types.ModuleType(name)
    module.__file__ = str(ref / f"{name}.py")
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _shapes(state: dict) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def _load_ours(metric, ref_state: dict) -> None:
    state = metric.convert_state_dict({k: v.clone() for k, v in ref_state.items()})
    model = metric.new_model()
    model.load_state_dict(state, strict=True)
    metric.set_model(model.eval())


def _tv_normalise(pil: Image.Image) -> torch.Tensor:
    t = torchvision.transforms.functional.to_tensor(pil)
    return torchvision.transforms.functional.normalize(t, (0.485, 0.456, 0.406),
                                                       (0.229, 0.224, 0.225))


# Architectures --------------------------------------------------------------------------------
def check_cnniqa(ref: Path) -> tuple[dict, float]:
    sys.modules.setdefault("h5py", types.ModuleType("h5py"))
    mod = importlib.import_module("cnniqa_ref")
    from aigiqa.metrics.learned.cnniqa import CNNIQA

    images = _images(1, [(100, 130), (64, 97), (161, 96)])
    worst = 0.0
    for label, load in (("random", None), ("official CNNIQA-LIVE", ref / "CNNIQA-LIVE")):
        net = mod.CNNIQAnet().eval()
        if load is None:
            _randomise(net, 0)
            metric = CNNIQA(device="cpu")
            _load_ours(metric, net.state_dict())
        else:
            net.load_state_dict(torch.load(load, map_location="cpu"))
            metric = CNNIQA(device="cpu", checkpoint=str(load))  # strict load by the base class
        ours = metric.score(images)
        with torch.no_grad():
            theirs = [net(torch.stack(mod.NonOverlappingCropPatches(
                Image.fromarray(im).convert("L"), 32, 32))).mean().item() for im in images]
        diff = float(np.abs(ours - np.array(theirs)).max())
        print(f"cnniqa ({label}): ours {np.round(ours, 5)} ref {np.round(theirs, 5)} "
              f"max|diff| {diff:.2e}")
        worst = max(worst, diff)
    return _shapes(torch.load(ref / "CNNIQA-LIVE", map_location="cpu")), worst


def check_hyperiqa(ref: Path) -> tuple[dict, float]:
    mod = importlib.import_module("hyperiqa_ref")
    mod.model_zoo.load_url = lambda *a, **k: {}  # no ImageNet download: random backbone
    from aigiqa.metrics.learned._blocks import random_crops  # noqa: F401 (positions replayed)
    from aigiqa.metrics.learned.hyperiqa import HyperIQA

    torch.manual_seed(0)
    net = mod.HyperNet(16, 112, 224, 112, 56, 28, 14, 7).eval()
    _randomise(net, 1)
    metric = HyperIQA(device="cpu", num_crops=3, seed=7)
    _load_ours(metric, net.state_dict())
    images = _images(2, [(300, 260), (520, 700)])
    ours = metric.score(images)
    resize = torchvision.transforms.Resize((512, 384))
    theirs = []
    for im in images:
        pil = resize(Image.fromarray(im))
        rng = np.random.default_rng(7)
        preds = []
        for _ in range(3):
            top, left = int(rng.integers(0, 512 - 224 + 1)), int(rng.integers(0, 384 - 224 + 1))
            x = _tv_normalise(torchvision.transforms.functional.crop(pil, top, left, 224, 224))
            with torch.no_grad():
                paras = net(x.unsqueeze(0))
                target = mod.TargetNet(paras).eval()
                preds.append(float(target(paras["target_in_vec"]).item()))
        theirs.append(np.mean(preds))
    diff = float(np.abs(ours - np.array(theirs)).max())
    print(f"hyperiqa: ours {np.round(ours, 5)} ref {np.round(theirs, 5)} max|diff| {diff:.2e}")
    return _shapes(net.state_dict()), diff


def check_dbcnn(ref: Path) -> tuple[dict, float]:
    sys.modules.setdefault("WPFolder", types.ModuleType("WPFolder"))
    real_vgg16, real_cuda = torchvision.models.vgg16, torch.nn.Module.cuda
    torchvision.models.vgg16 = lambda *a, **k: real_vgg16(weights=None)  # no download
    torch.nn.Module.cuda = lambda self, *a, **k: self  # the official code moves S-CNN to CUDA
    try:
        _import_py3("SCNN", ref)
        mod = _import_py3("DBCNN", ref)
        net = mod.DBCNN(str(ref / "scnn.pkl"), {"fc": True}).eval()  # official S-CNN weights
    finally:
        torchvision.models.vgg16, torch.nn.Module.cuda = real_vgg16, real_cuda
    from aigiqa.metrics.learned.dbcnn import DBCNN

    _randomise(net.features1, 2)
    _randomise(net.fc, 3)
    released = torch.nn.DataParallel(net)  # the official checkpoints are saved from DataParallel
    metric = DBCNN(device="cpu")
    _load_ours(metric, released.state_dict())
    images = _images(3, [(100, 132), (160, 96)])  # VGG and S-CNN grids differ: upsampling path
    ours = metric.score(images)
    with torch.no_grad():
        theirs = [net(_tv_normalise(Image.fromarray(im)).unsqueeze(0)).item() for im in images]
    diff = float(np.abs(ours - np.array(theirs)).max())
    print(f"dbcnn: ours {np.round(ours, 5)} ref {np.round(theirs, 5)} max|diff| {diff:.2e}")
    return _shapes(released.state_dict()), diff


def check_stairiqa(ref: Path) -> tuple[dict, float]:
    mod = importlib.import_module("stairiqa_ref")
    from aigiqa.metrics.learned.stairiqa import StairIQA

    torch.manual_seed(0)
    net = mod.resnet50(pretrained=False).eval()
    _randomise(net, 4)
    released = torch.nn.DataParallel(net)  # test_staircase.py loads into DataParallel
    images = _images(4, [(300, 400), (500, 330)])
    tf = torchvision.transforms.Compose([
        torchvision.transforms.Resize(384), torchvision.transforms.FiveCrop(320)])
    with torch.no_grad():
        outs = [torch.cat(net(torch.stack([_tv_normalise(c) for c in tf(Image.fromarray(im))])),
                          1).mean(0) for im in images]
    worst = 0.0
    for head_index, head in enumerate(("koniq10k", "bid")):
        metric = StairIQA(device="cpu", head=head)
        _load_ours(metric, released.state_dict())
        ours = metric.score(images)
        theirs = np.array([float(o[[3, 5][head_index]]) for o in outs])
        diff = float(np.abs(ours - theirs).max())
        print(f"stairiqa head {head}: ours {np.round(ours, 5)} ref {np.round(theirs, 5)} "
              f"max|diff| {diff:.2e}")
        worst = max(worst, diff)
    return _shapes(released.state_dict()), worst


def check_maniqa(ref: Path) -> tuple[dict, float]:
    import timm

    sys.path[:0] = [str(ref / "site"), str(ref / "maniqa")]
    sys.modules.setdefault("models", types.ModuleType("models")).__path__ = [
        str(ref / "maniqa" / "models")]
    importlib.import_module("models.swin")
    path = ref / "maniqa" / "models" / "maniqa.py"
    source = path.read_text().replace("torch.tensor([]).cuda()", "torch.tensor([])")
    mod = types.ModuleType("models.maniqa")
    mod.__file__ = str(path)
    sys.modules["models.maniqa"] = mod
    real_create = timm.create_model
    timm.create_model = lambda name, pretrained=False, **k: real_create(name, pretrained=False,
                                                                         **k)
    try:
        exec(compile(source, str(path), "exec"), mod.__dict__)
        torch.manual_seed(0)
        net = mod.MANIQA(embed_dim=768, num_outputs=1, dim_mlp=768, patch_size=8, img_size=224,
                         window_size=4, depths=[2, 2], num_heads=[4, 4], num_tab=2,
                         scale=0.8).eval()
    finally:
        timm.create_model = real_create
    from aigiqa.metrics.learned.maniqa import MANIQA, official_crops

    _randomise(net, 5)
    metric = MANIQA(device="cpu", num_crops=2, seed=3)
    _load_ours(metric, net.state_dict())
    images = _images(5, [(240, 262)])
    ours = metric.score(images)
    theirs = []
    for im in images:
        x = np.transpose(im.astype("float32") / 255, (2, 0, 1))
        preds = []
        for crop in official_crops(np.transpose(x, (1, 2, 0)), 224, 2, 3):
            patch = torch.from_numpy((np.transpose(crop, (2, 0, 1)) - 0.5) / 0.5).float()
            with torch.no_grad():
                preds.append(float(net(patch.unsqueeze(0))[0]))
        theirs.append(np.mean(preds))
    diff = float(np.abs(ours - np.array(theirs)).max())
    print(f"maniqa: ours {np.round(ours, 5)} ref {np.round(theirs, 5)} max|diff| {diff:.2e}")
    return _shapes(net.state_dict()), diff


def _load_file(name: str, path: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def check_musiq(ref: Path) -> tuple[dict, float]:
    """pyiqa's MUSIQ (non-commercial licence: run beside the project, never copied)."""
    for name in ("pyiqa", "pyiqa.archs", "pyiqa.utils", "pyiqa.data"):
        sys.modules.setdefault(name, types.ModuleType(name)).__path__ = []
    registry = types.ModuleType("pyiqa.utils.registry")
    registry.ARCH_REGISTRY = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    sys.modules["pyiqa.utils.registry"] = registry
    util = types.ModuleType("pyiqa.archs.arch_util")  # only what musiq_arch uses
    util.dist_to_mos = lambda d: (d * torch.arange(1, d.shape[-1] + 1).to(d)).sum(-1, True)
    util.load_pretrained_network = lambda *a, **k: None
    util.get_url_from_name = lambda name: name
    sys.modules["pyiqa.archs.arch_util"] = util
    sys.modules["pyiqa.matlab_utils"] = _load_file("pyiqa.matlab_utils", ref / "pyiqa/padding.py")
    _load_file("pyiqa.data.multiscale_trans_util", ref / "pyiqa/multiscale_trans_util.py")
    mod = _load_file("pyiqa.archs.musiq_arch", ref / "pyiqa/musiq_arch.py")
    from aigiqa.metrics.learned.musiq import MUSIQ

    worst, shapes = 0.0, {}
    images = _images(6, [(200, 260), (310, 150)])
    for num_class in (1, 10):
        torch.manual_seed(0)
        net = mod.MUSIQ(num_class=num_class, pretrained=False,
                        longer_side_lengths=[224, 384], max_seq_len_from_original_res=-1).eval()
        _randomise(net, 6)
        metric = MUSIQ(device="cpu", num_class=num_class, batch_size=2)  # mixed sizes, padded
        _load_ours(metric, net.state_dict())
        ours = metric.score(images)
        with torch.no_grad():
            theirs = [float(net(torchvision.transforms.functional.to_tensor(im).unsqueeze(0)))
                      for im in images]
        diff = float(np.abs(ours - np.array(theirs)).max())
        print(f"musiq num_class={num_class}: ours {np.round(ours, 5)} ref {np.round(theirs, 5)} "
              f"max|diff| {diff:.2e}")
        worst = max(worst, diff)
        if num_class == 1:
            shapes = _shapes(net.state_dict())
    return shapes, worst


CHECKS = {"cnniqa": check_cnniqa, "hyperiqa": check_hyperiqa, "dbcnn": check_dbcnn,
          "stairiqa": check_stairiqa, "maniqa": check_maniqa,
          "musiq": check_musiq}


def main(argv: list[str]) -> int:
    ref = Path(os.environ.get("AIGIQA_REF_DIR", "/tmp/ref_arch"))
    if not ref.is_dir():
        print(f"no reference folder {ref}; set AIGIQA_REF_DIR (see the module docstring)")
        return 2
    sys.path.insert(0, str(ref))
    write = "--fixtures" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CHECKS)
    failed = []
    for name in names:
        shapes, diff = CHECKS[name](ref)
        if diff > TOL:
            failed.append(name)
        if write:
            path = FIXTURES / f"{name}_state_dict.json"
            path.write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}"
                                              for k, v in shapes.items()) + "\n}\n")
            print(f"wrote {path.relative_to(REPO)} ({len(shapes)} keys)")
    print("FAILED: " + ", ".join(failed) if failed else f"all equal within {TOL}")
    return 1 if failed else 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    raise SystemExit(main(sys.argv[1:]))
