"""OmniSparse prefill: block estimate, key-block selection (mechanisms 1 and 2), block-sparse attention."""
