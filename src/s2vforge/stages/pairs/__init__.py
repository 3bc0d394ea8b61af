"""Identity pairs: embeddings, a FAISS retrieval bank and cross-context pair mining (Phantom-Data, OpenS2V-Nexus)."""
