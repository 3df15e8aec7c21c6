"""The install a user makes, checked on values: `pip install t2t-vit`, no extras.

Run by `.ci/run` with the Python of a fresh virtual environment that holds only
`torch==2.13.0` and the built wheel (not with pytest, which that environment lacks):
    python tests/smoke_core_install.py
It creates a model, saves and reloads it, converts a small official-format checkpoint and
checks it against the official implementation's outputs, and loads a registry name from an
original release file served on 127.0.0.1 while the Hub refuses connections.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import socket
import sys
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"core install smoke test FAILED: {what}")
    print(f"ok: {what}")


def main() -> None:
    import torch
    from safetensors.torch import load_file

    import t2t_vit

    here = Path(t2t_vit.__file__).resolve()
    check("site-packages" in here.parts, f"t2t_vit is the installed package ({here})")
    for extra in ("PIL", "matplotlib", "timm"):
        check(importlib.util.find_spec(extra) is None, f"{extra} (an extra) is not installed")

    tmp = Path(tempfile.mkdtemp(prefix="t2t-vit-core-"))
    os.environ["T2T_VIT_CACHE"] = str(tmp / "cache")
    os.environ["HF_HOME"] = str(tmp / "hf-home")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

    # 1. create, save, load
    torch.manual_seed(0)
    model = t2t_vit.create_model("t2t-vit-7", num_classes=10).eval()
    folder = t2t_vit.save_pretrained(model, tmp / "saved")
    again = t2t_vit.from_pretrained(folder)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        same = torch.equal(model(x), again(x))
    check(same, "save_pretrained -> from_pretrained(folder) gives the same logits")

    # 2. convert an official-format training checkpoint and match the official outputs
    spec = json.loads((FIXTURES / "tiny_transformer.json").read_text())
    state = load_file(str(FIXTURES / "tiny_transformer.state_dict.safetensors"))
    golden = load_file(str(FIXTURES / "tiny_transformer.io.safetensors"))
    wrapped = {"module." + k: v for k, v in state.items()}
    ckpt = tmp / "tiny.pth.tar"
    torch.save(
        {"state_dict_ema": wrapped, "args": argparse.Namespace(model="tiny"), "epoch": 1}, ckpt
    )
    t2t_vit.convert_checkpoint(ckpt, tmp / "converted", model=spec["official_kwargs"])
    tiny = t2t_vit.from_pretrained(tmp / "converted")
    with torch.no_grad():
        diff = (tiny(golden["input"]) - golden["logits"]).abs().max().item()
    check(diff < 1e-5, f"converted official checkpoint matches the official logits ({diff:.1e})")

    # 3. a registry name from an original release file, the Hub refusing connections
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{refused.getsockname()[1]}"
    release = tmp / "release"
    release.mkdir()
    weights = t2t_vit.create_model("t2t-vit-7").state_dict()
    official = {"module." + k: v for k, v in weights.items()}
    file = release / "71.7_T2T_ViT_7.pth.tar"
    torch.save({"state_dict": official, "state_dict_ema": official, "epoch": 309}, file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(release)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["T2T_VIT_RELEASE_MIRROR"] = f"http://127.0.0.1:{server.server_address[1]}"
    loaded = t2t_vit.from_pretrained("t2t-vit-7")
    equal = all(torch.equal(loaded.state_dict()[k], v) for k, v in weights.items())
    check(equal, "from_pretrained('t2t-vit-7') loads the original release file")
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    check(loaded.pretrained_cfg["source"]["sha256"] == sha, "its sha256 is recorded")
    server.shutdown()
    os.environ["HF_HUB_OFFLINE"] = "1"
    cached = t2t_vit.create_model("t2t-vit-7", pretrained=True)
    equal = all(torch.equal(cached.state_dict()[k], v) for k, v in weights.items())
    check(equal, "offline, with the server gone, create_model(pretrained=True) loads the cache")
    refused.close()
    print("core install smoke test passed")


if __name__ == "__main__":
    sys.exit(main())
