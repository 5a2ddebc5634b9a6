"""A pytest plugin that records each test's outcome for hived's test harness.

Loaded with ``-p hive_report``; writes one line per test to the file named by
``HIVE_REPORT``: outcome, test id and the first line of the failure, separated
by tabs. A test counts as failed if any of its phases (setup, call, teardown)
failed, and as skipped if it was skipped or expected to fail.
"""

import os

_outcomes = {}


def _first_line(report):
    text = str(report.longrepr or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line.replace("\t", " ")


def pytest_runtest_logreport(report):
    previous = _outcomes.get(report.nodeid)
    if previous and previous[0] == "failed":
        return
    if report.failed:
        _outcomes[report.nodeid] = ("failed", _first_line(report))
    elif report.skipped:
        _outcomes[report.nodeid] = ("skipped", "")
    elif report.when == "call":
        _outcomes[report.nodeid] = ("passed", "")


def pytest_sessionfinish(session):
    with open(os.environ["HIVE_REPORT"], "w", encoding="utf-8") as out:
        for nodeid, (outcome, message) in _outcomes.items():
            out.write(f"{outcome}\t{nodeid}\t{message}\n")
