"""The arithmetic of each limit, on timestamps passed in."""

from __future__ import annotations

from tcpmsg.protocols.limits import Admission, Limits, LoginThrottle, TokenBucket


def test_a_bucket_allows_a_burst_then_its_rate():
    bucket = TokenBucket(burst=3, rate=2.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == 0.5
    assert bucket.take(100.5) == 0.0
    assert bucket.take(100.5) == 0.5


def test_a_bucket_never_holds_more_than_its_burst():
    bucket = TokenBucket(burst=2, rate=10.0, now=0.0)
    assert bucket.take(3600.0) == bucket.take(3600.0) == 0.0
    assert bucket.take(3600.0) > 0


def test_admission_counts_in_all_and_per_address():
    admission = Admission(Limits(max_connections=3, max_per_address=2))
    assert admission.admit("10.0.0.1") is None
    assert admission.admit("10.0.0.1") is None
    assert "too many connections from 10.0.0.1" in admission.admit("10.0.0.1")
    assert admission.admit("10.0.0.2") is None
    assert "the server is full" in admission.admit("10.0.0.3")
    admission.release("10.0.0.1")
    assert admission.admit("10.0.0.3") is None
    assert admission.per_address == {"10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.3": 1}


def test_wrong_passwords_double_the_wait_up_to_a_cap_and_are_forgotten():
    throttle = LoginThrottle(Limits(login_delay_cap=4.0, login_memory=60.0))
    keys = ("nina", "address 10.0.0.1")
    assert throttle.delay(keys, 0.0) == 0.0
    waits = []
    for _ in range(5):
        throttle.failed(keys, 0.0)
        waits.append(throttle.delay(keys, 0.0))
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert throttle.delay(("nina",), 30.0) == 4.0
    assert throttle.delay(("someone else", "address 10.0.0.1"), 30.0) == 4.0
    assert throttle.delay(keys, 61.0) == 0.0


def test_a_right_password_clears_the_names_count_but_not_the_addresses():
    throttle = LoginThrottle(Limits())
    throttle.failed(("nina", "address 10.0.0.1"), 0.0)
    throttle.succeeded(("nina",))
    assert throttle.delay(("nina", "address 10.0.0.2"), 0.0) == 0.0
    assert throttle.delay(("ana", "address 10.0.0.1"), 0.0) == 1.0


def test_thousands_of_wrong_passwords_still_give_a_capped_wait():
    throttle = LoginThrottle(Limits(login_delay_cap=30.0))
    for _ in range(2000):
        throttle.failed(("nina",), 0.0)
    assert throttle.delay(("nina",), 0.0) == 30.0


def test_old_failures_are_swept_so_guessing_many_names_costs_no_memory():
    throttle = LoginThrottle(Limits(login_memory=60.0))
    for n in range(10_000):
        throttle.failed((f"name{n}",), 0.0)
    throttle.failed(("late",), 100.0)
    assert set(throttle._failures) == {"late"}


def test_tries_under_way_count_until_they_end_so_parallel_guesses_wait_too():
    throttle = LoginThrottle(Limits(login_delay_cap=30.0))
    keys = ("nina", "address 10.0.0.1")
    waits = []
    for _ in range(4):
        waits.append(throttle.delay(keys, 0.0))
        throttle.trying(keys)
    assert waits == [0.0, 1.0, 2.0, 4.0]
    for _ in range(4):
        throttle.done_trying(keys)
    assert throttle.delay(keys, 0.0) == 0.0
