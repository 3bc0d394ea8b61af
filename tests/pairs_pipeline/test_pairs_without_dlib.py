"""Without the faces extra (no dlib), `pair` still pairs objects and says why faces/persons were
not embedded, instead of failing."""
from __future__ import annotations

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.corpus.identity import build_identity_dataset
from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs import embed
from s2vforge.stages.pairs.pipeline import run_pairs


def test_pairs_without_dlib_pairs_objects_and_reports_faces(tmp_path, monkeypatch):
    import s2vforge.backends.face as face

    def no_dlib(self, *a, **k):
        raise BackendUnavailable("dlib face embeddings (facesim_dlib)", [], "pip install dlib-bin (No module named 'dlib')")

    monkeypatch.setattr(face.DlibFaces, "__init__", no_dlib)
    embed.clear_embedder_cache()
    try:
        ds = tmp_path / "ds"
        build_identity_dataset(ds, seed=1, scale="tiny")
        summary = run_pairs(ds, load_recipe(None), workers=1)
    finally:
        embed.clear_embedder_cache()
        assert "faces" in summary["unavailable"]["embed_face"]
    assert summary["n_error"] == 0
    kinds = summary["kinds_by_category"]
    assert {"cross_video"} & set(kinds.get("object", {})), kinds
    assert not {"cross_clip", "cross_video"} & set(kinds.get("face", {})), kinds

