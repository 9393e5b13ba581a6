"""Row-level cleaning, validation and model preprocessing: the one code path training and serving share."""
