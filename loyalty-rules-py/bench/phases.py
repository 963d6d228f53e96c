"""Where the time of one table replay goes: the native phases (printed by
the extension to stderr when LOYALTY_RULES_TIMINGS is set) and the
Python-side work around them, for the bench table of bench_replay.py.

    LOYALTY_RULES_TIMINGS=1 python loyalty-rules-py/bench/phases.py [--events N] [--threads 1] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_replay import PROGRAM, make_table  # noqa: E402

import loyalty_rules as lr  # noqa: E402
from loyalty_rules import ReplayStats, _as_stream, _to_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    if "LOYALTY_RULES_TIMINGS" not in os.environ:
        print("(set LOYALTY_RULES_TIMINGS=1 for the native phases)", file=sys.stderr)
    table = make_table(a.events, a.customers)
    program = lr.compile(PROGRAM)
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        eng = lr.Engine(program)
        t1 = time.perf_counter()
        s, stats = eng._e.replay_table(_as_stream(table), None, "purchase", a.threads, False)
        t2 = time.perf_counter()
        out = _to_table(s)
        t3 = time.perf_counter()
        ReplayStats.from_dict(stats)
        t4 = time.perf_counter()
        eng.states_table()
        t5 = time.perf_counter()
        total = t4 - t0
        print(
            f"engine {t1 - t0:.3f}s, native replay_table {t2 - t1:.3f}s, "
            f"_to_table {t3 - t2:.3f}s, stats {t4 - t3:.3f}s | lr.replay total {total:.3f}s "
            f"= {a.events / total:,.0f} events/s | then states_table() {t5 - t4:.3f}s "
            f"({out.num_rows:,} rows)",
            flush=True,
        )


if __name__ == "__main__":
    main()
