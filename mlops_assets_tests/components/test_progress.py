"""Long loops log their progress now and then: never a line per step, never silent for long."""

from mlops_assets.components.progress import Progress


def test_a_line_every_interval_and_at_the_end() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = Progress(lines.append, 1000, "cleaned", every_s=10, clock=lambda: now[0])
    for step in range(1, 1001):
        now[0] = step / 10  # 100 s in all
        progress.step()
    assert len(lines) == 10
    assert lines[0] == "cleaned 100/1000 days (10s)"
    assert lines[-1] == "cleaned 1000/1000 days (100s)"


def test_a_short_loop_says_nothing() -> None:
    lines: list[str] = []
    progress = Progress(lines.append, 3, "cleaned", clock=lambda: 0.0)
    for _ in range(3):
        progress.step()
    assert lines == []
