"""TensorBoard served from this process on 127.0.0.1, on chosen run directories only: the one place that
starts it (``backprop-parity board``, ``scripts/screenshot.py`` and the server tests all use ``Board``).

It is tensorboard's own ``program.TensorBoard`` with ``--logdir_spec NAME:PATH,...``, so each run's
sub-runs are listed as ``NAME/manual``, ``NAME/parity/grad``, ...; ``--load_fast=false`` keeps the
loader in this process (the fast loader is a separate server binary). The server runs on a daemon
thread and is shut down by ``close()``.

``Board.url`` opens a tab on chosen runs through TensorBoard's own run filter, a regular expression in
the address (``run_filter``: ``^(name|name)/``), so the address stays short however many runs are
served, and the reader widens the choice by editing the filter box. Both halves of TensorBoard read it:
the Time Series dashboard from the query (``?runFilter=...&smoothing=0``), the older dashboards (Custom
Scalars, Scalars) from the fragment (``#custom_scalars&regexInput=...&_smoothingWeight=0``). Smoothing
is 0 in both, at which parity curves are read. The older dashboards tick the runs the filter matches only
while they number at most ``SELECTED_BY_DEFAULT`` (their ``maxNamesToEnableByDefault``); Time Series
ticks every run up to 500.
"""

import json
import logging
import re
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tensorboard import default, program

from compare.errors import InputError
from compare.output.board_settings import SettingsPlugin, opener_path, quiet_location
from compare.output.parity_curves import RATIO

SELECTED_BY_DEFAULT = 40  # tensorboard 2.21's runs selector: maxNamesToEnableByDefault = 40
TAGS = f"^(loss/train|{RATIO})$"  # Time Series' tag filter when it opens crowded
EVENTS = "events.out.tfevents.*"


def event_runs(name: str, path: Path) -> list[str]:
    """The TensorBoard runs ``path`` holds, as TensorBoard names them under ``--logdir_spec name:path``."""
    found = sorted({events.parent for events in path.rglob(EVENTS)})
    return [name if folder == path else f"{name}/{folder.relative_to(path).as_posix()}" for folder in found]


DATE = re.compile(r"^\d{8}-")  # a run directory's date, left out of the filter where the rest is unique


def run_filter(names: list[str], served: list[str] | None = None) -> str:
    """The regular expression that matches the TensorBoard runs under these names (a run directory, or
    one of its sub-runs: ``experiment-x/summary``), and no other of ``served`` (TensorBoard run names):
    without the names' dates when that still holds, to keep it short."""
    full = "^(" + "|".join(name.replace(".", r"\.") for name in names) + ")(/|$)"
    if served is None:
        return full
    short = "(" + "|".join(DATE.sub("", name).replace(".", r"\.") for name in names) + ")(/|$)"
    wanted = {run for run in served if any(run == name or run.startswith(f"{name}/") for name in names)}
    return short if {run for run in served if re.search(short, run)} == wanted else full


def get_json(url: str, timeout: float = 10.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict, timeout: float = 10.0) -> object:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class _TensorBoard(program.TensorBoard):
    """TensorBoard with the settings page and a data location of ``label`` (``compare.output.board_settings``)."""

    def __init__(self, label: str) -> None:
        super().__init__(plugins=[*default.get_plugins(), SettingsPlugin])
        self.label = label

    def _make_data_provider(self):
        data_provider, multiplexer = super()._make_data_provider()
        quiet_location(data_provider, self.label)
        return data_provider, multiplexer


class Board:
    """TensorBoard serving ``runs`` ({name: run directory}) on 127.0.0.1:``port`` (0: any free port);
    ``label``: what its footer names as the data location (never the run directories' paths)."""

    def __init__(
        self, runs: dict[str, Path], port: int = 0, reload_interval: float = 1.0, label: str | None = None
    ) -> None:
        for name, path in runs.items():
            if "," in f"{name}{path}" or ":" in name:
                raise InputError(f"{path}: TensorBoard cannot serve a run whose name or path holds ',' (or ':')")
        spec = ",".join(f"{name}:{Path(path).resolve()}" for name, path in runs.items())
        self.runs = [run for name, path in runs.items() for run in event_runs(name, Path(path))]
        tensorboard = _TensorBoard(label or f"{len(runs)} run(s) served by backprop-parity board")
        argv = ["", "--logdir_spec", spec, "--host", "127.0.0.1", "--port", str(port)]
        tensorboard.configure(argv=[*argv, "--reload_interval", str(reload_interval), "--load_fast", "false"])
        # launch() without losing the server, so that close() can shut it down
        self._server = tensorboard._make_server()
        self._thread = threading.Thread(target=self._server.serve_forever, name="TensorBoard", daemon=True)
        self._thread.start()
        self.base = self._server.get_url().rstrip("/")

    def url(self, tab: str | None = None, chosen: list[str] | None = None, tags: str | None = None) -> str:
        """The tab at smoothing 0, filtered to the runs named ``chosen`` (None: every run served). No tab:
        Custom Scalars while the older dashboards tick what the filter matches, else Time Series, shown
        the loss and the parity charts only (``TAGS``: its tag filter). ``tags``: a tag filter for the
        other tabs. The Text tab opens its first two categories, ``conclusion`` and ``verdict`` (an
        experiment's other texts sort after them: ``compare.output.experiment_board.WORKINGS``)."""
        tab = tab or ("custom_scalars" if len(self.chosen_runs(chosen)) <= SELECTED_BY_DEFAULT else "timeseries")
        query, fragment = {"smoothing": "0"}, {"_smoothingWeight": "0"}
        if chosen is not None:
            query["runFilter"] = run_filter(chosen, self.runs)
            if tab != "timeseries":  # the older dashboards' filter (for Time Series it would only lengthen it)
                fragment["regexInput"] = query["runFilter"]
        if tab == "timeseries":
            query["tagFilter"] = TAGS
        elif tags is not None:  # not for the Text tab: a filter shows each card twice (results, then its category)
            fragment["tagFilter"] = tags
        quote = urllib.parse.quote
        return f"{self.base}/?{urllib.parse.urlencode(query, quote_via=quote)}#{tab}&" + urllib.parse.urlencode(
            fragment, quote_via=quote
        )

    def address(self, url: str) -> str:
        """The address to print for ``url`` (one of ``url``'s): through the settings page, which turns
        "Ignore outliers" off before the dashboard opens, so that a failing curve is not cut off."""
        return self.base + opener_path(url[len(self.base) :])

    def chosen_runs(self, chosen: list[str] | None) -> list[str]:
        """The TensorBoard runs the filter for ``chosen`` matches (every run for None)."""
        if chosen is None:
            return list(self.runs)
        pattern = re.compile(run_filter(chosen, self.runs))
        return [run for run in self.runs if pattern.search(run)]

    def wait(self, timeout: float = 60.0) -> list[str]:
        """Until TensorBoard lists every run found on disk (bounded); returns what it lists."""
        deadline = time.monotonic() + timeout
        listed: list[str] = []
        while time.monotonic() < deadline:
            listed = get_json(f"{self.base}/data/runs")
            if set(self.runs) <= set(listed):
                return listed
            time.sleep(0.2)
        raise TimeoutError(f"TensorBoard listed {listed} after {timeout:.0f} s, expected {self.runs}")

    def get(self, path: str, **params) -> object:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return get_json(f"{self.base}{path}{query}")

    def post(self, path: str, body: dict) -> object:
        return post_json(f"{self.base}{path}", body)

    def close(self) -> None:
        """Stops serving. TensorBoard gives its loader thread no stop: it keeps polling the run folders, so
        its complaints about folders removed since (a test's temporary ones) are silenced."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        logging.getLogger("tensorboard").setLevel(logging.ERROR)

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
