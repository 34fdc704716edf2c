"""Latency of ``.tflite`` signatures in LiteRT, as a phone would run them: batch 1, XNNPACK.

Timings from one process drift with the machine's load, so files are never timed one after
the other: ``interleaved_medians`` runs every candidate in turn, round after round, each for
about the same wall time per round, and reports medians. Only ``Invoke`` is timed; the input
is set once.
"""

import statistics
import time

import numpy as np


def signature_invoker(interpreter, signature):
    """A zero-argument call that runs ``signature`` of a LiteRT ``Interpreter`` once more on a
    random batch-1 input set here."""
    runner = interpreter.get_signature_runner(signature)
    detail = runner.get_input_details()["image"]
    shape = (1, *detail["shape"][1:])
    rng = np.random.default_rng(0)
    if np.issubdtype(detail["dtype"], np.integer):
        image = rng.integers(-128, 128, size=shape, dtype=detail["dtype"])
    else:
        image = rng.random(shape, dtype=np.float32)
    runner(image=image)  # resizes to batch 1, allocates, sets the input
    wrapper, index = getattr(runner, "_interpreter_wrapper", None), getattr(runner, "_subgraph_index", None)
    if wrapper is None or index is None:  # another LiteRT version: time the public call instead
        return lambda: runner(image=image)
    return lambda: wrapper.Invoke(index)


def interleaved_medians(candidates, rounds, runs_per_round, warmup, round_s=None):
    """Median seconds per call of each candidate, timed in alternating rounds.

    ``candidates``: ``{key: zero-argument callable}``. Each is called ``warmup`` times first;
    then, ``rounds`` times, every candidate in turn is called ``runs_per_round`` times, each
    call timed alone. With ``round_s`` instead of ``runs_per_round``, each candidate gets about
    ``round_s`` seconds per round (its call count estimated from the warm-up, at least 3), so
    that fast and slow candidates see the same stretches of machine load.
    Returns ``{key: {"median_s", "p10_s", "p90_s", "runs"}}``.
    """
    counts = {}
    for key, call in candidates.items():
        start = time.perf_counter()
        for _ in range(warmup):
            call()
        per_call = (time.perf_counter() - start) / max(warmup, 1)
        counts[key] = runs_per_round if round_s is None else max(3, int(round_s / max(per_call, 1e-7)))
    samples = {key: [] for key in candidates}
    for _ in range(rounds):
        for key, call in candidates.items():
            for _ in range(counts[key]):
                start = time.perf_counter()
                call()
                samples[key].append(time.perf_counter() - start)
    return {key: summarize(values) for key, values in samples.items()}


def summarize(samples):
    """``{"median_s", "p10_s", "p90_s", "runs"}`` of a list of seconds."""
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"median_s": statistics.median(ordered), "p10_s": pick(0.1), "p90_s": pick(0.9), "runs": len(ordered)}


def signature_latencies(files, threads=1, rounds=12, round_s=0.1, warmup=5):
    """``{key: median ms}`` of ``files``: ``{key: (path, signature)}``, timed together."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters, candidates = {}, {}
    for key, (path, signature) in files.items():
        if str(path) not in interpreters:
            interpreters[str(path)] = Interpreter(model_path=str(path), num_threads=threads)
        candidates[key] = signature_invoker(interpreters[str(path)], signature)
    timings = interleaved_medians(candidates, rounds, None, warmup=warmup, round_s=round_s)
    return {key: timing["median_s"] * 1e3 for key, timing in timings.items()}
