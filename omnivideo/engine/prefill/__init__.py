"""Prefill: the pipelined video-prefix ingest, layer-major rounds, the question prefill over host KV, the sparse plan."""
