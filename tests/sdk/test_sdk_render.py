"""CLI rendering helpers and the terminal spinner, without a server."""

from __future__ import annotations

import io
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyhop.cli import error_line, render
from skyhop.cli.waiting import Spinner, detached_message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "a few secs ago"),
        (60, "1 min ago"),
        (125, "2 mins ago"),
        (3600 * 5, "5 hrs ago"),
        (86400 * 3, "3 days ago"),
    ],
)
def test_ago(seconds, text):
    assert render.ago(1000.0, now=1000.0 + seconds) == text


def test_ago_and_duration_of_nothing():
    assert render.ago(None) == "-"
    assert render.duration(None) == "-"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42, "42s"), (185, "3m 5s"), (7620, "2h 7m"), (100800, "1d 4h")],
)
def test_duration(seconds, text):
    assert render.duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0.00"), (0.098, "0.098"), (1.5, "1.50"), (3.06, "3.06"), (0.1234, "0.123")],
)
def test_cost(value, text):
    assert render.cost(value) == text


@given(
    st.lists(
        st.lists(st.text(alphabet="abc xyz-✔", max_size=12), min_size=3, max_size=3), max_size=6
    )
)
def test_table_columns_align(rows):
    header = ["A", "BB", "CCC"]
    lines = render.table(header, rows).split("\n")
    assert len(lines) == len(rows) + 1
    b, c = lines[0].index("BB"), lines[0].index("CCC")
    for row, line in zip(rows, lines[1:], strict=True):
        assert line == line.rstrip()
        assert [line[:b].rstrip(), line[b:c].rstrip(), line[c:].rstrip()] == [
            cell.rstrip() for cell in row
        ]


def test_detached_message_is_exact():
    assert detached_message("73d316ac-aaaa-bbbb", "http://127.0.0.1:46580") == (
        "⚙︎ Request will continue running asynchronously.\n"
        "├── View logs: skyhop api logs 73d316ac\n"
        "├── Or, visit: http://127.0.0.1:46580/api/stream?request_id=73d316ac\n"
        "└── To cancel the request, run: skyhop api cancel 73d316ac"
    )


def test_error_line_is_one_line():
    assert error_line(ValueError("bad\n  value")) == "Error: ValueError: bad value"


def test_spinner_prints_log_lines_above_its_status_line():
    out = io.StringIO()
    with Spinner("Launching cluster 'dev'", "0123456789abcdef", out, interval=0.01) as spinner:
        spinner.write("line one\n")
        time.sleep(0.05)
        spinner.write("partial")
        spinner.write(" rest\n")
    text = out.getvalue()
    assert "View logs: skyhop api logs 01234567" in text
    visible = text.replace("\r\x1b[K", "\n")
    assert "line one" in visible and "partial rest" in text
    assert text.endswith("\r\x1b[K")  # the status line is cleared at the end


def test_a_failed_requests_closing_error_line_is_held_back_and_dropped():
    import io

    from skyhop.cli.waiting import HeldErrorLine

    out = io.StringIO()
    held = HeldErrorLine(out)
    for chunk in ["step 1\n", "progress 50%", " done\nErr", "or: Cluster", "DoesNotExist: gone\n"]:
        held.write(chunk)
    assert out.getvalue() == "step 1\nprogress 50% done\n"
    held.release(failed=True)
    assert out.getvalue() == "step 1\nprogress 50% done\n"

    out = io.StringIO()
    held = HeldErrorLine(out)
    held.write("Error: printed by the job itself\nmore output\n")
    held.write("Error: again")
    held.release()  # the request succeeded: nothing is lost
    assert out.getvalue() == "Error: printed by the job itself\nmore output\nError: again"


@given(st.text())
def test_safe_text_has_no_terminal_control_characters(text: str) -> None:
    shown = render.safe(text, one_line=True)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert render.safe("plain text: ✔ é 中") == "plain text: ✔ é 中"
