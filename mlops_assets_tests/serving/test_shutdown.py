"""SIGTERM loses no prediction: every answered record is in the log once the server has stopped.

The server is started with a flush interval of an hour, so only the shutdown flush can write.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlops_assets.prediction_log import read_prediction_log
from mlops_assets.specs import UseCaseSpec
from mlops_assets.storage.objectstore import open_store
from mlops_assets_tests.harness.bento import start_bento
from mlops_assets_tests.harness.records import record

pytestmark = pytest.mark.integration


def test_sigterm_flushes_every_answered_record(
    champion_bento_tag: str, tmp_path: Path, spec: UseCaseSpec
) -> None:
    served = start_bento(
        champion_bento_tag, tmp_path / "bento", MLOPS_PREDICTION_LOG_FLUSH_S="3600"
    )
    try:
        sizes = [1 + i % 3 for i in range(60)]

        def send(index: int) -> int:
            body = {"records": [record(Item_MRP=10.0 + index)] * sizes[index]}
            return served.predict(body, headers={"X-Request-ID": f"req-{index}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(len(sizes))))
        assert statuses == [200] * len(sizes)
        assert read_prediction_log(open_store(str(served.storage)), spec.name).empty
    finally:
        served.stop()
    assert served.process.poll() is not None
    logged = read_prediction_log(open_store(str(served.storage)), spec.name)
    assert len(logged) == sum(sizes)
    counts = logged.groupby("request_id").size().to_dict()
    assert counts == {f"req-{i}": size for i, size in enumerate(sizes)}
    assert "Completed cleanup hook: flush_prediction_log" in served.log_path.read_text()
