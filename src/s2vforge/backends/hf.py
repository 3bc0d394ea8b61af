"""Shared plumbing for reference backends loaded with torch + transformers (imported lazily)."""
from __future__ import annotations

import contextlib
import importlib

from .errors import EXTRAS, BackendUnavailable, missing_extra


def require_torch_transformers(what: str) -> None:
    """Raise BackendUnavailable (one line: `what` needs the reference extra and the pip command)
    when the [reference] extra is not installed."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise missing_extra("reference", what, exc) from None


def import_first(what: str, *candidates: str):
    """The first of `candidates` ("module:Name", e.g. a transformers 5.x class name before its 4.x
    one) that imports, as `from module import Name` would. When none does: BackendUnavailable
    naming `what` with every candidate's import error, so no failure is lost."""
    errors = []
    absent = None               # the reference extra itself is not installed (no torch / transformers)
    for cand in candidates:
        module, _, name = cand.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except AttributeError:          # what `from module import name` reports as ImportError
            errors.append(f"{cand}: cannot import name {name!r} from {module!r}")
        except ImportError as exc:
            if isinstance(exc, ModuleNotFoundError) and absent is None \
                    and (exc.name or "").split(".")[0] in EXTRAS["reference"]:
                absent = exc
            errors.append(f"{cand}: {type(exc).__name__}: {exc}")
    if absent is not None:
        raise missing_extra("reference", what, absent) from None
    raise BackendUnavailable(what, [], f"None of its transformers classes imports ({'; '.join(errors)}). "
                                       "Install the reference extra: pip install 's2vforge[reference]'.")


def resolve_torch_dtype(dtype, device: str, cuda_default: str = "bfloat16"):
    """None -> `cuda_default` on CUDA, float32 on CPU; strings like "float16" -> torch dtypes."""
    import torch
    if dtype is None:
        return getattr(torch, cuda_default) if str(device).startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        return getattr(torch, dtype.replace("torch.", ""))
    return dtype


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load reports and progress bars (unused-weight notices are expected
    when loading part of a checkpoint, e.g. CLIP's vision tower)."""
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_text_image_model(root, model_cls, ip_cls, dtype, device: str):
    """(model in eval mode on `device`, tokenizer, image processor, torch dtype) from one local
    folder; the image processor's defaults when the folder has no preprocessor_config.json."""
    from pathlib import Path

    from transformers import AutoTokenizer
    root = Path(root)
    torch_dtype = resolve_torch_dtype(dtype, device)
    with quiet_transformers():
        model = model_cls.from_pretrained(str(root), dtype=torch_dtype).to(device).eval()
    tok = AutoTokenizer.from_pretrained(str(root))
    ip = ip_cls.from_pretrained(str(root)) if (root / "preprocessor_config.json").is_file() else ip_cls()
    return model, tok, ip, torch_dtype
