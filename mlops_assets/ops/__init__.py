"""Operations that drive Dagster and the stores from outside: what the ``mlops`` CLI runs."""
