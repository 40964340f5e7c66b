"""The transfer score as a script: the same as `mirage-gym score` (the code,
readable in one sitting, is mirage_gym/agents/score.py; see docs/transfer.md).

    python examples/transfer_score.py                 # the default protocol, about 45 min on one CPU core
    python examples/transfer_score.py --quick         # smoke size
"""

import argparse
import os

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from mirage_gym.agents import score
    from mirage_gym.cli import _add_args_tracking_explicit, _explicit_namespace

    parser = argparse.ArgumentParser(description=score.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_args_tracking_explicit(parser, score.ScoreArgs)
    score.main(*_explicit_namespace(score.ScoreArgs, parser.parse_args()))
