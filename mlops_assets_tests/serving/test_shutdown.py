"""No answered prediction is lost when the server stops, however it stops.

SIGTERM: every answered record is in the log once the server has stopped. SIGKILL of the worker,
then of ``bentoml serve``: every answered request id is in the log exactly once, and no worker
is left serving the port. The servers are started with a flush interval of an hour, so only the
shutdown flush and the spool can write.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
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


def _worker(served: Any) -> psutil.Process:
    """The server's one worker process (BentoML starts it as a child of ``bentoml serve``)."""
    [worker] = [
        p
        for p in psutil.Process(served.process.pid).children(recursive=True)
        if "_bentoml_impl.worker" in " ".join(p.cmdline())
    ]
    return worker


def _port_is_free(url: str) -> bool:
    from urllib.parse import urlsplit

    where = urlsplit(url)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds it
        try:
            sock.bind((where.hostname, where.port))
        except OSError:
            return False
    return True


def test_sigkill_loses_no_answered_prediction_and_orphans_no_worker(
    champion_bento_tag: str, tmp_path: Path, spec: UseCaseSpec
) -> None:
    """Two kills, one server (keys on):

    * SIGKILL of the worker under load: 21% of the answered requests (the last ~3 s) never
      reached the log. Now every batch is spooled before its answers leave; BentoML starts a
      new worker, which moves the dead one's spool into the log.
    * SIGKILL of ``bentoml serve``: its worker kept serving the port ("Address already in
      use" at the next start). Now the worker sees its parent gone and shuts down, writing
      its log.
    """
    served = start_bento(
        champion_bento_tag,
        tmp_path / "bento",
        MLOPS_PREDICTION_LOG_FLUSH_S="3600",  # nothing is written before the kills
        MLOPS_SERVING_API_KEYS="kill-test-key-0123456789",
    )
    answered: dict[str, int] = {}
    stop = threading.Event()

    def load(client_index: int) -> None:
        client = httpx.Client(base_url=served.url, timeout=30, headers=served.client.headers)
        number = 0
        while not stop.is_set():
            number += 1
            request_id, size = f"c{client_index}-{number}", 1 + number % 3
            body = {"records": [record(Item_MRP=10.0 + number)] * size}
            try:
                answer = client.post("/predict", json=body, headers={"X-Request-ID": request_id})
            except httpx.TransportError:
                time.sleep(0.05)  # the worker is gone: not answered, try again
                continue
            if answer.status_code == 200:
                answered[request_id] = size
        client.close()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    try:
        first = _worker(served)
        for thread in threads:
            thread.start()
        _until(lambda: len(answered) >= 40, "40 answers before the kill")
        first.kill()  # SIGKILL, under load
        before = len(answered)
        _until(lambda: len(answered) >= before + 20, "20 answers from the new worker", 90)
        stop.set()
        for thread in threads:
            thread.join()
        second = _worker(served)
        assert second.pid != first.pid
        os.kill(served.process.pid, signal.SIGKILL)  # bentoml serve itself
        second.wait(timeout=20)  # psutil.TimeoutExpired: the worker outlived its parent
        assert _port_is_free(served.url)
    finally:
        stop.set()
        served.stop()
    logged = read_prediction_log(open_store(str(served.storage)), spec.name)
    counts = logged.groupby("request_id").size().to_dict()
    missing = sorted(set(answered) - set(counts))
    assert not missing, f"{len(missing)} of {len(answered)} answered requests not logged"
    assert {rid: counts[rid] for rid in answered} == answered  # each exactly once
    assert all(count <= 3 for count in counts.values())  # nothing logged twice
    assert "recovered" in served.log_path.read_text()


def _until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
