"""What ``Board`` adds to TensorBoard's own server: the dashboard settings an address cannot carry, and a
data location without absolute paths.

TensorBoard keeps "Ignore outliers in chart scaling" in the browser's localStorage, never in the
address: the older dashboards (Custom Scalars, Scalars) under ``_ignoreYOutliers``, Time Series in the
JSON of ``_tb_global_settings``. Both default to on, which scales a chart to the 5th-95th percentile of
its points: on a board of mostly passing runs the failing parity curves are the outliers, cut off at the
top, and the chart looks all-pass. ``SettingsPlugin`` serves one small page on the same origin
(``/data/plugin/backprop_parity/open?to=ADDRESS``) that turns both off and goes on to ``ADDRESS``;
``backprop-parity board`` prints that page's address.

TensorBoard's footer shows its "data location", the ``--logdir_spec`` it was given: every run's absolute
path. ``quiet_location`` replaces it with a short line naming the log directory as the user gave it."""

import base64
import hashlib
import json
import urllib.parse

from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

PLUGIN = "backprop_parity"
OPEN = "/open"
SETTINGS_SCRIPT = """
var key = "_tb_global_settings", settings = {};
try { settings = JSON.parse(localStorage.getItem(key) || "{}"); } catch (e) {}
settings.ignoreOutliers = false;
localStorage.setItem(key, JSON.stringify(settings));
localStorage.setItem("_ignoreYOutliers", "false");
location.replace(TARGET);
"""


def opener_path(address: str) -> str:
    """The settings page's path (on the board's own origin) that ends at ``address`` (a path, ``/?...``)."""
    return f"/data/plugin/{PLUGIN}{OPEN}?" + urllib.parse.urlencode({"to": address}, quote_via=urllib.parse.quote)


def settings_page(target: str) -> tuple[str, str]:
    """The page's HTML and its script's sha256 (TensorBoard's Content-Security-Policy runs hashed
    scripts only)."""
    script = SETTINGS_SCRIPT.replace("TARGET", json.dumps(target).replace("</", "<\\/"))
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return f'<!doctype html><meta charset="utf-8"><title>TensorBoard</title><script>{script}</script>', digest


class SettingsPlugin(base_plugin.TBPlugin):
    """A TensorBoard plugin with no dashboard of its own: the settings page (see the module docstring)."""

    plugin_name = PLUGIN

    def __init__(self, context: base_plugin.TBContext) -> None:
        self.context = context

    def get_plugin_apps(self) -> dict:
        return {OPEN: self.open}

    def is_active(self) -> bool:
        return False

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        name = "backprop-parity settings"
        return base_plugin.FrontendMetadata(is_ng_component=True, tab_name=name, disable_reload=True)

    @wrappers.Request.application
    def open(self, request: wrappers.Request) -> wrappers.Response:
        target = request.args.get("to", "/")
        if not target.startswith("/") or target.startswith("//") or "\\" in target:  # this server's pages only
            return http_util.Respond(request, "to: a path on this server", "text/plain", code=400)
        page, digest = settings_page(target)
        return http_util.Respond(request, page, "text/html", csp_scripts_sha256s=[digest])


def quiet_location(data_provider: object, label: str) -> None:
    """Make TensorBoard report ``label`` as its data location (the footer) instead of the paths served."""

    def experiment_metadata(ctx=None, *, experiment_id):
        return provider.ExperimentMetadata(data_location=label)

    data_provider.experiment_metadata = experiment_metadata
