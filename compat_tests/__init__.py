"""Run CPython's own networking test suites on the stock socket module and under multisock.

``python -m compat_tests [modules...]`` runs each module twice in fresh subprocesses (stock,
then with multisock activated before the test module is imported), compares the outcomes
test by test and checks them against the reviewed expected-failure manifest
(:mod:`compat_tests.manifest`). See ``docs/architecture.md`` ("compat_tests").
"""
