"""Object storage (a local folder or S3) and the Parquet IO manager over it."""
