"""Chapter 3's mistakes submission: the first plausible mistake of each exercise in test_ch3.

``tests/test_course.py`` fills these into the learner notebook and requires the real nbgrader to
give 0 to every exercise (each mistake's hint is checked in-process by test_ch3).
"""

import textwrap

from test_ch3 import GRADE_IDS
from test_ch3 import MISTAKES as _CASES

MISTAKES: dict[str, str] = {}
for _check, _hidden, _hint, _code in _CASES.values():
    MISTAKES.setdefault(GRADE_IDS[_check], textwrap.dedent(_code).strip())
