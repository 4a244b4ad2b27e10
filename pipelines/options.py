"""Command line, runner choice, output checks and error reporting shared by the Beam jobs.

Runners: ``--runner local`` (the default) is Beam's FnApiRunner, ``--runner bundle`` its
BundleBasedDirectRunner; neither reaches the network (Beam's default DirectRunner first tries to
download the Prism runner binary). ``--direct_num_workers N`` runs N local workers, in
processes (``--direct_running_mode multi_processing``, the default here) or threads. Any other
``--runner`` (DataflowRunner, FlinkRunner, ...) is passed to Beam with the remaining flags
(``--project``, ``--region``, ``--temp_location``, ``--extra_package``, ...).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

import tensorflow as tf

from electra_tf.data.errors import DataError
from electra_tf.errors import UserError

log = logging.getLogger(__name__)

LOCAL_RUNNERS = ("local", "bundle")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="YAML run config; its data section names the corpus and tokenizer")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field (repeatable)")
    parser.add_argument("--runner", default="local",
                        help="local (FnApiRunner, default), bundle (BundleBasedDirectRunner) or "
                             "a Beam runner name such as DataflowRunner")
    parser.add_argument("--direct_num_workers", type=int, default=1,
                        help="local workers (local runner)")
    parser.add_argument("--direct_running_mode", default="multi_processing",
                        choices=["in_memory", "multi_threading", "multi_processing"],
                        help="how local workers run (local runner with several workers)")
    parser.add_argument("--invalid_utf8", choices=["error", "replace"], default="error",
                        help="a line that is not UTF-8: stop naming the file (default) or "
                             "replace the bytes with U+FFFD as the trainer's text reader does")


def load_run_config(args):
    """The run config of --config (defaults without) with the --set overrides."""
    from electra_tf.config import load_config

    return load_config(args.config, args.overrides)


def make_pipeline(args, beam_args: list[str]):
    """A beam.Pipeline on the chosen runner, with the remaining flags as PipelineOptions."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    if args.direct_num_workers < 1:
        raise DataError(f"--direct_num_workers must be >= 1, got {args.direct_num_workers}")
    flags = list(beam_args)
    if args.runner in LOCAL_RUNNERS:
        flags += [f"--direct_num_workers={args.direct_num_workers}"]
        if args.direct_num_workers > 1:
            flags += [f"--direct_running_mode={args.direct_running_mode}"]
        if args.runner == "local":
            from apache_beam.runners.portability.fn_api_runner import FnApiRunner
            runner = FnApiRunner()
        else:
            from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
            runner = BundleBasedDirectRunner()
    else:
        runner = args.runner
    return beam.Pipeline(runner=runner, options=PipelineOptions(flags))


def prepare_output_dir(directory: str, stale: list[str]) -> None:
    """Creates `directory`, proves it writable, and removes what a previous run left there
    (`stale`: glob patterns inside it), so old files are never taken for this run's output."""
    probe = os.path.join(directory, ".write_probe")
    try:
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
        for pattern in stale:
            for name in tf.io.gfile.glob(os.path.join(directory, pattern)):
                log.info("removing %s (left by an earlier run)", name)
                tf.io.gfile.remove(name)
    except tf.errors.OpError as e:
        raise DataError(f"cannot write to the output {directory}: {e.message}; choose a "
                        "writable location") from None


_USER_ERROR = re.compile(r"(?:DataError|VocabError|ConfigError|UserError): (.+)")


def user_error_from(error: BaseException) -> UserError | None:
    """The UserError raised inside a Beam worker, if `error` (as the runner re-raised it) comes
    from one: runners wrap worker exceptions, so the chain and then the message are searched."""
    seen = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    match = _USER_ERROR.search(str(error))
    if match:
        return DataError(match.group(1).strip().splitlines()[0])
    return None


def run_main(job, argv: list[str] | None, prog: str) -> int:
    """Runs `job(argv)` and reports a UserError (also one raised on a worker) as one line."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        job(argv)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    return 0


def run_pipeline(pipeline) -> None:
    """Runs a built pipeline to completion; a worker's UserError comes out as itself."""
    try:
        pipeline.run().wait_until_finish()
    except Exception as e:  # runners wrap worker exceptions in their own types
        found = user_error_from(e)
        if found is None:
            raise
        raise found from None
