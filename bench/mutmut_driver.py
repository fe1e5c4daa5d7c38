"""`mutmut run` for bench.mutation, plus the tests that reach a function only through a subprocess.

mutmut runs, for each mutant, the tests it saw call the mutated function in process. A test that reaches the code
through a child process (a kill at a write step, a CLI run) is never seen calling it, although the child inherits
the mutant under test (MUTANT_UNDER_TEST) and imports the mutated copy: SUBPROCESS_TESTS in bench/mutation.py names
such tests, and this driver adds them to the functions they reach before the mutants run.

Usage: python -m bench.mutmut_driver [--max-children N] NAME_OR_PATTERN ...
"""

from __future__ import annotations

import argparse
import fnmatch

import mutmut.__main__ as mutmut_main

from bench.mutation import SUBPROCESS_TESTS


def add_subprocess_tests(state, names: list[str]) -> None:
    """Map each SUBPROCESS_TESTS entry's tests (among those collected) to the named functions its pattern matches."""
    functions = set(state.tests_by_mangled_function_name) | {mutmut_main.mangled_name_from_mutant_name(name)
                                                            for name in names if "*" not in name}
    for pattern, prefixes in SUBPROCESS_TESTS.items():
        tests = {test for test in state.duration_by_test if test.startswith(tuple(prefixes))}
        for function in functions:
            if fnmatch.fnmatch(function, pattern):
                state.tests_by_mangled_function_name.setdefault(function, set()).update(tests)


def tests_for_mutants(names) -> set[str]:
    """The tests mapped to the named mutants' functions (none for a function no test reaches, instead of failing)."""
    tests: set[str] = set()
    mapping = mutmut_main.state().tests_by_mangled_function_name
    for name in names:
        if "*" in name:
            for function, found in mapping.items():
                if fnmatch.fnmatch(function, name):
                    tests |= set(found)
        else:
            tests |= set(mapping.get(mutmut_main.mangled_name_from_mutant_name(name), set()))
    return tests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mutmut_driver", description=__doc__.split("\n")[0])
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    collect = mutmut_main.collect_or_load_stats

    def collect_with_subprocess_tests(runner, **options):
        collect(runner, **options)
        add_subprocess_tests(mutmut_main.state(), args.names)

    mutmut_main.collect_or_load_stats = collect_with_subprocess_tests
    mutmut_main.tests_for_mutant_names = tests_for_mutants
    mutmut_main._run(args.names, args.max_children)


if __name__ == "__main__":
    main()
