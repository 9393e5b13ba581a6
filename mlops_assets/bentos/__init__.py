"""The champion in BentoML's store: import and build, run by the ``champion_bento`` asset."""
