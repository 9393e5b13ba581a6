-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d), as
-- POSTGRES_USER, who owns the three databases. One database each: Optuna and MLflow both keep an
-- alembic_version table and cannot share one.
CREATE DATABASE dagster;
CREATE DATABASE mlflow;
CREATE DATABASE optuna;
