"""`bench cache`: the persistent KV cache, cold vs warm time to first token in fresh processes."""
