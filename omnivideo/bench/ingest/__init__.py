"""`bench ingest`: cold time to first token by stage, ours vs transformers + bitsandbytes, and a pipelined file end to end."""
