# Pressluft: report a module's facts and fail the run when they say it failed - one controller
# task instead of a set_fact and a fail (each controller task costs a worker fork, ~50 ms).
#
# The node-side tasks carry secrets and run with no_log, which censors their results for the
# callbacks; this task hands their (secret-free) pressluft_facts to the pressluft_facts callback.
from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("facts", "default_error_code", "fail_msg"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        facts = args.get("facts")
        if facts is None:
            facts = {}
        if not isinstance(facts, dict):
            raise AnsibleActionFail("facts must be a dict, got %s" % type(facts).__name__)
        result["changed"] = False
        result["pressluft_facts"] = facts
        msg = failure(facts, args.get("default_error_code") or "ERROR", args.get("fail_msg"))
        if msg:
            result["failed"] = True
            result["msg"] = msg
        return result


def failure(facts, default_code, fail_msg):
    """The run's failure message ("" when none): fail_msg when given, else "CODE: error" when the
    facts carry an error or an error code (Pressluft's modules report failures that way)."""
    if fail_msg:
        return str(fail_msg)
    code = facts.get("error_code")
    error = facts.get("error")
    if not code and not error:
        return ""
    return "%s: %s" % (code or default_code, "" if error is None else error)
