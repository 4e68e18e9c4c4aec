"""`lexi` command line: train, sample (eval, compare and more arrive with their issues).

Mistakes a user can fix (lexi.errors.UserError) print one line and exit with status 2;
`--debug` shows the traceback too.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _cmd_train(args, overrides) -> int:
    from lexi import config as config_lib
    from lexi.train.loop import train

    cfg = config_lib.load_config(args.config, overrides)
    last = train(cfg, Path(args.workdir))
    if last:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.items()))
    return 0


def _cmd_sample(args, overrides) -> int:
    from lexi.inference import load_for_inference, sample_text

    if overrides:
        raise_unexpected(overrides)
    loaded = load_for_inference(Path(args.workdir))
    for text in sample_text(loaded, args.prompt, max_new=args.max_new, temperature=args.temperature,
                            top_k=args.top_k, seed=args.seed, num_samples=args.num_samples):
        print(args.prompt + text)
        print("-" * 40)
    return 0


def raise_unexpected(extra) -> None:
    from lexi.errors import UserError

    raise UserError(f"unexpected argument(s): {' '.join(extra)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lexi", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train or resume a run from a config file",
                       description="Overrides: --config.SECTION.FIELD=VALUE (e.g. --config.train.steps=100).")
    t.add_argument("--config", required=True, help="config file with optional variant, e.g. configs/standard.py:tiny")
    t.add_argument("--workdir", required=True, help="run directory; an existing one is resumed")
    t.set_defaults(fn=_cmd_train)

    s = sub.add_parser("sample", help="continue a prompt with a trained run's newest checkpoint")
    s.add_argument("--workdir", required=True)
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-new", type=int, default=200)
    s.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    s.add_argument("--top-k", type=int, default=0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=int, default=1)
    s.set_defaults(fn=_cmd_sample)
    return p


def main(argv=None) -> int:
    from lexi.errors import UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        return args.fn(args, extra)
    except UserError as e:
        if args.debug:
            raise
        print(f"lexi: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lexi: interrupted; run the same command again to resume from the newest checkpoint", file=sys.stderr)
        return 130
    except Exception as e:
        from lexi.train.loop import TrainingStopped

        if isinstance(e, TrainingStopped):
            print(f"lexi: {e}", file=sys.stderr)
            return 0 if "signal" in str(e) else 1
        raise


if __name__ == "__main__":
    sys.exit(main())
