"""`bench vision`: the vision tower's time and peak memory, our one-launch attention vs transformers' sdpa loop."""
