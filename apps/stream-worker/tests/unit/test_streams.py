"""Many streams in one process (`stream-worker --streams FILE`)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from worker_support import FakeSts, write_tone

from shared_audio import read_wav
from stream_worker.config import WorkerSettings
from stream_worker.endpoints import Input, open_input, open_sink
from stream_worker.main import main as cli_main
from stream_worker.metrics import STREAM_LABEL
from stream_worker.sink import Sink
from stream_worker.streams import (
    Options,
    StreamsFileError,
    Supervisor,
    ThreadedSink,
    load_streams,
    wants_streams,
)


def entry(name: str, tmp: Path, /, **extra: object) -> str:
    values: dict[str, Any] = {
        "id": name,
        "input": str(tmp / f"{name}.in.wav"),
        "output": str(tmp / f"{name}.out.wav"),
        "source_lang": "en",
        "target_lang": "es",
        **extra,
    }
    return "[[stream]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def write_file(path: Path, *entries: str, defaults: str = "") -> Path:
    path.write_text((f"[defaults]\n{defaults}\n" if defaults else "") + "\n".join(entries))
    return path


def summaries(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"event":"summary"')]


# ------------------------------------------------------------------------------ the file


def test_unknown_key_is_refused_naming_the_entry_and_the_key(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "s.toml", entry("a", tmp_path), entry("b", tmp_path, taget_lang="fr")
    )
    with pytest.raises(StreamsFileError) as error:
        load_streams(str(path))
    assert str(error.value) == f"{path}: stream 2 ('b'): unknown key 'taget_lang'"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"metrics_port": 9100}, "'metrics_port' is an option of the whole process"),
        ({"stream_id": "x"}, "unknown key 'stream_id' (a stream's id is 'id')"),
        ({"target_lang": "not a tag"}, "target_lang: Value error, must be a language tag"),
        ({"max_inflight": 0}, "max_inflight: Input should be greater than or equal to 1"),
        ({"output": "-"}, "output: '-' (stdin/stdout) is for one stream"),
    ],
)
def test_bad_entries_name_the_entry_and_key(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    path = write_file(tmp_path / "s.toml", entry("a", tmp_path, **extra))
    with pytest.raises(StreamsFileError) as error:
        load_streams(str(path))
    assert str(error.value).startswith(f"{path}: stream 1 ('a'): ")
    assert message in str(error.value)


def test_file_level_problems(tmp_path: Path) -> None:
    cases = {
        "bad.toml": ("[[stream]\n", "not valid TOML"),
        "empty.toml": ("", "no [[stream]] entry"),
        "top.toml": ("streams = 1\n", "unknown top-level key 'streams'"),
        "dup.toml": (entry("a", tmp_path) + entry("a", tmp_path), "id 'a' is given twice"),
        "missing.toml": ('[[stream]]\nid = "a"\n', "missing key 'input'"),
        "defaults.toml": ('[defaults]\ninput = "x"\n' + entry("a", tmp_path), "unknown key"),
        "summary.toml": ('[defaults]\nsummary_json = "s.json"\n' + entry("a", tmp_path), "unknown"),
        "same.toml": (
            entry("a", tmp_path) + entry("b", tmp_path, output=str(tmp_path / "a.out.wav")),
            f"stream 2 ('b'): output '{tmp_path / 'a.out.wav'}' is also stream 'a''s",
        ),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(StreamsFileError) as error:
            load_streams(str(tmp_path / name))
        assert message in str(error.value), name
    with pytest.raises(StreamsFileError, match="cannot read the streams file"):
        load_streams(str(tmp_path / "nowhere.toml"))


def test_entries_are_the_single_stream_settings_over_defaults_and_command_line(
    tmp_path: Path,
) -> None:
    path = write_file(
        tmp_path / "s.toml",
        entry("a", tmp_path, segment_ms=2000),
        entry("b", tmp_path),
        defaults='segmenter = "fixed"\nsegment_ms = 3000',
    )
    streams = load_streams(str(path), {"segment_ms": 4000, "max_inflight": 5})
    assert list(streams) == ["a", "b"]
    assert all(isinstance(s, WorkerSettings) for s in streams.values())
    assert streams["a"].stream_id == "a"
    assert (streams["a"].segment_ms, streams["b"].segment_ms) == (2000, 3000)
    assert streams["b"].max_inflight == 5
    assert streams["b"].segmenter == "fixed"


def test_every_single_stream_option_is_an_entry_key_or_a_process_option() -> None:
    # One source of truth: a new option of WorkerSettings is accepted in a streams file
    # without a second list to keep in step.
    from stream_worker.streams import ID_KEY, PROCESS_KEYS

    assert PROCESS_KEYS <= set(WorkerSettings.model_fields)
    assert ID_KEY not in WorkerSettings.model_fields


def test_command_line_dispatch_and_usage_errors(tmp_path: Path) -> None:
    assert wants_streams(["--streams", "x.toml"]) and wants_streams(["--streams=x.toml"])
    assert not wants_streams(["--input", "a.wav", "--output", "b.wav"])
    path = write_file(tmp_path / "s.toml", entry("a", tmp_path, taget_lang="fr"))
    err = io.StringIO()
    from stream_worker import streams

    assert streams.main(["--streams", str(path)], stderr=err) == 2
    assert (
        err.getvalue()
        == f"stream-worker: error: {path}: stream 1 ('a'): unknown key 'taget_lang'\n"
    )
    err = io.StringIO()
    assert streams.main(["--streams", str(path), "--input", "x.wav"], stderr=err) == 2
    assert "--input: with --streams" in err.getvalue()
    err = io.StringIO()
    assert streams.main(["--streams", str(path), "--summary-json", "s.json"], stderr=err) == 2
    assert "--summary-json: with --streams" in err.getvalue()
    err = io.StringIO()
    assert streams.main(["--streams", str(path), "--max-inflight", "0"], stderr=err) == 2
    assert "--max-inflight" in err.getvalue()


# ------------------------------------------------------------------------------ isolation


class BlockedSink:
    """A destination that takes nothing until `release` is set (a stalled network peer)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames_written = 0

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        self.release.wait()
        self.frames_written += int(samples.shape[0])

    def close(self) -> None:
        self.release.wait()


def dying(
    chunks: Iterable[npt.NDArray[np.int16]], after_chunks: int
) -> Iterator[npt.NDArray[np.int16]]:
    for index, chunk in enumerate(chunks):
        if index == after_chunks:
            raise OSError("the source dropped")
        yield chunk


async def test_a_dying_input_a_blocked_output_and_a_crash_leave_the_others_sample_exact(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    names = ["ok1", "dies", "blocked", "crash", "ok2"]
    audio = {name: write_tone(tmp_path / f"{name}.in.wav", 6.0) for name in names}
    path = write_file(tmp_path / "s.toml", *(entry(name, tmp_path) for name in names))
    blocked = BlockedSink()

    def inputs(settings: WorkerSettings) -> Input:
        source = open_input(settings)
        if settings.stream_id == "dies":
            source.chunks = dying(source.chunks, after_chunks=2)
        return source

    def sinks(settings: WorkerSettings, source: Input) -> Sink:
        if settings.stream_id == "blocked":
            return blocked
        if settings.stream_id == "crash":
            raise RuntimeError("a bug in this stream")
        return open_sink(settings, source)

    err = io.StringIO()
    options = Options(inputs, sinks, fake_sts.transport(), output_stall_s=0.5, output_close_s=0.2)
    supervisor = Supervisor(str(path), {}, err, options)
    try:
        code = await asyncio.wait_for(supervisor.run(load_streams(str(path))), 30)
    finally:
        blocked.release.set()
    assert code == 1
    by_id = {s["stream_id"]: s for s in summaries(err.getvalue())}
    assert set(by_id) == set(names)
    for name in ("ok1", "ok2"):
        _, out = read_wav(tmp_path / f"{name}.out.wav")
        assert np.array_equal(out, audio[name]), name
        assert by_id[name]["exit_code"] == 0
        assert by_id[name]["segments"]["fallback"] == 0
    assert by_id["dies"]["exit_code"] == 1
    assert by_id["dies"]["input_error"] == "the source dropped"
    _, partial = read_wav(tmp_path / "dies.out.wav")  # what was read is written, finalised
    assert np.array_equal(partial, audio["dies"][: partial.shape[0]]) and partial.shape[0] > 0
    assert by_id["blocked"]["exit_code"] == 1
    assert "the output is blocked" in by_id["blocked"]["error"]
    assert by_id["crash"]["exit_code"] == 1
    assert "a bug in this stream" in by_id["crash"]["error"]


async def test_a_blocked_live_output_does_not_delay_a_live_neighbour(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    audio = {name: write_tone(tmp_path / f"{name}.in.wav", 3.0) for name in ("live", "stuck")}
    path = write_file(
        tmp_path / "s.toml",
        *(entry(n, tmp_path, realtime=True, segmenter="fixed", segment_ms=500) for n in audio),
    )
    blocked = BlockedSink()

    def sinks(settings: WorkerSettings, source: Input) -> Sink:
        return blocked if settings.stream_id == "stuck" else open_sink(settings, source)

    err = io.StringIO()
    options = Options(
        open_input, sinks, fake_sts.transport(), output_stall_s=0.5, output_close_s=0.2
    )
    supervisor = Supervisor(str(path), {}, err, options)
    try:  # the stuck destination is never released while the streams run
        await asyncio.wait_for(supervisor.run(load_streams(str(path))), 30)
    finally:
        blocked.release.set()
    assert supervisor.ended == [("stuck", 1), ("live", 0)]  # stuck given up on, live on time
    live = next(s for s in summaries(err.getvalue()) if s["stream_id"] == "live")
    assert live["segments"]["fallback"] == 0
    assert live["real_time_factor"] < 1.2
    _, out = read_wav(tmp_path / "live.out.wav")
    assert np.array_equal(out, audio["live"])


def test_threaded_sink_keeps_order_and_reports_a_failed_destination() -> None:
    class Recording:
        def __init__(self, fail_at: int | None = None) -> None:
            self.parts: list[int] = []
            self.frames_written = 0
            self.closed = False
            self.fail_at = fail_at

        def write(self, samples: npt.NDArray[np.int16]) -> None:
            if self.fail_at is not None and len(self.parts) == self.fail_at:
                raise OSError("disk full")
            self.parts.append(int(samples[0, 0]))
            self.frames_written += int(samples.shape[0])

        def close(self) -> None:
            self.closed = True

    inner = Recording()
    sink = ThreadedSink(inner, backlog_frames=10**6, name="t")
    for value in range(50):
        sink.write(np.full((10, 1), value, dtype=np.int16))
    assert sink.wait_closed(5)
    assert inner.parts == list(range(50)) and inner.closed and sink.frames_written == 500
    failing = ThreadedSink(Recording(fail_at=1), backlog_frames=10**6, name="f")
    failing.write(np.zeros((1, 1), dtype=np.int16))
    failing.write(np.zeros((1, 1), dtype=np.int16))
    deadline = time.monotonic() + 5
    while failing.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(OSError, match="disk full"):
        failing.write(np.zeros((1, 1), dtype=np.int16))


# ------------------------------------------------------------------------------ SIGHUP


def test_sighup_starts_new_stops_removed_and_restarts_changed_streams(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    audio = {name: write_tone(tmp_path / f"{name}.in.wav", 4.0) for name in "abcd"}
    live = {"realtime": True, "segmenter": "fixed", "segment_ms": 500}
    path = write_file(
        tmp_path / "s.toml",
        entry("a", tmp_path, **live),
        entry("b", tmp_path, **live),
        entry("d", tmp_path, **live),
    )
    seen: list[str] = []

    def inputs(settings: WorkerSettings) -> Input:
        seen.append(f"{settings.stream_id}:{settings.segment_ms}")
        return open_input(settings)

    def rewrite_and_hup() -> None:
        time.sleep(1.0)  # every stream is running by now
        write_file(
            tmp_path / "s.toml",
            entry("b", tmp_path, **{**live, "segment_ms": 1000}),  # changed
            entry("c", tmp_path, **live),  # new
            entry("d", tmp_path, **live),  # unchanged
        )  # and a is removed
        os.kill(os.getpid(), signal.SIGHUP)

    err = io.StringIO()
    hup = threading.Thread(target=rewrite_and_hup)
    hup.start()
    code = cli_main_streams(path, err, Options(inputs, open_sink, fake_sts.transport()))
    hup.join()
    assert code == 0
    lines = summaries(err.getvalue())
    runs = [(s["stream_id"], s["interrupted"]) for s in lines]
    assert sorted(runs) == sorted(
        [("a", True), ("b", True), ("b", False), ("c", False), ("d", False)]
    )
    assert sorted(seen) == sorted(["a:500", "b:500", "b:1000", "c:500", "d:500"])
    # The restarted b, the new c and the untouched d are whole and sample-exact.
    for name in "bcd":
        _, out = read_wav(tmp_path / f"{name}.out.wav")
        assert np.array_equal(out, audio[name]), name
    # The removed a stopped cleanly: a valid WAV of what was read before the stop.
    _, stopped = read_wav(tmp_path / "a.out.wav")
    assert 0 < stopped.shape[0] < audio["a"].shape[0]
    assert np.array_equal(stopped, audio["a"][: stopped.shape[0]])
    log = err.getvalue()
    assert "stream a: stopping (removed from the streams file)" in log
    assert "stream b: restarting (changed: segment_ms)" in log


def test_sighup_with_a_broken_file_keeps_the_streams_going(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    audio = write_tone(tmp_path / "a.in.wav", 2.0)
    path = write_file(tmp_path / "s.toml", entry("a", tmp_path, realtime=True))

    def break_and_hup() -> None:
        time.sleep(0.5)
        path.write_text("[[stream]\n")
        os.kill(os.getpid(), signal.SIGHUP)

    err = io.StringIO()
    hup = threading.Thread(target=break_and_hup)
    hup.start()
    code = cli_main_streams(path, err, Options(open_input, open_sink, fake_sts.transport()))
    hup.join()
    assert code == 0
    assert "streams file not reloaded" in err.getvalue()
    _, out = read_wav(tmp_path / "a.out.wav")
    assert np.array_equal(out, audio)


def test_sigterm_stops_every_stream_with_finalised_outputs(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    for name in "ab":
        write_tone(tmp_path / f"{name}.in.wav", 10.0)
    path = write_file(tmp_path / "s.toml", *(entry(n, tmp_path, realtime=True) for n in "ab"))
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    err = io.StringIO()
    # Both started at once: a stream stopped before it starts has no output to finalise.
    options = Options(open_input, open_sink, fake_sts.transport(), spread_starts=False)
    code = cli_main_streams(path, err, options)
    timer.join()
    assert code == 0
    for line in summaries(err.getvalue()):
        assert line["interrupted"] is True and line["exit_code"] == 0
        _, out = read_wav(tmp_path / f"{line['stream_id']}.out.wav")
        assert 0 < out.shape[0] < 10 * 16000


def cli_main_streams(path: Path, err: io.StringIO, options: Options) -> int:
    """`stream-worker --streams PATH` in this process, with test endpoints."""
    from stream_worker import streams
    from stream_worker.signals import STOP_SIGNALS

    STOP_SIGNALS.install()
    try:
        return streams.main(
            ["--streams", str(path), "--log-format", "console"], stderr=err, options=options
        )
    finally:
        STOP_SIGNALS.restore()


def test_single_stream_command_line_is_not_taken_for_streams(tmp_path: Path) -> None:
    assert cli_main(["--input", str(tmp_path / "missing.wav"), "--output", "x.wav"]) == 2


def test_one_metrics_port_serves_every_stream_by_its_id(tmp_path: Path, fake_sts: FakeSts) -> None:
    import socket
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    for name in ("news", "sports"):
        write_tone(tmp_path / f"{name}.in.wav", 3.0)
    path = write_file(
        tmp_path / "s.toml",
        *(
            entry(n, tmp_path, realtime=True, segmenter="fixed", segment_ms=500)
            for n in ("news", "sports")
        ),
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    scraped: list[str] = []

    def scrape() -> None:
        time.sleep(2.0)  # both streams have written segments by now
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            scraped.append(answer.read().decode())

    scraper = threading.Thread(target=scrape)
    scraper.start()
    from stream_worker import streams
    from stream_worker.signals import STOP_SIGNALS

    STOP_SIGNALS.install()
    try:
        code = streams.main(
            ["--streams", str(path), "--metrics-port", str(port)],
            stderr=io.StringIO(),
            options=Options(open_input, open_sink, fake_sts.transport()),
        )
    finally:
        STOP_SIGNALS.restore()
    scraper.join()
    assert code == 0
    dubbed = {
        sample.labels[STREAM_LABEL]: sample.value
        for family in text_string_to_metric_families(scraped[0])
        for sample in family.samples
        if sample.name == "stream_worker_segments_total" and sample.labels["outcome"] == "dubbed"
    }
    assert set(dubbed) == {"news", "sports"}
    assert all(value >= 2 for value in dubbed.values())


async def test_a_removed_stream_listed_again_starts_again(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    write_tone(tmp_path / "a.in.wav", 1.0)
    write_tone(tmp_path / "b.in.wav", 6.0)
    keep = entry("b", tmp_path, realtime=True)  # keeps the supervisor running meanwhile
    path = write_file(tmp_path / "s.toml", entry("a", tmp_path), keep)
    err = io.StringIO()
    supervisor = Supervisor(str(path), {}, err, Options(transport=fake_sts.transport()))
    task = asyncio.ensure_future(supervisor.run(load_streams(str(path))))
    while ("a", 0) not in supervisor.ended:
        await asyncio.sleep(0.05)
    supervisor.reload()  # unchanged and ended: stays ended
    write_file(path, keep)
    supervisor.reload()  # removed
    write_file(path, entry("a", tmp_path), keep)
    supervisor.reload()  # listed again: starts again
    await asyncio.wait_for(task, 30)
    assert [stream_id for stream_id, _ in supervisor.ended].count("a") == 2
    assert [s["stream_id"] for s in summaries(err.getvalue())].count("a") == 2


async def test_streams_share_connection_pools_ten_at_a_time(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    from stream_worker.streams import POOL_STREAMS

    names = [f"s{index}" for index in range(POOL_STREAMS + 2)]
    for name in names:
        write_tone(tmp_path / f"{name}.in.wav", 1.0)
    path = write_file(tmp_path / "s.toml", *(entry(n, tmp_path, segmenter="fixed") for n in names))
    options = Options(transport=fake_sts.transport(), spread_starts=False)
    supervisor = Supervisor(str(path), {}, io.StringIO(), options)
    assert await asyncio.wait_for(supervisor.run(load_streams(str(path))), 30) == 0
    # One pool per ten streams: shared connections, but a short scan per request.
    assert len(supervisor._pools) == 2
    assert {r.stream_id for r in fake_sts.requests} == set(names)


async def test_streams_started_together_start_spread_over_one_segment(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    names = ["a", "b", "c", "d"]
    for name in names:
        write_tone(tmp_path / f"{name}.in.wav", 0.5)
    live = {"segmenter": "fixed", "segment_ms": 1000}
    path = write_file(tmp_path / "s.toml", *(entry(n, tmp_path, **live) for n in names))
    opened: dict[str, float] = {}

    def inputs(settings: WorkerSettings) -> Input:
        assert settings.stream_id is not None
        opened[settings.stream_id] = time.monotonic()
        return open_input(settings)

    options = Options(inputs, open_sink, fake_sts.transport())
    supervisor = Supervisor(str(path), {}, io.StringIO(), options)
    assert await asyncio.wait_for(supervisor.run(load_streams(str(path))), 30) == 0
    # The i-th of 4 opens i/4 of a segment (1 s) after the first, in file order.
    first = opened["a"]
    gaps = [opened[name] - first for name in names]
    for index, gap in enumerate(gaps):
        assert index * 0.25 - 0.01 <= gap <= index * 0.25 + 0.2, gaps
