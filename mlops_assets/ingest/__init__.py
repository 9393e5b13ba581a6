"""The landing zone: reading batches as they arrive, ``raw_data`` and the landing sensor."""
