"""Training the embedded world model on procedural rooms."""
