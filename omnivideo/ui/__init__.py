"""The browser app (Gradio): video library, streaming chat with [mm:ss] seek links, sessions; calls omnivideo.app."""
