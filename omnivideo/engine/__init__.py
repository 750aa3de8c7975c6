"""Our inference engine over the Hugging Face Qwen2.5-VL modules: loading, attention hook, cache, loops."""
