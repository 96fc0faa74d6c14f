#!/usr/bin/env bash
# Scan infra/ with checkov (Bicep) and print passed/failed/skipped/parse-error counts.
# Fails on a failed check, a suppression without a reason, or a Bicep parse error (which checkov
# itself reports only in parsing_errors, exiting 0). `make test` runs the same checks through
# tests/project/test_infra.py; this script is for a quick look. Needs `make checkov` first.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python - <<'PY'
import sys
sys.path.insert(0, "tests")
from pathlib import Path

import pytest  # noqa: F401  (test_infra uses pytest.fail)
from test_infra import INFRA, checkov_counts, checkov_problems, run_checkov

try:
    reports = run_checkov(INFRA)
except pytest.fail.Exception as exc:
    sys.exit(f"checkov: {exc}")
counts = checkov_counts(reports)
for report in reports:
    for c in report["results"].get("skipped_checks", []):
        print(f"skipped {c['check_id']} {c['resource']}: {c['check_result'].get('suppress_comment', '').strip()}")
problems = checkov_problems(reports)
for p in problems:
    print(p, file=sys.stderr)
print("checkov bicep: {passed} passed, {failed} failed, {skipped} skipped, {parsing_errors} parsing errors"
      .format(**counts))
sys.exit(1 if problems else 0)
PY
