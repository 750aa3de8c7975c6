"""`bench video`: sampling frames by seeking vs decoding a 1-hour 1080p file through."""
