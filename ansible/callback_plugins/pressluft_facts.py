# Pressluft: hand structured facts from a playbook run back to the runner.
#
# Every task result that carries a dict under the key `pressluft_facts` (also inside loop items, and
# `ansible_facts.pressluft_facts` from set_fact) is merged, in order, into one JSON object. When the
# playbook ends (v2_playbook_on_stats) the object is written to the file named by the environment
# variable PRESSLUFT_FACTS_FILE, if set, together with
#   "_stats":  {"changed": <int>, "failed": <int>, "unreachable": <int>}
# "_tasks": [{"task", "status", "ms"}] (per task result: ok / changed / failed / skipped /
# unreachable, milliseconds since the task started - diagnostics),
# and, only when something failed, "_errors": [{"host", "task", "kind", "msg"}] (for no_log tasks
# the msg is their warnings, else the censored notice). The file is replaced atomically (written next to it, then renamed).
#
# Results of tasks with `no_log: true` reach callbacks censored, so their facts are lost here:
# playbooks register such results and report their (secret-free) facts from a later task.
from __future__ import annotations

DOCUMENTATION = r"""
name: pressluft_facts
type: aggregate
short_description: Collect pressluft_facts from task results into a JSON file
description:
  - Merges every C(pressluft_facts) dict returned by a task, in order, and writes the merged
    object plus a C(_stats) summary to the file named by C(PRESSLUFT_FACTS_FILE).
requirements:
  - enable in callbacks_enabled
"""

import json
import os
import tempfile
import time

from ansible.plugins.callback import CallbackBase

_FACTS_KEY = "pressluft_facts"
_MSG_LIMIT = 2000


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "pressluft_facts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._facts = {}
        self._errors = []
        self._tasks = []
        self._task_started = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_started = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self._task_started = time.monotonic()

    def _timing(self, result, status):
        task = getattr(getattr(result, "_task", None), "name", None)
        ms = int((time.monotonic() - self._task_started) * 1000) if self._task_started else None
        self._tasks.append({"task": task, "status": status, "ms": ms})

    # -- collection --------------------------------------------------------------------------
    def _collect(self, result):
        data = getattr(result, "_result", None)
        if not isinstance(data, dict):
            return
        facts = data.get(_FACTS_KEY)
        if isinstance(facts, dict):
            self._facts.update(facts)
        ansible_facts = data.get("ansible_facts")
        if isinstance(ansible_facts, dict) and isinstance(ansible_facts.get(_FACTS_KEY), dict):
            self._facts.update(ansible_facts[_FACTS_KEY])

    def _error(self, result, kind):
        data = getattr(result, "_result", None) or {}
        msg = data.get("msg")
        if not msg and data.get("censored"):
            # no_log results keep their warnings: Pressluft's modules repeat the (secret-free)
            # failure reason there
            warnings = [w.get("msg", w) if isinstance(w, dict) else w for w in data.get("warnings") or []]
            msg = "; ".join(str(w) for w in warnings) or data["censored"]
        msg = msg or data.get("stderr") or kind
        if not isinstance(msg, str):
            msg = json.dumps(msg, default=str)
        host = getattr(getattr(result, "_host", None), "name", None)
        task = getattr(getattr(result, "_task", None), "name", None)
        self._errors.append({"host": host, "task": task, "kind": kind, "msg": msg[:_MSG_LIMIT]})

    def v2_runner_on_ok(self, result):
        self._collect(result)
        self._timing(result, "changed" if (getattr(result, "_result", None) or {}).get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._collect(result)
        self._timing(result, "ignored" if ignore_errors else "failed")
        if not ignore_errors:
            self._error(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._timing(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._timing(result, "unreachable")
        self._error(result, "unreachable")

    def v2_runner_item_on_ok(self, result):
        self._collect(result)

    def v2_runner_item_on_failed(self, result):
        self._collect(result)

    # -- output ------------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("PRESSLUFT_FACTS_FILE")
        if not path:
            return
        changed = failed = unreachable = 0
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            changed += int(summary.get("changed", 0))
            failed += int(summary.get("failures", 0))
            unreachable += int(summary.get("unreachable", 0))
        out = dict(self._facts)
        out["_stats"] = {"changed": changed, "failed": failed, "unreachable": unreachable}
        out["_tasks"] = self._tasks
        if self._errors:
            out["_errors"] = self._errors
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".pressluft-facts-", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(out, fh, sort_keys=True, default=str)
                fh.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except OSError as exc:
            self._display.warning("pressluft_facts: cannot write %s: %s" % (path, exc))
