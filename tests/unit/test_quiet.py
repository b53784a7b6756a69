"""Warnings ignored from several threads at once stay ignored until the last thread is done."""

from __future__ import annotations

import threading
import warnings

import pytest

from service.ml.quiet import ignoring


class Noise(UserWarning):
    pass


def test_a_thread_leaving_first_does_not_undo_the_filter_another_still_holds() -> None:
    warnings.simplefilter("error", Noise)  # as the test settings make every warning
    first_in, first_out = threading.Event(), threading.Event()
    escaped: list[BaseException] = []

    def first() -> None:
        with ignoring(Noise):
            first_in.set()
            assert first_out.wait(10)

    def second() -> None:
        assert first_in.wait(10)
        with ignoring(Noise):
            first_out.set()
            one.join(10)  # the first thread has left its block
            try:
                warnings.warn("still inside", Noise, stacklevel=1)
            except Noise as e:
                escaped.append(e)

    one, two = threading.Thread(target=first), threading.Thread(target=second)
    one.start()
    two.start()
    two.join(10)
    assert not one.is_alive() and not two.is_alive()
    assert escaped == []
    with pytest.raises(Noise):  # once both are out, the filters are as before
        warnings.warn("outside", Noise, stacklevel=1)
