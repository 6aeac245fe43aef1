#!/usr/bin/python
# Documentation and argument spec of the pressluft_report action (action_plugins/pressluft_report.py),
# which runs on the controller only; this file is what ansible-doc and ansible-lint read.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_report
short_description: Report a module's facts to Pressluft and fail the run when they carry an error
description:
  - Runs on the controller. Returns O(facts) as C(pressluft_facts), which the pressluft_facts
    callback hands back to Pressluft, and fails the task when O(fail_msg) is non-empty or, without
    it, when O(facts) carry C(error) or C(error_code) (message C(CODE: error)).
options:
  facts:
    description: The facts to report (the registered result's C(pressluft_facts)).
    type: dict
    required: true
  default_error_code:
    description: The code of the failure message when the facts carry an error without a code.
    type: str
    default: ERROR
  fail_msg:
    description: Fail with this message (after reporting) when non-empty.
    type: str
    default: ""
author: Pressluft
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            facts=dict(type="dict", required=True),
            default_error_code=dict(type="str", default="ERROR"),
            fail_msg=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    module.fail_json(msg="pressluft_report runs on the controller (action plugin); it was not found")


if __name__ == "__main__":
    main()
