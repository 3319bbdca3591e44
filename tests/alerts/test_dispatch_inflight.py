"""The threads kept between a dispatcher's batches (alerts/delivery/inflight.py): requests never wait behind one
another, and a lease is renewed while its batch is held, never after."""

from __future__ import annotations

import threading

from alerts.delivery.inflight import LeaseRenewals, SendThreads

WAIT = 30.0  # generous: a loaded CI machine


def test_send_threads_run_jobs_side_by_side_and_are_kept() -> None:
    threads = SendThreads("test-send")
    first_running = threading.Event()
    second_ran = threading.Event()
    first_done = threading.Event()
    names: list[int] = []

    def first() -> None:
        names.append(threading.get_ident())
        first_running.set()
        # only a second thread can let this one finish: the jobs must run at the same time
        assert second_ran.wait(WAIT)
        first_done.set()

    def second() -> None:
        names.append(threading.get_ident())
        second_ran.set()

    threads.run(first)
    assert first_running.wait(WAIT)
    threads.run(second)
    assert first_done.wait(WAIT)
    assert len(set(names)) == 2

    # both threads now wait for work: the next jobs run on them, no new thread is started
    for _ in range(5):
        ran = threading.Event()
        threads.run(lambda ran=ran: (names.append(threading.get_ident()), ran.set()))
        assert ran.wait(WAIT)
    assert set(names[2:]) <= set(names[:2])


def test_a_job_that_fails_does_not_stop_its_thread_from_running_the_next() -> None:
    threads = SendThreads("test-send")
    ran = threading.Event()

    def failing() -> None:
        try:
            raise RuntimeError("boom")
        finally:
            ran.set()

    # a job handles its own errors in the dispatcher; one that does not is logged, and its thread goes on
    threads.run(failing)
    assert ran.wait(WAIT)
    again = threading.Event()
    threads.run(again.set)
    assert again.wait(WAIT)


def test_leases_are_renewed_while_held_and_never_after() -> None:
    renewed: list[str] = []
    seen = threading.Condition()

    def renew(key: str) -> None:
        with seen:
            renewed.append(key)
            seen.notify_all()

    renewals = LeaseRenewals(renew, lambda: 0.01)
    with renewals.holding("kept"):
        with renewals.holding("done"), seen:
            assert seen.wait_for(lambda: "done" in renewed, WAIT)
        after, kept = renewed.count("done"), renewed.count("kept")
        # several more rounds of renewals of the batch still held, none of the one that ended
        with seen:
            assert seen.wait_for(lambda: renewed.count("kept") >= kept + 3, WAIT)
        assert renewed.count("done") == after
