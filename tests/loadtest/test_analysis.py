"""The harness's pure parts: latency attribution, the final check, the statistics."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import cast

from loadtest.analysis import Call, final_mismatches, update_latencies
from loadtest.customer import Customer, Fleet
from loadtest.options import Options
from loadtest.report import _frames_per_s, _kept_through_storm
from loadtest.runner import Run, call_table
from loadtest.staff import CallRecord
from loadtest.stats import bucket_counts, histogram, in_window, log_bins, percentile, summarize
from loadtest.wsclient import OP_TEXT, client_frame, mask
from protocol.codec import Codec
from protocol.messages import Called


def test_each_call_is_matched_to_the_first_frame_that_reflects_it() -> None:
    calls = [Call(seq=10, sent_at=0.9, answered_at=1.0), Call(seq=12, sent_at=1.9, answered_at=2.0)]
    # frames at seq 10 (t=1.1) and 13 (t=2.3): the second reflects call 12 and a later event
    got = update_latencies([5, 10, 13], [0.5, 1.1, 2.3], first_seq=5, end_seq=None, calls=calls)
    assert [(k, round(a, 3), round(b, 3)) for k, a, b in got] == [(0, 0.1, 0.2), (1, 0.3, 0.4)]


def test_a_coalesced_frame_answers_every_call_it_carries() -> None:
    calls = [Call(11, 0.0, 1.0), Call(12, 0.0, 1.5), Call(13, 0.0, 1.7)]
    got = update_latencies([3, 13], [0.1, 2.0], first_seq=3, end_seq=None, calls=calls)
    assert [(k, round(a, 3)) for k, a, _ in got] == [(0, 1.0), (1, 0.5), (2, 0.3)]


def test_calls_before_watching_or_after_the_end_are_not_samples() -> None:
    calls = [Call(4, 0.0, 0.0), Call(8, 0.0, 1.0), Call(20, 0.0, 3.0)]
    # watching from seq 5; called itself at seq 15 (so call 20 is not its business)
    got = update_latencies([5, 8], [0.5, 1.2], first_seq=5, end_seq=15, calls=calls)
    assert [k for k, _, _ in got] == [1]


def test_a_call_with_no_frame_yet_gives_no_sample() -> None:
    got = update_latencies([5], [0.5], first_seq=5, end_seq=None, calls=[Call(6, 0.0, 1.0)])
    assert got == []


def test_final_check_flags_wrong_and_stale_positions() -> None:
    truth = {"q.2": 1, "q.3": 2}
    seen = {
        "q.2": ("position", 1),  # right
        "q.3": ("position", 3),  # wrong place
        "q.1": ("position", 1),  # called, but it never heard
        "q.4": ("called", None),  # right: not waiting
        "q.5": ("none", None),  # waiting but nothing ever arrived: wrong
    }
    truth["q.5"] = 3
    found = {m.ticket_id: (m.seen, m.truth) for m in final_mismatches(seen, truth)}
    assert found == {
        "q.3": ("position 3", "position 2"),
        "q.1": ("position 1", "not waiting"),
        "q.5": ("none", "position 3"),
    }


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert summarize([3.0, 1.0, 2.0])["max"] == 3.0
    assert summarize([])["p99"] is None


def test_histogram_and_buckets_count_every_sample() -> None:
    edges = log_bins(0.5, 500.0)
    samples = [0.4, 1.0, 10.0, 99.0, 1000.0]
    assert sum(histogram(samples, edges)) == len(samples)
    assert bucket_counts([0.05, 0.15, 0.16, 5.0], 0.0, 0.1, 3) == [1, 2, 0]


def test_a_window_counts_the_arrivals_within_it_and_ends_at_the_last() -> None:
    times = [0.5, 1.0, 1.2, 2.9, 3.0, 7.0]
    assert in_window(times, 1.0, 3.0) == (4, 3.0)
    assert in_window(times, 3.5, 6.0) == (0, None)


def test_frames_per_second_end_at_the_last_frame_not_when_quiet_was_seen() -> None:
    """The harness sees the line quiet up to 0.6 s after its last frame: 300 frames from the
    first call at 10 s to the last arrival at 13 s are 100 a second, whenever quiet was seen."""
    run = SimpleNamespace(
        t0=0.0,
        calls_window=(10.0, 13.6),
        latency={
            "frame_buckets": [0] * 100 + [3] * 30,
            "window_frames": 300,
            "last_frame_at": 13.0,
        },
    )
    frames_per_s, buckets, window = _frames_per_s(cast(Run, run))
    assert frames_per_s == 100.0 and sum(buckets) == 90
    assert window == {
        "frames": 300,
        "first_call_s": 10.0,
        "last_frame_s": 13.0,
        "last_change_seen_s": 13.6,
    }
    run.latency.update(window_frames=0, last_frame_at=None)
    assert _frames_per_s(cast(Run, run))[0] is None


def test_client_frames_are_masked_and_unmask_back() -> None:
    frame = client_frame(OP_TEXT, b'{"type":"leave"}')
    assert frame[0] == 0x81 and frame[1] & 0x80
    key, body = frame[2:6], frame[6:]
    assert mask(body, key) == b'{"type":"leave"}'


def test_the_fast_position_check_agrees_with_the_protocol_parser() -> None:
    import orjson

    from loadtest.customer import position_fields
    from protocol.codec import Codec
    from protocol.messages import Position, server_message

    frame = Codec.JSON.encode(Position("q.7", 3, 10, None, 42))
    data = orjson.loads(frame)
    assert position_fields(data) == ("q.7", 42, 3)
    assert server_message(data) == Position("q.7", 3, 10, None, 42)
    for broken in ({**data, "seq": "42"}, {**data, "eta_s": 1.5}, {**data, "type": "called"}, []):
        assert position_fields(broken) is None


def test_a_call_is_timed_from_its_seq_in_the_log_not_from_a_later_called_frame() -> None:
    """A watcher that was reconnecting when its ticket was called is told `called` once it is
    back, with the seq of that moment; the events API has the call's own seq."""
    calls = [CallRecord(0.9, 1.0, 200, "q.1"), CallRecord(1.9, 2.0, 200, "q.2")]
    staff = SimpleNamespace(calls=calls, seqs={"q.1": 7})  # the log; q.2 not read yet
    run = SimpleNamespace(final={"called_seqs": {"q.1": 50, "q.2": 12}}, staff=staff)
    table, unknown = call_table(cast(Run, run))
    assert [(c.seq, c.answered_at) for c in table] == [(7, 1.0), (12, 2.0)] and unknown == 0


def test_a_watcher_keeps_the_seq_of_its_first_called_frame() -> None:
    customer = Customer(Fleet("ws://x/v1/ws", Codec.JSON, None), "q.1", "token")
    customer._record(Called("q.1", "desk", 7), 1.0)
    customer._record(Called("q.1", "desk", 50), 2.0)  # its state again, after a reconnect
    assert (customer.called_seq, customer.end_seq) == (7, 7)


def test_the_kept_watchers_are_timed_before_and_during_the_storm() -> None:
    """`update_latency_kept_ms`: only the samples of watchers that kept their sockets, split by
    when each call was sent: before the storm, during it (after it: neither)."""
    run = SimpleNamespace(
        phases=[("calls", 0.0, 10.0), ("calls+storm", 10.0, 12.0), ("calls", 12.0, None)],
        options=SimpleNamespace(storm_keep=2),
        latency={
            "calls": [Call(1, 9.0, 9.1), Call(2, 10.5, 10.6), Call(3, 13.0, 13.1)],
            "call_index": [0, 0, 0, 1, 1, 1, 2],
            "kept": bytearray([1, 1, 0, 1, 1, 0, 1]),
        },
    )
    from_resp = [10.0, 30.0, 900.0, 40.0, 60.0, 900.0, 5.0]
    from_req = [x + 100.0 for x in from_resp]  # each call waited 100 ms for its answer
    kept = _kept_through_storm(cast(Run, run), from_resp, from_req)
    assert kept is not None and kept["watchers"] == 2
    fan = kept["from_response"]
    assert fan["before"]["calls"] == 1 and fan["before"]["samples"]["max"] == 30.0
    assert fan["during"]["calls"] == 1 and fan["during"]["samples"]["count"] == 2
    assert fan["during"]["p99_median"] == 60.0 and fan["during_over_before"] == 2.0
    assert kept["from_request"]["during"]["p99_median"] == 160.0
    assert kept["from_request"]["during_over_before"] == round(160.0 / 130.0, 3)
    # Without kept watchers (every socket dropped) there is nothing to compare.
    run.latency["kept"] = bytearray(7)
    assert _kept_through_storm(cast(Run, run), [1.0] * 7, [1.0] * 7) is None


def test_kept_watchers_fill_whole_harness_processes_first() -> None:
    options = Options("http://127.0.0.1:1", "q", "k", watchers=10_000, processes=4)
    assert replace(options, storm_keep=2_500).kept_per_process() == [2_500, 0, 0, 0]
    assert replace(options, storm_keep=3_001).kept_per_process() == [2_500, 501, 0, 0]
    assert options.kept_per_process() == [0, 0, 0, 0]
