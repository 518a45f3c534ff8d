"""Batches gathered from concurrent jobs: grouping, order, limits, errors."""

import threading
import time

import pytest

from faceqan.batcher import Batcher


def _submit_all(batcher, jobs):
    answers = {}

    def run(name, items):
        try:
            answers[name] = batcher.submit(items)
        except Exception as exc:  # noqa: BLE001
            answers[name] = exc

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_concurrent_jobs_share_a_batch_and_get_their_own_results():
    batches = []

    def double(items):
        batches.append(list(items))
        time.sleep(0.05)
        return [2 * x for x in items]

    batcher = Batcher(double, max_items=16, max_wait=0.5)
    jobs = {"a": [1], "b": [2, 3], "c": [4], "d": [5, 6, 7]}
    answers = _submit_all(batcher, jobs)
    assert answers == {name: [2 * x for x in items] for name, items in jobs.items()}
    assert len(batches) < len(jobs)  # some jobs were scored together
    assert sorted(x for batch in batches for x in batch) == list(range(1, 8))
    batcher.close()


def test_batches_stay_within_max_items_unless_one_job_is_larger():
    batches = []
    batcher = Batcher(lambda items: batches.append(len(items)) or list(items), max_items=3, max_wait=0.3)
    answers = _submit_all(batcher, {f"j{i}": [i] for i in range(7)} | {"big": list(range(10, 15))})
    assert answers["big"] == list(range(10, 15)) and answers["j3"] == [3]
    assert sum(batches) == 12
    # A job is never split: only the batch the big job joins may pass 3 (at most 2 + 5 items).
    assert sum(1 for size in batches if size > 3) <= 1 and max(batches) <= 7


def test_a_failing_batch_fails_each_of_its_jobs_and_the_worker_goes_on():
    calls = []

    def fragile(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return items

    batcher = Batcher(fragile, max_items=8, max_wait=0.3)
    answers = _submit_all(batcher, {"a": [1], "b": [2]})
    failed = [name for name, answer in answers.items() if isinstance(answer, RuntimeError)]
    assert failed and all("device lost" in str(answers[name]) for name in failed)
    assert batcher.submit([3]) == [3]  # the next batch runs
    batcher.close()


def test_one_item_batches_and_bad_limits():
    batcher = Batcher(lambda items: [len(items)] * len(items), max_items=1, max_wait=0.3)
    started = time.perf_counter()
    assert batcher.submit(["x"]) == [1]
    assert time.perf_counter() - started < 0.25  # a full batch does not wait for more
    assert batcher.submit([]) == []
    batcher.close()
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(lambda items: items, max_items=0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the worker dies on purpose
def test_submit_after_close_or_after_the_worker_died_raises_at_once():
    from faceqan.batcher import Stopped

    closed = Batcher(lambda items: items, max_items=2)
    closed.close()
    with pytest.raises(Stopped):
        closed.submit([1])

    def die(_size: int) -> None:
        raise SystemExit  # escapes the batch's try: the worker thread ends

    dying = Batcher(lambda items: items, max_items=2, on_batch=die)
    with pytest.raises(Stopped, match="stopped before this job ran"):
        dying.submit([1])  # handed in before the death, answered after it
    assert not dying.alive
    with pytest.raises(Stopped, match="not running"):
        dying.submit([2])
