"""`bench slimming`: decode-time visual KV slimming (mechanism 3), memory saved vs attention error."""
