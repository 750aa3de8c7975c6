"""`bench accuracy`: a JSONL of questions about videos in, per-question results and a report out."""
