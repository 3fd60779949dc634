from __future__ import annotations

import random

from tcpmsg.ids import ClientIds


def test_ids_are_five_digits_and_unique_while_in_use():
    ids = ClientIds(rng=random.Random(1))
    drawn = [ids.allocate() for _ in range(1000)]
    assert len(set(drawn)) == 1000
    assert all(10000 <= i <= 99999 for i in drawn)


def test_the_width_grows_a_digit_once_half_the_ids_are_taken():
    ids = ClientIds(digits=2, rng=random.Random(2))
    drawn = [ids.allocate() for _ in range(200)]
    assert len(set(drawn)) == 200
    assert all(10 <= i <= 99 for i in drawn[:45])
    assert max(drawn) > 99


class ScriptedRandom(random.Random):
    def __init__(self, *draws: int) -> None:
        super().__init__()
        self.draws = iter(draws)

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        return next(self.draws)


def test_a_taken_id_is_drawn_again_and_a_released_one_is_free():
    ids = ClientIds(rng=ScriptedRandom(42424, 42424, 50851, 42424))
    assert ids.allocate() == 42424
    assert ids.allocate() == 50851
    ids.release(42424)
    assert ids.allocate() == 42424


def test_reserved_ids_count_towards_growing_the_width():
    ids = ClientIds(digits=2, rng=random.Random(3))
    for client_id in range(10, 54):  # 44 of the 90 two-digit ids: under half
        ids.reserve(client_id)
    assert 54 <= ids.allocate() <= 99  # the 45th: half are taken now
    assert 100 <= ids.allocate() <= 999


def test_one_digit_ids_grow_once_five_of_the_nine_are_taken():
    ids = ClientIds(digits=1, rng=random.Random(4))
    drawn = [ids.allocate() for _ in range(6)]
    assert all(1 <= i <= 9 for i in drawn[:5])
    assert 10 <= drawn[5] <= 99
