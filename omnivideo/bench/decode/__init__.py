"""`bench decode`: ms/token at 8K-128K against the bandwidth floor and transformers' generate, and where a step's time goes."""
