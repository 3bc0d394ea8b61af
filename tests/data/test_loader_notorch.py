"""Without torch (the core install): items, shards, batches and the contact sheet all work, and
importing s2vforge.data loads neither torch nor PyAV."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (blocked by the test)")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_is_light():
    got = _run("""
        import json, sys
        import s2vforge.data
        print(json.dumps({"torch": "torch" in sys.modules, "av": "av" in sys.modules}))
    """)
    assert got == {"torch": False, "av": False}


def test_items_and_shards_without_torch(export_dir, export_shards, tmp_path):
    root, _ = export_dir
    from loader_media import EXPORT_CFG
    got = _run(f"""
        import json, sys
        from s2vforge.data import S2VDataset, S2VShardDataset, collate, save_contact_sheet
        cfg = json.loads({json.dumps(json.dumps(EXPORT_CFG))})
        ds = S2VDataset({str(root)!r}, "train", cfg=cfg)
        items = [ds[i] for i in range(len(ds))]
        batch = collate(items, to_torch=False)
        shards = [it["sample_id"] for it in S2VShardDataset({str(export_shards)!r}, cfg=cfg, shuffle=False)]
        save_contact_sheet(batch, {str(tmp_path / "sheet.png")!r})
        print(json.dumps({{"ids": ds.sample_ids, "frames": list(batch["frames"].shape), "shards": shards,
                          "torch": "torch" in sys.modules}}))
    """)
    assert got["torch"] is False and len(got["ids"]) == 2 and got["frames"] == [2, 4, 64, 96, 3]
    assert len(got["shards"]) == 4 and (tmp_path / "sheet.png").stat().st_size > 0
