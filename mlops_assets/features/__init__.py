"""Row-level cleaning, validation and model preprocessing: one path for training and serving."""
