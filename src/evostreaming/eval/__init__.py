"""RealStreamEval: the sample schema, benchmarks, the causal protocol, policies, judges, scoring and reports."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "Sample": "schema",
        "GoldAnswer": "schema",
        "UserTurn": "schema",
        "load_samples": "schema",
        "BENCHMARKS": "benchmarks",
        "load_benchmark": "benchmarks",
        "JUDGES": "judges",
        "make_judge": "judges",
        "BASELINES": "policies",
        "make_baseline": "policies",
        "SessionPolicy": "policies",
        "Policy": "policies",
        "run_protocol": "protocol",
        "read_trajectories": "protocol",
        "ScoreConfig": "scoring",
        "score_sample": "scoring",
        "write_report": "report",
    },
)
